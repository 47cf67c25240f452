"""The one atomic-write helper: unique temporary files, nothing left behind, readers never see half a file."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from envcheck import atomic
from envcheck.errors import TtsrigError


def test_concurrent_writers_never_leave_half_a_file(tmp_path: Path) -> None:
    target = tmp_path / "verdicts.json"
    payloads = [bytes([65 + i]) * 200_000 for i in range(8)]
    seen: list[bytes] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            if target.exists():
                seen.append(target.read_bytes())

    watcher = threading.Thread(target=reader)
    watcher.start()
    writers = [threading.Thread(target=atomic.write_atomic, args=(target, p)) for p in payloads for _ in range(3)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    stop.set()
    watcher.join()
    assert target.read_bytes() in payloads
    assert all(s in payloads for s in seen), "a reader saw a mixed or half-written file"
    assert os.listdir(tmp_path) == ["verdicts.json"], "a temporary file was left behind"


def test_mode_and_umask(tmp_path: Path) -> None:
    atomic.write_atomic(tmp_path / "x", b"1", mode=0o755)
    assert (tmp_path / "x").stat().st_mode & 0o777 == 0o755
    old = os.umask(0o022)
    try:
        atomic.write_atomic(tmp_path / "y", b"1")
    finally:
        os.umask(old)
    assert (tmp_path / "y").stat().st_mode & 0o777 == 0o644


def test_failure_leaves_target_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "keep.txt"
    target.write_text("old")
    with pytest.raises(IsADirectoryError):
        atomic.write_atomic(tmp_path, b"new")  # renaming over a folder fails
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_permission_denied_is_one_line(tmp_path: Path, monkeypatch) -> None:
    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(atomic.os, "replace", refuse)
    with pytest.raises(TtsrigError, match="permission denied"):
        atomic.write_atomic(tmp_path / "f", b"x")
    assert list(tmp_path.iterdir()) == []
