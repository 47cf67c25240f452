"""The one atomic-write helper: unique temporary files, nothing left behind, readers never see half a file."""
from __future__ import annotations

import os
import stat
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


def test_failure_leaves_target_and_no_temporary(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "keep.txt"
    target.write_text("old")

    def disk_full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", disk_full)
    with pytest.raises(OSError, match="No space"):
        atomic.write_atomic(target, b"new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_permission_denied_is_one_line(tmp_path: Path, monkeypatch) -> None:
    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(atomic.os, "replace", refuse)
    with pytest.raises(TtsrigError, match="permission denied"):
        atomic.write_atomic(tmp_path / "f", b"x")
    assert list(tmp_path.iterdir()) == []


# -- what is never replaced: special files and links (issue: trust, second round, class 1) -------------

AS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not AS_ROOT, reason="mknod and chown need root; run the suite as root (CI does)")


@needs_root
def test_a_device_node_is_written_into_by_an_output_and_never_replaced(tmp_path: Path) -> None:
    null = tmp_path / "null"
    os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a copy of /dev/null's node
    atomic.write_output(null, b"RIFF a wav", "-o")  # the usual way to throw output away
    assert stat.S_ISCHR(os.lstat(null).st_mode), "the device node was replaced by a regular file"
    with pytest.raises(TtsrigError, match=r"is a character device, not a regular file, and ttsrig never replaces"):
        atomic.write_atomic(null, b"x")  # a file ttsrig keeps in its own folder: refused
    assert stat.S_ISCHR(os.lstat(null).st_mode)
    disk = tmp_path / "disk"
    os.mknod(disk, 0o600 | stat.S_IFBLK, os.makedev(7, 200))  # a loop device's number: never opened here
    for write in (lambda: atomic.write_output(disk, b"x", "-o"), lambda: atomic.write_atomic(disk, b"x")):
        with pytest.raises(TtsrigError, match="block device"):
            write()
        assert stat.S_ISBLK(os.lstat(disk).st_mode)
    assert sorted(os.listdir(tmp_path)) == ["disk", "null"], "a temporary file was left behind"


def test_a_fifo_output_is_written_into_and_a_missing_reader_is_one_line(tmp_path: Path, monkeypatch) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    atomic.write_output(fifo, b"streamed", "-o")
    reader.join(10)
    assert got == [b"streamed"] and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    monkeypatch.setattr(atomic, "FIFO_READER_WAIT_S", 0.3)
    with pytest.raises(TtsrigError, match=r"-o .*pipe is a named pipe that no process read within"):
        atomic.write_output(fifo, b"nobody listens", "-o")
    with pytest.raises(TtsrigError, match=r"named pipe \(FIFO\), not a regular file"):
        atomic.write_atomic(fifo, b"x")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and os.listdir(tmp_path) == ["pipe"]


def test_links_own_files_are_refused_a_users_output_link_is_written_through(tmp_path: Path) -> None:
    target = tmp_path / "real.wav"
    target.write_bytes(b"old")
    link = tmp_path / "out.wav"
    link.symlink_to(target)
    with pytest.raises(TtsrigError, match="is a symbolic link .* never writes its own files through links"):
        atomic.write_atomic(link, b"new")
    assert link.is_symlink() and target.read_bytes() == b"old"
    atomic.write_output(link, b"new", "-o")  # the user's own link: the file it names is written, the link kept
    assert link.is_symlink() and target.read_bytes() == b"new"


@needs_root
def test_a_link_another_user_owns_is_never_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "shadow"
    victim.write_bytes(b"secret")
    planted = tmp_path / "out.wav"
    planted.symlink_to(victim)
    os.lchown(planted, 65534, 65534)  # nobody's link, as one planted in a shared /tmp would be
    with pytest.raises(TtsrigError, match=r"symbolic link owned by another user \(uid 65534\)"):
        atomic.write_output(planted, b"overwritten", "-o")
    assert victim.read_bytes() == b"secret" and planted.is_symlink()



@needs_root
@pytest.mark.parametrize("follow_links", [True, False], ids=["a file the user names", "ttsrig's own file"])
def test_a_folder_link_another_user_owns_is_never_written_through(tmp_path: Path, follow_links: bool) -> None:
    # In a shared folder, nobody's link `shared/out` aims at the victim's folder: `-o shared/out/story.wav`
    # (or a run whose --out lies under it) must not land there.
    victim_home = tmp_path / "victim"
    victim_home.mkdir()
    (victim_home / "story.wav").write_bytes(b"the victim's")
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    planted = shared / "out"
    planted.symlink_to(victim_home)
    os.lchown(planted, 65534, 65534)
    (victim_home / "sub").mkdir()
    for target in (planted / "story.wav", planted / "sub" / "story.wav"):  # the link one folder up, or two
        with pytest.raises(TtsrigError, match=rf"{planted} is a symbolic link owned by another user \(uid 65534\)"):
            if follow_links:
                atomic.write_output(target, b"overwritten", "-o")
            else:
                atomic.write_atomic(target, b"overwritten")
    assert (victim_home / "story.wav").read_bytes() == b"the victim's"
    assert not (victim_home / "sub" / "story.wav").exists()
    os.lchown(planted, os.getuid(), os.getgid())  # the user's own folder link: followed as before
    atomic.write_output(planted / "story.wav", b"mine", "-o")
    assert (victim_home / "story.wav").read_bytes() == b"mine"

def test_a_replaced_file_keeps_its_permissions_and_a_long_name_fits(tmp_path: Path) -> None:
    private = tmp_path / "notes.json"
    private.write_text("{}")
    private.chmod(0o600)
    atomic.write_json_atomic(private, {"a": 1})
    assert private.stat().st_mode & 0o777 == 0o600, "a private file became readable by others"
    long_name = tmp_path / ("x" * 250 + ".wav")  # 254 bytes: the temporary name beside it must still fit
    atomic.write_atomic(long_name, b"ok")
    assert long_name.read_bytes() == b"ok"
