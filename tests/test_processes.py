"""A killed process that is not yet reaped (a zombie) has ended, for every caller."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from search.core import alive, start_ticks

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_a_running_process_is_alive_and_its_zombie_is_not() -> None:
    """Guards: `os.kill(pid, 0)` succeeds on a zombie; a trial whose worker was killed
    must still be seen as orphaned before the worker is reaped (a flaky service test)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert alive(child.pid) and start_ticks(child.pid) is not None
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while alive(child.pid) and time.monotonic() < deadline:
            time.sleep(0.05)  # not reaped: the child stays a zombie of this process
        os.kill(child.pid, 0)  # the pid still exists ...
        assert not alive(child.pid)  # ... but the process has ended
        assert start_ticks(child.pid) is None
    finally:
        child.kill()
        child.wait()
    assert not alive(child.pid)  # reaped: gone


def test_no_pid_is_not_alive() -> None:
    assert not alive(0) and not alive(-1) and start_ticks(None) is None
