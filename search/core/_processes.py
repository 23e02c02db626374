"""Is a process still running? One answer for the service and for orphaned trials.

A killed process lingers as a zombie until its parent (or, for an orphan, pid 1) reaps
it, and `os.kill(pid, 0)` still succeeds on a zombie. Both callers need "has it ended",
so a zombie counts as ended here.
"""

from __future__ import annotations

import os
from pathlib import Path


def start_ticks(pid: int | None) -> int | None:
    """The kernel's start time of a live, non-zombie process (Linux /proc), else None.

    With the pid, it names one process: a pid reused by a later process has other ticks.
    """
    if not pid:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])  # field 22 of stat; fields here start at field 3


def alive(pid: int) -> bool:
    """Whether `pid` is a running process; a zombie awaiting its reaper has ended."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    if not Path("/proc/self/stat").exists():
        return True  # no /proc (not Linux): existence is all that can be told
    return start_ticks(pid) is not None
