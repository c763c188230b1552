"""A deadline for every test (setup, call and teardown together), so that a test which hangs fails on its own
with a picture of where it hung instead of holding the whole run until CI gives up (90 minutes).

When a test passes its deadline (``KIRUNA_TEST_DEADLINE_S``, 300 s by default; ``@pytest.mark.deadline(600)`` for
a test that needs longer), this prints every thread's stack and every asyncio task's stack to stderr, then fails
the test from inside whatever it was waiting on (SIGALRM in the main thread, where the event loop runs). Its
teardown gets a second, shorter deadline; a run that still does not move after that is ended (exit status 1),
since nothing after it could be trusted."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
import traceback

import pytest

DEFAULT_S = float(os.environ.get("KIRUNA_TEST_DEADLINE_S", "300"))
TEARDOWN_S = 60.0


class DeadlinePassed(Exception):
    pass


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "deadline(seconds): this test's own deadline instead of the default 300 s")


def _dump(nodeid: str, seconds: float) -> None:
    err = sys.stderr
    print(f"\n=== {nodeid} passed its deadline of {seconds:.0f} s; where every thread and task was ===", file=err)
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    for ident, frame in sys._current_frames().items():  # as text: any stderr will do, captured or not
        print(f"--- thread {names.get(ident, '?')} ({ident})", file=err)
        traceback.print_stack(frame, limit=40, file=err)
    try:
        loop = asyncio.get_running_loop()  # the handler runs in the main thread, inside the loop if one runs
    except RuntimeError:
        return
    for task in list(asyncio.all_tasks(loop)):
        print(f"--- {task!r}", file=err)
        task.print_stack(limit=30, file=err)
    err.flush()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    marker = item.get_closest_marker("deadline")
    seconds = float(marker.args[0]) if marker else DEFAULT_S
    fired = 0
    started = time.monotonic()

    def passed(signum, frame) -> None:
        nonlocal fired
        fired += 1
        if fired > 2:  # what is printed now must reach the terminal: pytest would never show its capture
            capture = item.config.pluginmanager.getplugin("capturemanager")
            if capture is not None:
                capture.suspend_global_capture()
            _dump(item.nodeid, time.monotonic() - started)
            print(f"=== {item.nodeid} does not move at all: ending the run ===", file=sys.stderr, flush=True)
            os._exit(1)
        _dump(item.nodeid, time.monotonic() - started)
        signal.setitimer(signal.ITIMER_REAL, TEARDOWN_S)  # what is left (its teardown) gets this long
        raise DeadlinePassed(f"{item.nodeid} ran past its deadline of {seconds:.0f} s (stacks above, on stderr)")

    previous = signal.signal(signal.SIGALRM, passed)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
