"""Run one service's app with uvicorn: ``python -m services.<name>`` calls :func:`serve`.

One process by default. A service whose settings have ``workers`` above 1 (intake's ``INTAKE_WORKERS``) runs that
many uvicorn worker processes on its one port, each building its own app through the module's ``app`` factory (an
import string, since each worker is a fresh interpreter) and each a member of the service's consumer groups, like a
replica. Their metrics go through prometheus_client's multiprocess mode (shared/metrics.py): a directory of value
files, ``PROMETHEUS_MULTIPROC_DIR`` if given (its ``*.db`` files removed at start) or a private temporary one
(removed at exit); a worker that dies has its live gauges' files removed, so its last values no longer count."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from shared.logs import configure_logging
from shared.metrics import MULTIPROC_DIR_ENV
from shared.operations import OpsSettings
from shared.settings import DevelopmentSecret, ServiceSettings, refuse_development_secrets


def serve(
    service: str,
    settings_class: type[ServiceSettings],
    create_app: Callable[[ServiceSettings], FastAPI],
    *,
    factory: str | None = None,
) -> None:
    """``factory``: the import string of a no-argument function returning the app (:func:`worker_app`), needed
    only by a service that can run several workers."""
    settings = load_settings(service, settings_class)
    configure_logging(service, settings.log_level)
    logger = logging.getLogger(service)
    try:
        refuse_development_secrets(settings)
    except DevelopmentSecret as exc:
        logger.critical(str(exc))
        print(f"{service}: {exc}", file=sys.stderr)
        sys.exit(2)
    if settings.niceness:
        os.nice(settings.niceness)  # before the workers start: they inherit it
    workers = int(getattr(settings, "workers", 1))
    if workers > 1:
        if factory is None:
            raise ValueError(f"{service} cannot run {workers} workers: its serve() names no app factory")
        serve_workers(service, settings, factory, workers, logger=logger)
        return
    app = create_app(settings)
    tune_garbage_collector()
    uvicorn.run(app, **server_options(settings))


def load_settings(service: str, settings_class: type[ServiceSettings]) -> ServiceSettings:
    try:
        return settings_class()
    except ValidationError as exc:  # a setting out of range, mistyped or unknown: say which, in one line each
        for error in exc.errors():
            where = setting_name(settings_class, error["loc"])
            print(f"{service}: {where}: {str(error['msg']).removeprefix('Value error, ')}", file=sys.stderr)
        sys.exit(2)


def setting_name(settings_class: type[ServiceSettings], loc: tuple[Any, ...]) -> str:
    """The environment variable of a top-level field (``INTAKE_WORKERS``, ``REDIS_URL``); a nested one's path."""
    if len(loc) == 1 and isinstance(loc[0], str):
        field = settings_class.model_fields.get(loc[0])
        if field is not None and isinstance(field.validation_alias, str):
            return field.validation_alias
        if field is not None and field.validation_alias is None and field.alias is None:
            return (str(settings_class.model_config.get("env_prefix", "")) + loc[0]).upper()
    return ".".join(str(p) for p in loc) or "settings"


def server_options(settings: ServiceSettings) -> dict[str, Any]:
    """uvicorn's options, the same for one process and for several workers."""
    ops = OpsSettings()
    return {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "access_log": False,
        # Open HTTP connections (a live feed) get a third of the stop budget; the consumers get the rest.
        "timeout_graceful_shutdown": max(1, int(ops.shutdown_timeout_s / 3)),
        # uvicorn's 5 s would close idle connections that a load balancer (60 s) still holds and reuses: lost requests
        "timeout_keep_alive": int(ops.http_keep_alive_s),
        "lifespan": "on",
        "loop": "uvloop",  # measured by make bench: intake +40% accepted/s and a lower p99 than asyncio + h11
        "http": "httptools",
        # X-Forwarded-For/-Proto are the app's to read, from TRUSTED_PROXIES only (shared/service.py): uvicorn's
        # own rewriting trusts 127.0.0.1 (or FORWARDED_ALLOW_IPS) whatever the service is configured with
        "proxy_headers": False,
    }


