"""One run at a time of a job that fills a folder: bin/bootstrap on a venv, trainers.prepare into OUTPUT, a
training run in --out, `audition render` into an audition folder. A second run (another terminal, a re-run
while the first still works) would otherwise rebuild, patch, delete or overwrite the folder under the first.

The lock is an advisory flock on a file outside the folder (it may not exist yet, and nothing is left in the
user's folders): one per user, job and resolved path, in the temporary folder, holding the running process's
id for the message. The kernel drops it when the process ends however it ends, so a killed run never leaves
the folder locked.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from envcheck.errors import TtsrigError


def lock_file(job: str, target: Path) -> Path:
    """The lock of this job on this folder for this user (the same resolved path gives the same file)."""
    key = hashlib.sha256(str(target.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"ttsrig-{job}-{os.getuid()}-{key}.lock"


@contextmanager
def held(job: str, target: Path, busy: Callable[[str], str]) -> Iterator[None]:
    """Hold the lock for the block; while another process holds it, refuse at once with busy(its process id)."""
    path = lock_file(job, target)
    try:
        # Never through a link, and only our own plain file: the temporary folder is shared with other users,
        # and a planted link would make the pid written below overwrite the file it points to.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
            os.close(fd)
            raise OSError(errno.EPERM, "not a plain file of this user")
    except OSError as exc:
        raise TtsrigError(f"cannot open the lock file {path} ({exc.strerror}); remove it if it is yours, "
                          "or set TMPDIR to a folder you can write, and run again.") from None
    with os.fdopen(fd, "r+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise TtsrigError(busy(handle.read().strip() or "unknown")) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
