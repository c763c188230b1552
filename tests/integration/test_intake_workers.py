"""Intake as two worker processes on one port (INTAKE_WORKERS=2, shared/runner.py): ``/metrics`` is the whole
intake whichever worker answers the scrape: the requests answered by both are summed, ``kiruna_service_ready`` is 1
once both are ready, and no gauge is split by worker. The mail door is shared by both (SO_REUSEPORT)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import smtplib
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REDIS_URL
from tests.support.http_server import bind
from tests.support.kafka import eventually

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
IDEA = {"title": "Laddstolpar vid stadshuset", "description": "Fler laddplatser för elbilar.", "anonymous": True}
POST_IDEAS = ("kiruna_http_requests_total", {"method": "POST", "route": "/api/v1/ideas", "status": "2xx"})


def free_port() -> int:
    sock = bind()
    try:
        return sock.getsockname()[1]
    finally:
        sock.close()


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict[tuple[str, frozenset], float], name: str, labels: dict[str, str]) -> float:
    return sum(v for (n, ls), v in found.items() if n == name and set(labels.items()) <= ls)


def answered_by_worker(directory: Path) -> Counter[int]:
    """Ideas accepted per worker pid, read from each worker's own counter file."""
    per_pid: Counter[int] = Counter()
    for path in directory.glob("counter_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        values = MmapedDict(str(path), read_mode=True)
        try:
            for key, count, _timestamp in values.read_all_values():
                _metric, name, labels, _help = json.loads(key)
                if name == POST_IDEAS[0] and POST_IDEAS[1].items() <= labels.items():
                    per_pid[pid] += int(count)
        finally:
            values.close()
    return per_pid


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def worker_processes(pid: int) -> set[int]:
    """The worker processes of a supervisor (not multiprocessing's resource tracker, also its child)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    found = {int(p) for p in path.read_text().split()} if path.exists() else set()
    return {child for child in found if b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes()}


async def test_two_workers_answer_on_one_port_and_metrics_add_up(kafka_settings, topics, redis_prefix, tmp_path):
    port, smtp_port = free_port(), free_port()
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"stale")  # an earlier run's: removed at start, never read
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": kafka_settings.topic_prefix,
        "KAFKA_PARTITIONS": str(kafka_settings.partitions),
        "REDIS_URL": REDIS_URL,
        "REDIS_KEY_PREFIX": redis_prefix,
        "INTAKE_GROUP_ID": f"intake-{redis_prefix}",
        "INTAKE_PORT": str(port),
        "INTAKE_SMTP_PORT": str(smtp_port),
        "INTAKE_WORKERS": "2",
        "INTAKE_RATE_LIMIT_PER_MINUTE": "10000",
        "READINESS_INTERVAL_S": "0.5",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "SHUTDOWN_TIMEOUT_S": "10",
    }
    log = tmp_path / "intake.log"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.intake", cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    workers: set[int] = set()
    try:

        async def metrics() -> dict[tuple[str, frozenset], float] | None:
            assert process.returncode is None, f"intake exited with {process.returncode}: {log.read_text()[-3000:]}"
            try:
                async with httpx.AsyncClient() as client:
                    return samples((await client.get(f"{base}/metrics", timeout=2)).text)
            except httpx.HTTPError:
                return None

        async def both_ready() -> dict | None:
            found = await metrics()
            return found if found and value(found, "kiruna_service_ready", {"service": "intake"}) == 1 else None

        await eventually(both_ready, timeout=60, interval=0.3)
        workers = worker_processes(process.pid)
        assert len(workers) == 2, f"expected two worker processes under {process.pid}, found {workers}"
        assert not (metrics_dir / "counter_1.db").exists()

        sent = 0

        async def submit_until_both_answered() -> bool:
            nonlocal sent
            for _ in range(5):  # a connection of its own each: the kernel hands it to either worker
                async with httpx.AsyncClient() as client:
                    answer = await client.post(f"{base}/api/v1/ideas", json=IDEA, timeout=10)
                assert answer.status_code == 202, answer.text
                sent += 1
            return set(answered_by_worker(metrics_dir)) == workers

        await eventually(submit_until_both_answered, timeout=60, interval=0)

        def all_counted() -> Counter[int] | None:
            counted = answered_by_worker(metrics_dir)
            return counted if sum(counted.values()) == sent else None

        # a request is counted as its answer goes out: the client may hold the last 202 a moment before that
        per_worker = await eventually(all_counted, timeout=10)
        assert all(per_worker[pid] > 0 for pid in workers), per_worker

        for _ in range(4):  # any worker's answer is the whole intake's
            found = await metrics()
            assert found is not None
            assert value(found, *POST_IDEAS) == sent
            assert value(found, "kiruna_service_ready", {"service": "intake"}) == 1
            assert not [key for key in found if ("pid", str(next(iter(workers)))) in key[1]], "a gauge split by pid"
            ready_series = [key for key in found if key[0] == "kiruna_service_ready"]
            assert len(ready_series) == 1, ready_series

        # the mail door answers (both workers listen on it, SO_REUSEPORT)
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as smtp:
            assert smtp.noop()[0] == 250
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(process.wait(), timeout=30)
        except TimeoutError:
            process.kill()
            raise
    assert code == 0, log.read_text()[-3000:]
    assert not [pid for pid in workers if alive(pid)], "a worker outlived its supervisor"
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    started = {line.get("pid") for line in lines if line.get("message") == "worker process starting"}
    assert started == workers, started
