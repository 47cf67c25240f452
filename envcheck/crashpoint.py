"""Named points inside multi-file writes where a test can stop the process as a crash would.

With `TTSRIG_CRASH_AT=NAME` (or `NAME@N`: the N-th time it is reached) in its environment, a process kills
itself with SIGKILL at the point NAME: nothing is cleaned up and no handler runs, as when the power fails or
the kernel's out-of-memory killer strikes. The tests use it to prove that every multi-file write can stop
between any two of its files and the next run still trusts only a consistent set. Unset (always, outside
the tests), reaching a point is one dictionary lookup.
"""
from __future__ import annotations

import os
import signal

VARIABLE = "TTSRIG_CRASH_AT"
_reached: dict[str, int] = {}


def reached(name: str) -> None:
    wanted = os.environ.get(VARIABLE)
    if not wanted:
        return
    point, _, nth = wanted.partition("@")
    if point != name:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
