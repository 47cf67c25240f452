"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Each write goes to its own temporary file beside the target (so two writers never share one), is flushed
to disk, then renamed over the target; the folder is synced so the rename survives a power cut.

Only regular files are ever replaced. A name that is a device node, a named pipe, a socket or a folder is
refused in one line: a rename over it would put a plain file where the system (or the user) keeps
something else (as root, `-o /dev/null` would replace the system's /dev/null).

Links: the files ttsrig keeps in its own folders (checkpoints, clips, records, pages) are never written
through a symbolic link, nor is a link replaced: one at such a name is refused (a folder copied from
someone else could aim a write at any file of the user's). A file the user names (`write_output`, the trust
list) is written through its links, the links kept, when each link belongs to this user or root. A link
someone else planted cannot choose where any write lands, at the file's name or in a folder above it (in
/tmp, say). A file the user names may also be a named pipe or a character device such as /dev/null: the
bytes are written into it, as a shell redirection would.

Standard library only (bin/bootstrap uses it before any package is installed).
"""
from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
import time
from pathlib import Path

from envcheck.errors import TtsrigError

TEMP_SUFFIX = ".ttsrig-tmp"
_TEMP_NAME_BYTES = 40  # of the target's name in the temporary one: a name near the 255-byte limit still fits
_MAX_LINKS = 40  # as the kernel's own limit on a chain of symbolic links
FIFO_READER_WAIT_S = 10.0  # how long an output FIFO may wait for its reader to open it


_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device (a disk)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link"),
          (stat.S_ISREG, "a regular file"))


def kind_of(mode: int) -> str:
    """What a file of this st_mode is, in words for a message."""
    return next((words for test, words in _KINDS if test(mode)), "a special file")


def _trusted_owner(uid: int) -> bool:
    return uid in (os.getuid(), 0)


def _walk(given: Path, *, follow_last: bool) -> tuple[Path, os.stat_result | None]:
    """Where `given` leads, and what is there now (None: nothing). Every symbolic link on the way, in the
    folders above as at the end, is followed only when this user or root owns it: a link someone else put
    in a shared folder (such as /tmp) would let them choose where a write lands. The last one is followed
    too when `follow_last`, else returned as it is."""
    pending = list(Path(os.path.abspath(given)).parts[1:])
    current, info, links = Path("/"), os.lstat("/"), 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            current = current.parent
            continue
        candidate = current / part
        try:
            info = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            return candidate.joinpath(*pending), None  # nothing there (a parent that is a file: the caller's)
        except OSError as exc:
            raise TtsrigError(f"cannot write {given}: {exc.strerror or exc}. Choose a path you may write.") from None
        if not stat.S_ISLNK(info.st_mode) or (not pending and not follow_last):
            current = candidate
            continue
        if not _trusted_owner(info.st_uid):
            raise TtsrigError(f"refused to write {given}: {candidate} is a symbolic link owned by another user (uid "
                              f"{info.st_uid}), so they choose where it points. Remove the link or write elsewhere.")
        links += 1
        if links > _MAX_LINKS:
            raise TtsrigError(f"cannot write {given}: too many symbolic links (a loop?). Name the file itself.")
        link = os.readlink(candidate)
        if os.path.isabs(link):
            current = Path("/")
        pending[:0] = [p for p in Path(link).parts if p not in ("/", ".")]
    return current, info


def destination(path: Path) -> tuple[Path, os.stat_result | None]:
    """Where a write of `path` lands, and what is there now (None: nothing), following links that this user or
    root owns (_walk); the file at the end may be anything (the caller decides)."""
    return _walk(path, follow_last=True)


def _refuse_special(given: Path, target: Path, info: os.stat_result) -> TtsrigError:
    where = given if target == Path(os.path.abspath(given)) else f"{given} (a link to {target})"
    return TtsrigError(f"refused to write {where}: it is {kind_of(info.st_mode)}, not a regular file, and ttsrig "
                       "never replaces one. Remove it, or choose another name.")


def writable_target(path: Path, follow_links: bool = False) -> Path:
    """The regular file (or free name) a write of `path` replaces; anything else is one TtsrigError."""
    if follow_links:
        target, info = destination(path)
    else:
        target, info = _walk(path, follow_last=False)
        if info is not None and stat.S_ISLNK(info.st_mode):
            raise TtsrigError(f"refused to write {path}: it is a symbolic link (to {os.readlink(target)}), and ttsrig "
                              "never writes its own files through links (one could point at any file of yours). "
                              "Remove the link, then run again.")
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise _refuse_special(Path(path), target, info)
    return target


def _sync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # some filesystems do not open folders; the rename itself is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int | None = None, *, follow_links: bool = False) -> None:
    """Write beside the target, then rename over it; on failure nothing is left behind. An existing file
    keeps its permission bits unless `mode` is given (a private file stays private). `follow_links`: the
    user named this file (see the module's docstring)."""
    path = Path(path)
    target = writable_target(path, follow_links)
    tmp: Path | None = None
    try:
        if mode is None:
            mode = _existing_mode(target)
        short = os.fsencode(target.name)[:_TEMP_NAME_BYTES].decode(errors="ignore")
        fd, name = tempfile.mkstemp(prefix=f".{short}.", suffix=TEMP_SUFFIX, dir=target.parent)
        tmp = Path(name)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode if mode is not None else 0o666 & ~_umask())
        os.replace(tmp, target)
        tmp = None
        _sync_folder(target.parent)
    except PermissionError as exc:
        raise TtsrigError(f"cannot write {path}: permission denied ({exc.strerror}). Act on files you own, "
                          "or run as the user who created them.") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def _existing_mode(target: Path) -> int | None:
    try:
        return os.stat(target).st_mode & 0o777
    except OSError:
        return None


