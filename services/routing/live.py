"""The router in use, rebuilt when the catalogue file changes (checked every few seconds, or at once on SIGHUP).
A catalogue that does not validate is refused: the last good one stays in use and the log says why."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from prometheus_client import Counter, Gauge

from services.routing.classifier import Router
from services.routing.feedback import FeedbackMemory
from shared.catalogue import Catalogue, CatalogueError, load_catalogue
from shared.service import Runtime


class LiveRouter:
    def __init__(
        self,
        runtime: Runtime,
        path: Path,
        memory: FeedbackMemory,
        on_new_catalogue: Callable[[Catalogue], Awaitable[None]] | None = None,
        router: Router | None = None,
    ) -> None:
        self.runtime = runtime
        self.path = path
        self.memory = memory
        self.on_new_catalogue = on_new_catalogue
        self._mtime = self._stat()
        self.router = router or Router(load_catalogue(path), feedback=memory)  # a bad catalogue stops the start
        registry = runtime.metrics.registry
        self._info = Gauge(
            "kiruna_catalogue_info", "The catalogue version in use (value 1)", ["version"], registry=registry
        )
        self._errors = Counter(
            "kiruna_catalogue_reload_errors",
            "Catalogue reloads refused because the file was invalid",
            registry=registry,
        )
        self._info.labels(self.router.catalogue_version).set(1)

    def __call__(self) -> Router:
        return self.router

    def _stat(self) -> float | None:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return None

    async def reload(self) -> bool:
        """Load the catalogue again; keep the current one if the file is invalid. True when it changed."""
        self._mtime = self._stat()
        try:
            catalogue = await asyncio.to_thread(load_catalogue, self.path)
        except CatalogueError as exc:
            self._errors.inc()
            self.runtime.logger.error(
                "catalogue refused; keeping the last good one",
                extra={"path": str(self.path), "error": str(exc), "version_in_use": self.router.catalogue_version},
            )
            return False
        if catalogue.version == self.router.catalogue_version:
            return False
        if self.on_new_catalogue is not None:
            await self.on_new_catalogue(catalogue)
        old = self.router.catalogue_version
        self.router = Router(catalogue, feedback=self.memory)
        self._info.clear()
        self._info.labels(catalogue.version).set(1)
        self.runtime.logger.info("catalogue reloaded", extra={"from_version": old, "to_version": catalogue.version})
        return True

    @contextlib.asynccontextmanager
    async def watching(self, interval_s: float) -> AsyncIterator[None]:
        """Reload when the file's modification time changes, and on SIGHUP."""
        loop = asyncio.get_running_loop()
        hangup = asyncio.Event()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, hangup.set)

        async def watch() -> None:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(hangup.wait(), timeout=interval_s)
                if hangup.is_set() or self._stat() != self._mtime:
                    hangup.clear()
                    await self.reload()

        task = asyncio.create_task(watch(), name="catalogue-watch")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGHUP)