def serve_workers(
    service: str, settings: ServiceSettings, factory: str, workers: int, *, logger: logging.Logger
) -> None:
    """``workers`` processes on one listening socket (bound here, inherited by each), restarted when one dies."""
    with metrics_directory(os.environ.get(MULTIPROC_DIR_ENV), service) as directory:
        os.environ[MULTIPROC_DIR_ENV] = str(directory)  # before any worker imports prometheus_client
        config = uvicorn.Config(factory, factory=True, workers=workers, **server_options(settings))
        sock = config.bind_socket()
        logger.info(
            "starting worker processes",
            extra={"workers": workers, "port": settings.port, "pid": os.getpid(), "metrics_dir": str(directory)},
        )
        supervisor = Workers(config, sockets=[sock], metrics_dir=directory, logger=logger)
        try:
            supervisor.run()
        finally:
            sock.close()
    if supervisor.startup_failed:
        logger.critical("a worker process failed to start; stopped (see its lines above)")
        sys.exit(STARTUP_FAILURE)


@contextlib.contextmanager
def metrics_directory(given: str | None, service: str) -> Iterator[Path]:
    """The multiprocess metrics directory: ``given`` (created if missing, its value files removed: values from an
    earlier run would be added to this one's), or a private temporary one removed at the end."""
    if given:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        yield directory
        return
    directory = Path(tempfile.mkdtemp(prefix=f"kiruna-{service}-metrics-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class Workers(Multiprocess):
    """uvicorn's supervisor, which also marks a worker's metrics dead once it has gone (died and replaced,
    retired by SIGHUP's restart or SIGTTOU, or stopped at the end)."""

    def __init__(self, config: uvicorn.Config, sockets: list[Any], *, metrics_dir: Path, logger: logging.Logger):
        super().__init__(config, sockets)
        self.metrics_dir = metrics_dir
        self.logger = logger
        self.startup_failed = False

    def _retiring(self, step: Callable[[], None]) -> None:
        before = {p.pid for p in self.processes if p.pid is not None}
        step()
        gone = before - {p.pid for p in self.processes}
        for pid in gone:
            mark_dead(pid, self.metrics_dir)
        if gone:
            self.logger.warning(
                "worker processes replaced", extra={"gone": sorted(gone), "pids": [p.pid for p in self.processes]}
            )

    def init_processes(self) -> None:
        super().init_processes()
        self.logger.info("worker processes started", extra={"pids": [p.pid for p in self.processes]})

    def keep_subprocess_alive(self) -> None:
        self._retiring(super().keep_subprocess_alive)
        if any(p.exitcode == STARTUP_FAILURE for p in self.processes):
            self.startup_failed = True

    def restart_all(self) -> None:
        self._retiring(super().restart_all)

    def handle_ttou(self) -> None:
        self._retiring(super().handle_ttou)

    def join_all(self) -> None:
        super().join_all()
        for process in self.processes:
            if process.pid is not None:
                mark_dead(process.pid, self.metrics_dir)


def mark_dead(pid: int, directory: Path) -> None:
    """Remove a gone worker's files of live gauges (``livemin``, ``livemax``, ``livesum``...): its counters and
    histograms stay, so that totals never go down."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, str(directory))


def worker_app(
    service: str, settings_class: type[ServiceSettings], create_app: Callable[[ServiceSettings], FastAPI]
) -> FastAPI:
    """The app of one worker process (the factory that ``services/<name>/__main__.py`` names to :func:`serve`).
    The supervisor has checked the settings and applied the niceness (inherited)."""
    settings = settings_class()
    configure_logging(service, settings.log_level)
    logging.getLogger(service).info(
        "worker process starting",
        extra={"pid": os.getpid(), "supervisor_pid": os.getppid(), "workers": getattr(settings, "workers", 1)},
    )
    app = create_app(settings)
    tune_garbage_collector()
    return app


def tune_garbage_collector() -> None:
    """What the app built at start (catalogue, classifier lexicons, models, routes) lives as long as the process:
    freeze it out of the collector's sight, so that full collections stop walking it, and collect the young
    generation less often (most garbage is freed by reference counting anyway); the older generations keep
    their default ratios, which bound the memory. Measured by ``make bench``: intake's p99 95-104 ms -> 37-48 ms
    at 32 clients, analytics +10-30 % events/s."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)
