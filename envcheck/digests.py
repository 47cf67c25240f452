"""sha256 digests of files and of bytes already read: the one place ttsrig computes them.

Standard library only (bin/bootstrap checks wheel hashes with it before any package is installed).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

BLOCK = 1 << 20  # files are read a block at a time, so a large checkpoint is never held whole


def file_sha256(path: Path, *more: Path) -> str:
    """The sha256 of a file's bytes, or of several files' bytes one after the other."""
    digest = hashlib.sha256()
    for each in (path, *more):
        with open(each, "rb") as handle:
            for block in iter(lambda: handle.read(BLOCK), b""):
                digest.update(block)
    return digest.hexdigest()


def bytes_sha256(data: bytes) -> str:
    """The sha256 of bytes already in memory (a loader hashes exactly the bytes it then loads)."""
    return hashlib.sha256(data).hexdigest()
