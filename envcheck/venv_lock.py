"""One bin/bootstrap at a time per venv: a second run (another terminal, a re-run while the first still
installs) would otherwise rebuild or patch the folder under the first one's installer.

The lock is an advisory flock on a file outside the venv (the venv may not exist yet, and nothing is left in
the user's folders): one per user and venv path, in the temporary folder. The kernel drops it when the
process ends however it ends, so a killed run never leaves the venv locked.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from envcheck.errors import TtsrigError


def lock_file(venv: Path) -> Path:
    """The lock of this venv for this user (the same resolved path gives the same file)."""
    key = hashlib.sha256(str(venv.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"ttsrig-bootstrap-{os.getuid()}-{key}.lock"


@contextmanager
def held(venv: Path) -> Iterator[None]:
    """Hold the venv's lock for the block; refuse at once, in one line, while another run holds it."""
    path = lock_file(venv)
    try:
        handle = open(path, "a+")
    except OSError as exc:
        raise TtsrigError(f"cannot open the lock file {path} ({exc.strerror}); remove it if it is yours, "
                          "or set TMPDIR to a folder you can write, and re-run bin/bootstrap.") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise TtsrigError(f"another bin/bootstrap (process {holder}) is working on {venv} now; let it "
                              "finish (or stop it), then re-run bin/bootstrap if you still need to. Nothing "
                              "was changed.") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
