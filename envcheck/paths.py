"""The paths a user passes, checked before a command writes anything: each wrong kind of thing (a file where
a folder belongs or the reverse, a device or pipe, a parent that is a file, a read-only place) is one
TtsrigError naming the path, the cause and the next step. (Reading is envcheck.reading's.)

Standard library only (envcheck imports no other ttsrig package).
"""
from __future__ import annotations

import fcntl
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from envcheck import atomic
from envcheck.errors import TtsrigError


def _nearest_existing(path: Path) -> Path:
    """`path` or the closest of its parents that exists (the folder a mkdir -p would start from)."""
    path = Path(os.path.abspath(path))
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def _read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _writable_from(target: Path, flag: str, kind: str) -> None:
    """`target` (a `kind`) can be made: the nearest existing path above it is a folder this user may write."""
    start = _nearest_existing(target if kind == "folder" else target.parent)
    cannot = f"cannot {'make' if kind == 'folder' else 'write'} {flag} {target}"
    if not start.is_dir():
        raise TtsrigError(f"{cannot}: {start} is a file, not a folder. Choose a {kind} whose "
                          "parents are folders")
    if _read_only(start):
        raise TtsrigError(f"{cannot}: {start} is on a read-only file system. Choose a {kind} "
                          "on a writable disk")
    if not os.access(start, os.W_OK | os.X_OK):
        raise TtsrigError(f"{cannot}: you may not write in {start} (permission denied). "
                          f"Choose a {kind} you may write, or run as the user who owns it")


def output_folder(path: Path, flag: str) -> None:
    """A folder a command will create or write into; refused now when it cannot be."""
    if path.exists() and not path.is_dir():
        raise TtsrigError(f"{flag} {path} is a file, not a folder: choose a folder (it is created if missing)")
    _writable_from(path, flag, "folder")


def output_file(path: Path, flag: str, *, make_parents: bool = False) -> None:
    """A file a command will write (atomically, so an existing one is replaced; a named pipe or /dev/null is
    written into); refused now when it cannot be: a folder, a device or socket, a link of another user's.
    Its folder must exist unless the command makes it (`make_parents`)."""
    if path.is_dir():
        raise TtsrigError(f"{flag} {path} is a folder: name the file to write in it")
    target, info = atomic.output_target(path, flag)
    if atomic.streamable(info):
        return  # written into as it is: nothing is made beside it
    path = target
    _writable_from(path, flag, "file")
    if not make_parents and not path.parent.is_dir():
        raise TtsrigError(f"cannot write {flag} {path}: the folder {path.parent} does not exist. Create it or "
                          f"choose another {flag}")


@contextmanager
def removed_on_failure(out: Path, produced: Callable[[], bool]) -> Iterator[None]:
    """For a block that makes the folder `out`: when the block fails before `produced()` holds, the folders
    made for it (`out` and any of its parents that were missing) are removed again, so a failed start
    leaves nothing half-written. A folder that existed before is never removed, and a parent made for `out`
    is removed only while empty: another run may have put its own folder there in the meantime."""
    missing = []  # `out`, then each missing parent up to the first that exists
    folder = Path(os.path.abspath(out))
    while not os.path.lexists(folder):
        missing.append(folder)
        folder = folder.parent
    try:
        yield
    except BaseException:
        if missing and not produced():
            shutil.rmtree(missing[0], ignore_errors=True)  # refuses a link put in its place: nothing followed
            for parent in missing[1:]:
                try:
                    os.rmdir(parent)
                except OSError:
                    break  # not empty (or gone): what is in it now is not this run's
        raise


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock on an existing folder for a short block, waiting its turn: a flock on the folder itself,
    so no lock file is left in the user's folder and the kernel frees it however the process ends. (A second
    run of a long job is refused instead: envcheck.run_lock.)"""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
