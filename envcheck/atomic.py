"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Standard library only (bin/bootstrap uses it before any package is installed).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from envcheck.errors import TtsrigError


def write_atomic(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write beside the target, then rename over it; on failure nothing is left behind."""
    tmp = path.with_name(f".{path.name}.ttsrig-tmp")
    try:
        tmp.write_bytes(data)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except PermissionError as exc:
        tmp.unlink(missing_ok=True)
        raise TtsrigError(f"cannot write {path}: permission denied ({exc.strerror}). Act on files you own, "
                          "or run as the user who created them.") from None
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: dict) -> None:
    write_atomic(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())
