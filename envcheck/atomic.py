"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Each write goes to its own temporary file beside the target (so two writers never share one), is flushed
to disk, then renamed over the target; the folder is synced so the rename survives a power cut.
Standard library only (bin/bootstrap uses it before any package is installed).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from envcheck.errors import TtsrigError

TEMP_SUFFIX = ".ttsrig-tmp"


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


def write_atomic(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write beside the target, then rename over it; on failure nothing is left behind."""
    path = Path(path)
    tmp: Path | None = None
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
        tmp = Path(name)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode if mode is not None else 0o666 & ~_umask())
        os.replace(tmp, path)
        tmp = None
        _sync_folder(path.parent)
    except PermissionError as exc:
        raise TtsrigError(f"cannot write {path}: permission denied ({exc.strerror}). Act on files you own, "
                          "or run as the user who created them.") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def _umask() -> int:
    # mkstemp creates 0600 files; a plain write would honour the umask, so do the same.
    current = os.umask(0)
    os.umask(current)
    return current


def write_json_atomic(path: Path, data: dict) -> None:
    write_atomic(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())
