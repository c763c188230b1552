"""Several worker processes, one /metrics (shared/metrics.py, shared/runner.py): which registry is served, each
gauge's multiprocess mode, what a gone worker leaves behind, and the settings' error naming INTAKE_WORKERS."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from faststream.prometheus.container import MetricsContainer
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from services.intake.settings import IntakeSettings
from shared.metrics import GAUGE_MODES, ServiceMetrics, exposition_registry, multiprocess_mode
from shared.runner import mark_dead, metrics_directory, setting_name

ROOT = Path(__file__).resolve().parents[2]


def test_one_process_serves_its_own_registry():
    assert not multiprocess_mode()  # the tests' process: no PROMETHEUS_MULTIPROC_DIR
    metrics = ServiceMetrics.create("intake")
    assert metrics.exposition is metrics.registry


def test_several_workers_serve_a_registry_that_reads_every_workers_files(tmp_path):
    registry = CollectorRegistry()
    merged = exposition_registry(registry, multiprocess=True, path=str(tmp_path))
    assert merged is not registry
    assert [type(c) for c in merged._collector_to_names] == [MultiProcessCollector]


def test_every_gauge_has_a_mode_that_merges_workers_into_one_series():
    metrics = ServiceMetrics.create("intake")
    assert metrics.ready._multiprocess_mode == GAUGE_MODES["kiruna_service_ready"] == "livemin"
    assert metrics.consumer_lag._multiprocess_mode == GAUGE_MODES["kiruna_consumer_lag_messages"] == "livemax"
    # FastStream's middleware takes the gauge made beforehand on the registry, mode and all
    container = MetricsContainer(metrics.registry, custom_label_names=())
    assert container.received_messages_in_process._multiprocess_mode == "livesum"
    assert all(mode.startswith("live") for mode in GAUGE_MODES.values())  # a dead worker's gauges never linger


WORKER = textwrap.dedent(
    """
    import sys
    from shared.metrics import ServiceMetrics, multiprocess_mode
    assert multiprocess_mode()
    metrics = ServiceMetrics.create("intake")
    ready, lag, retries = (int(v) for v in sys.argv[1:4])
    metrics.ready.labels("intake").set(ready)
    metrics.consumer_lag.labels("intake", "intake.raw", "raw", "0").set(lag)
    metrics.handler_retries.labels("intake", "raw").inc(retries)
    print(__import__("os").getpid())
    """
)


def worker(directory: Path, ready: int, lag: int, retries: int) -> int:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(ready), str(lag), str(retries)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(done.stdout.strip())


def merged_values(directory: Path) -> dict[str, float]:
    registry = exposition_registry(CollectorRegistry(), multiprocess=True, path=str(directory))
    return {
        sample.name: sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name in ("kiruna_service_ready", "kiruna_consumer_lag_messages", "kiruna_handler_retries_total")
        and sample.labels.get("topic", "raw") == "raw"
        and "pid" not in sample.labels
    }


def test_workers_add_up_and_a_gone_worker_no_longer_counts_for_readiness(tmp_path):
    ready_one = worker(tmp_path, ready=1, lag=3, retries=2)
    not_ready = worker(tmp_path, ready=0, lag=7, retries=5)
    assert merged_values(tmp_path) == {
        "kiruna_service_ready": 0,  # one worker cannot reach Kafka or Redis: the intake is not all ready
        "kiruna_consumer_lag_messages": 7,
        "kiruna_handler_retries_total": 7,  # counters summed
    }
    mark_dead(not_ready, tmp_path)
    assert merged_values(tmp_path) == {
        "kiruna_service_ready": 1,
        "kiruna_consumer_lag_messages": 3,
        "kiruna_handler_retries_total": 7,  # what it counted stays: totals never go down
    }
    assert ready_one != not_ready


def test_a_given_directory_is_emptied_of_values_and_a_private_one_removed(tmp_path):
    given = tmp_path / "given"
    given.mkdir()
    (given / "counter_123.db").write_bytes(b"old")
    (given / "README").write_text("kept")
    with metrics_directory(str(given), "intake") as directory:
        assert directory == given and [p.name for p in given.iterdir()] == ["README"]
    assert given.exists()
    with metrics_directory(None, "intake") as private:
        assert private.is_dir() and "kiruna-intake-metrics-" in private.name
    assert not private.exists()


@pytest.mark.parametrize("value", ["0", "-1", "two", "65"])
def test_a_bad_worker_count_names_intake_workers(value):
    env = {**os.environ, "INTAKE_WORKERS": value, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "services.intake"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]  # one line
    assert done.stderr.startswith("intake: INTAKE_WORKERS: "), done.stderr


def test_setting_names_are_the_environment_variables():
    assert setting_name(IntakeSettings, ("workers",)) == "INTAKE_WORKERS"
    assert setting_name(IntakeSettings, ("redis_url",)) == "REDIS_URL"  # its alias
    assert setting_name(IntakeSettings, ("kafka", "partitions")) == "kafka.partitions"