def _umask() -> int:
    # mkstemp creates 0600 files; a plain write would honour the umask, so do the same.
    current = os.umask(0)
    os.umask(current)
    return current


def write_json_atomic(path: Path, data: dict, mode: int | None = None, *, follow_links: bool = False) -> None:
    write_atomic(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode(), mode, follow_links=follow_links)


# -- an output the user named ------------------------------------------------------------------------

def streamable(info: os.stat_result | None) -> bool:
    """A file the bytes are written into instead of replaced: a named pipe, a character device."""
    return info is not None and (stat.S_ISFIFO(info.st_mode) or stat.S_ISCHR(info.st_mode))


def output_target(path: Path, flag: str) -> tuple[Path, os.stat_result | None]:
    """The file `flag PATH` will be written to, refused now (before any work) when it cannot be."""
    target, info = destination(path)
    if info is not None and not stat.S_ISREG(info.st_mode) and not streamable(info):
        where = path if target == Path(os.path.abspath(path)) else f"{path} (a link to {target})"
        raise TtsrigError(f"{flag} {where} is {kind_of(info.st_mode)}: name a file to write (a named pipe or "
                          "/dev/null is written into, never replaced)")
    return target, info


def write_output(path: Path, data: bytes, flag: str) -> None:
    """A file the user named on the command line: a regular file (or a free name) is replaced atomically;
    a named pipe or a character device (/dev/null, /dev/stdout's terminal) gets the bytes written into it."""
    target, info = output_target(Path(path), flag)
    if not streamable(info):
        write_atomic(Path(path), data, follow_links=True)
        return
    try:
        fd = _open_stream(target, stat.S_ISFIFO(info.st_mode))
    except OSError as exc:
        raise TtsrigError(f"cannot write {flag} {path}: {exc.strerror or exc}.") from None
    if fd is None:
        raise TtsrigError(f"{flag} {path} is a named pipe that no process read within {FIFO_READER_WAIT_S:.0f} s: "
                          "start its reader first (e.g. `cat PIPE > file &`), then run this again.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    except OSError as exc:
        raise TtsrigError(f"cannot write {flag} {path}: {exc.strerror or exc}.") from None


def _open_stream(target: Path, fifo: bool) -> int | None:
    """An fd open for writing into `target`; for a FIFO, None when no reader came (never blocks forever)."""
    if not fifo:
        return os.open(target, os.O_WRONLY | os.O_NOCTTY)
    deadline = time.monotonic() + FIFO_READER_WAIT_S
    while True:
        try:
            fd = os.open(target, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
            if time.monotonic() > deadline:
                return None
            time.sleep(0.1)
            continue
        os.set_blocking(fd, True)
        return fd
