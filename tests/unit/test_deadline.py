"""The suite's per-test deadline (tests/support/deadline.py): a hanging test fails on its own, says where it
hung (its asyncio task's stack), and the run goes on to the next test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

HANGING = """
import asyncio
import time

import pytest


async def test_waits_for_an_event_nobody_sets():
    await asyncio.Event().wait()


def test_blocks_in_a_sleep():
    time.sleep(3600)


@pytest.mark.deadline(30)
async def test_after_them_runs_as_usual():
    await asyncio.sleep(0)
"""


def test_a_hanging_test_fails_alone_with_its_stacks_and_the_run_goes_on(tmp_path: Path) -> None:
    (tmp_path / "test_hanging.py").write_text(HANGING)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "tests.support.deadline",
            "-o",
            "asyncio_mode=auto",
            "--rootdir",
            str(tmp_path),
            "-c",
            os.devnull,
            str(tmp_path),
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "KIRUNA_TEST_DEADLINE_S": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert "2 failed, 1 passed" in out, out
    assert "test_waits_for_an_event_nobody_sets ran past its deadline of 1 s" in out, out
    assert "test_blocks_in_a_sleep ran past its deadline of 1 s" in out, out
    # the task's own stack names the line it waits on; the thread dump names the blocking sleep
    assert "in test_waits_for_an_event_nobody_sets" in out and "await asyncio.Event().wait()" in out, out
    assert "in test_blocks_in_a_sleep" in out and "--- thread MainThread" in out, out
