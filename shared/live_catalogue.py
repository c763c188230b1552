"""The catalogue in use, loaded again when its file changes (checked every few seconds, at once on SIGHUP), in
every service: an administrator edits the file and the whole platform follows, without a restart. A catalogue
that does not validate is refused: the last good one stays in use, the log says why and
``kiruna_catalogue_reload_errors_total`` counts it; ``kiruna_catalogue_info{version}`` says which one is in use."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from prometheus_client import Counter, Gauge

from shared.catalogue import Catalogue, CatalogueError, load_catalogue
from shared.service import Runtime

Listener = Callable[[Catalogue], Awaitable[None] | None]


class LiveCatalogue:
    def __init__(self, runtime: Runtime, path: Path) -> None:
        self.runtime = runtime
        self.path = path
        self._mtime = self._stat()
        self.current = load_catalogue(path)  # a bad catalogue stops the start
        self._listeners: list[Listener] = []
        registry = runtime.metrics.registry
        self._info = Gauge(
            "kiruna_catalogue_info",
            "The catalogue version in use (value 1)",
            ["version"],
            registry=registry,
            multiprocess_mode="livemax",  # several workers (INTAKE_WORKERS): 1 for each version a live worker uses
        )
        self._errors = Counter(
            "kiruna_catalogue_reload_errors",
            "Catalogue reloads refused because the file was invalid",
            registry=registry,
        )
        self._info.labels(self.current.version).set(1)

    def on_change(self, listener: Listener) -> None:
        """Call ``listener(new_catalogue)`` (a function or a coroutine function) before a new catalogue is used."""
        self._listeners.append(listener)

    def keep_current(self, holder: object, attribute: str = "catalogue") -> None:
        """Keep ``holder.<attribute>`` the catalogue in use."""
        self.on_change(lambda catalogue: setattr(holder, attribute, catalogue))

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
                extra={"path": str(self.path), "error": str(exc), "version_in_use": self.current.version},
            )
            return False
        if catalogue.version == self.current.version:
            return False
        for listener in self._listeners:
            outcome = listener(catalogue)
            if inspect.isawaitable(outcome):
                await outcome
        old, self.current = self.current.version, catalogue
        # 0, not only removed: in multiprocess mode (shared/metrics.py) a removed series stays in the worker's file
        self._info.labels(old).set(0)
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
                    try:
                        await self.reload()
                    except Exception as exc:  # a listener failed (Kafka away?): the next check tries again
                        self._mtime = None
                        self.runtime.logger.error("catalogue reload failed", extra={"error": repr(exc)})

        task = asyncio.create_task(watch(), name="catalogue-watch")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGHUP)
