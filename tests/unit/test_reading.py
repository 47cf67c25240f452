"""envcheck.reading, the one way a command reads a file something named: regular files only, bounded size,
links by policy, JSON of bounded depth (issue: trust, second round, classes 2 and 3)."""
from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import pytest

from envcheck import reading
from envcheck.errors import TtsrigError

AS_ROOT = os.geteuid() == 0


def test_a_fifo_is_refused_at_once_instead_of_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "asr-config.yml"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(TtsrigError, match=r"the ASR config .*asr-config.yml is a named pipe \(FIFO\), not a regular "
                                          r"file.*Use the upstream file"):
        reading.read_text(fifo, "the ASR config", "use the upstream file")
    assert time.monotonic() - started < 5, "reading a FIFO waited for a writer"


def test_a_device_that_never_ends_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TtsrigError, match="/dev/zero is a character device, not a regular file"):
        reading.read_bytes(Path("/dev/zero"), "config", "fix")
    link = tmp_path / "config.yml"
    link.symlink_to("/dev/zero")  # named through a link: the same
    with pytest.raises(TtsrigError, match="is a character device"):
        reading.read_bytes(link, "config", "fix")


def test_a_file_the_user_names_may_be_a_pipe_but_stays_bounded(tmp_path: Path) -> None:
    fifo = tmp_path / "text"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(b"Hello from a pipe."))
    writer.start()
    assert reading.read_text(fifo, "--file", "fix", streams=True) == "Hello from a pipe."
    writer.join(10)
    with pytest.raises(TtsrigError, match="more than the 1.0 MB such a file can be"):
        reading.read_bytes(Path("/dev/zero"), "--file", "fix", streams=True, limit=1 << 20)


def test_a_file_over_its_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    big = tmp_path / "verdicts.json"
    with open(big, "wb") as handle:
        handle.truncate(9 << 20)  # sparse: nothing of it is ever read
    with pytest.raises(TtsrigError, match=r"verdicts .* is 9.0 MB, more than the 8.0 MB such a file can be"):
        reading.read_bytes(big, "verdicts", "fix")


def test_links_inside_the_folder_are_followed_links_out_of_it_refused(tmp_path: Path) -> None:
    data = tmp_path / "recordings"
    data.mkdir()
    (data / "a.txt").write_text("inside")
    (data / "b.txt").symlink_to("a.txt")
    assert reading.read_text(data / "b.txt", "transcript", "fix", within=data) == "inside"
    secret = tmp_path / "shadow"
    secret.write_text("root:$y$SECRET:19000:0:99999:7:::\n")
    (data / "c.txt").symlink_to(secret)
    with pytest.raises(TtsrigError) as refused:
        reading.read_text(data / "c.txt", "transcript", "fix", within=data)
    message = str(refused.value)
    assert f"is a link to {secret}, outside {data}" in message and "SECRET" not in message
    (data / "up").symlink_to(tmp_path)  # a linked folder that leads out is the same
    with pytest.raises(TtsrigError, match="outside"):
        reading.read_text(data / "up" / "shadow", "transcript", "fix", within=data)


def test_own_files_are_never_read_through_a_link(tmp_path: Path) -> None:
    (tmp_path / "elsewhere.json").write_text("{}")
    (tmp_path / "verdicts.json").symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(TtsrigError, match="is a symbolic link: ttsrig never reads its own files through links"):
        reading.read_bytes(tmp_path / "verdicts.json", "verdicts", "fix", follow=False)
    assert reading.read_bytes(tmp_path / "verdicts.json", "verdicts", "fix") == b"{}"  # a file the user named


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"a":' * 5000 + "1" + "}" * 5000,
                                  "[" * 65 + "]" * 65])
def test_json_nested_too_deep_is_a_value_error_never_a_recursion_error(text: str) -> None:
    with pytest.raises(ValueError, match="nested more than 64 levels deep"):
        reading.loads_json(text)


def test_json_within_the_depth_and_brackets_inside_strings_parse() -> None:
    assert reading.loads_json("[" * 64 + "]" * 64) is not None
    assert reading.loads_json('{"text": "' + "[{" * 500 + '\\"", "n": [1]}') == {"text": "[{" * 500 + '"', "n": [1]}


@pytest.mark.skipif(not AS_ROOT, reason="mknod needs root (CI runs as root)")
def test_a_block_device_is_refused_without_opening_it(tmp_path: Path) -> None:
    disk = tmp_path / "model.pth"
    os.mknod(disk, 0o600 | stat.S_IFBLK, os.makedev(7, 201))
    with pytest.raises(TtsrigError, match="is a block device"):
        reading.read_bytes(disk, "checkpoint", "fix", limit=reading.DATA_LIMIT)


def test_a_stream_already_open_is_read_up_to_its_limit_and_no_further() -> None:
    import io

    assert reading.read_stream(io.BytesIO(b"x" * 10), "standard input", "fix", limit=10) == b"x" * 10

    class Endless(io.RawIOBase):  # /dev/zero as a raw stream, which returns less than asked
        given = 0

        def readinto(self, buffer) -> int:  # noqa: ANN001
            n = min(len(buffer), 3)
            buffer[:n] = b"\0" * n
            self.given += n
            return n

    endless = Endless()
    with pytest.raises(TtsrigError, match=r"^standard input is more than the 10 bytes such a text can be: split it$"):
        reading.read_stream(endless, "standard input", "split it", limit=10)
    assert endless.given == 11  # read past the limit by one byte, in the pieces it gave, and no further
    with open("/dev/zero", "rb") as zero:
        with pytest.raises(TtsrigError, match="more than the 1.0 MB"):
            reading.read_stream(zero, "standard input", "fix", limit=1 << 20)
