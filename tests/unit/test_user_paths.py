"""Paths of the wrong kind given to envcheck and patches (no torch): one line on stderr, exit 2, nothing written.

The torch commands (trainers, voices) have the same tests beside their own, in tests/models."""
from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import pytest

from envcheck import cli as envcheck_cli
from envcheck import isolated, paths, reading, together
from envcheck.errors import TtsrigError
from envcheck.isolated import Check
from patches import cli as patches_cli

AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def read_only_disk(monkeypatch):
    """Make statvfs report a read-only file system (root writes anywhere else; mounts need privileges)."""
    real = os.statvfs

    class ReadOnly:
        def __init__(self, result):
            self.f_flag = result.f_flag | os.ST_RDONLY

    monkeypatch.setattr(paths.os, "statvfs", lambda p: ReadOnly(real(p)))


# -- envcheck.paths -------------------------------------------------------------------------------

def test_an_output_folder_that_is_a_file_or_under_one_is_refused(tmp_path):
    file = tmp_path / "taken"
    file.write_text("x")
    with pytest.raises(TtsrigError, match=r"is a file, not a folder: choose a folder"):
        paths.output_folder(file, "--out")
    expected = rf"cannot make --out {file / 'a' / 'b'}: {file} is a file, not a folder. Choose a folder"
    with pytest.raises(TtsrigError, match=expected):
        paths.output_folder(file / "a" / "b", "--out")
    paths.output_folder(tmp_path / "new" / "run", "--out")  # a missing folder under a folder is fine
    assert not (tmp_path / "new").exists()  # the check writes nothing


def test_an_output_on_a_read_only_disk_is_refused(tmp_path, read_only_disk):
    with pytest.raises(TtsrigError, match=rf"{tmp_path} is on a read-only file system. Choose a folder"):
        paths.output_folder(tmp_path / "run", "--out")
    with pytest.raises(TtsrigError, match="read-only file system. Choose a file on a writable disk"):
        paths.output_file(tmp_path / "x.wav", "-o")


@pytest.mark.skipif(AS_ROOT, reason="root may write into any folder: permission cannot be denied to it")
def test_an_output_in_a_folder_without_write_permission_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    with pytest.raises(TtsrigError, match="permission denied"):
        paths.output_folder(locked / "run", "--out")


def test_an_output_file_that_is_a_folder_or_in_a_missing_folder_is_refused(tmp_path):
    with pytest.raises(TtsrigError, match=rf"-o {tmp_path} is a folder: name the file"):
        paths.output_file(tmp_path, "-o")
    with pytest.raises(TtsrigError, match=rf"the folder {tmp_path / 'no'} does not exist. Create it"):
        paths.output_file(tmp_path / "no" / "x.txt", "--out")
    paths.output_file(tmp_path / "no" / "x.txt", "-o", make_parents=True)


def test_a_text_file_missing_a_folder_or_not_utf8_is_named_with_the_fix(tmp_path):
    fix = "make one with X"
    with pytest.raises(TtsrigError, match=rf"thing {tmp_path / 'no'} does not exist: {fix}"):
        reading.read_text(tmp_path / "no", "thing", fix)
    with pytest.raises(TtsrigError, match=rf"thing {tmp_path} is a folder, not a file: {fix}"):
        reading.read_text(tmp_path, "thing", fix)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("ok\ncaf\u00e9\n".encode("latin-1"))
    with pytest.raises(TtsrigError, match=r"latin.txt:2 is not UTF-8 text \(byte 0xe9\): re-save it as UTF-8"):
        reading.read_text(latin, "thing", fix)


@pytest.mark.skipif(AS_ROOT, reason="root reads a chmod 000 file: permission cannot be denied to it")
def test_an_unreadable_file_is_named_with_the_fix(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("x")
    secret.chmod(0)
    with pytest.raises(TtsrigError, match="cannot read thing .* fix its permissions"):
        reading.read_text(secret, "thing", "fix")


# -- envcheck scan and evidence -------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["folder", "latin-1"])
def test_scan_of_a_folder_or_a_non_utf8_file_says_what_to_give(tmp_path, capsys, kind):
    target = tmp_path
    if kind == "latin-1":
        target = tmp_path / "req.txt"
        target.write_bytes("numpy==1.26.4  # caf\u00e9\n".encode("latin-1"))
    assert envcheck_cli.main(["scan", str(target), "--tier", "v3"]) == 2
    line = one_line(capsys)
    assert str(target) in line and "name a pip requirements or lock file" in line
    assert ("is a folder, not a file" if kind == "folder" else "is not UTF-8 text") in line


def test_scan_never_prints_a_line_of_a_file_an_include_names(tmp_path, capsys):
    secret = tmp_path / "shadow"
    secret.write_text("root:$y$j9T$SECRETHASH:19000:0:99999:7:::\n")
    shared = tmp_path / "project"
    shared.mkdir()
    (shared / "requirements.txt").write_text(f"numpy==1.26.4\n-r {secret}\n")  # a file someone shared
    assert envcheck_cli.main(["scan", str(shared / "requirements.txt"), "--tier", "v3"]) == 2
    line = one_line(capsys)
    assert f"{secret}:1, included with -r, is not a requirements file" in line and "SECRET" not in line
    assert "root:" not in line


def test_scan_reads_a_pipe_it_is_given_and_refuses_one_an_include_names(tmp_path, capsys):
    import threading

    fifo = tmp_path / "frozen"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text("numpy==2.4.6\n"))
    writer.start()
    assert envcheck_cli.main(["scan", str(fifo), "--tier", "pre-v2", "--python", "3.11"]) == 1  # `scan <(pip freeze)`
    writer.join(10)
    assert "numpy" in capsys.readouterr().out
    (tmp_path / "top.txt").write_text(f"-r {fifo}\n")
    assert envcheck_cli.main(["scan", str(tmp_path / "top.txt"), "--tier", "v3"]) == 2  # no writer: no hang
    assert "named pipe (FIFO), not a regular file" in one_line(capsys)


@pytest.fixture
def no_checks_run(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the checks ran although --out or --python was refused")

    monkeypatch.setattr(together, "run_all", refuse)


@pytest.mark.parametrize("case", ["folder", "under a file", "missing folder"])
def test_evidence_refuses_an_unwritable_out_before_running_checks(tmp_path, capsys, no_checks_run, case):
    file = tmp_path / "file"
    file.write_text("x")
    out, expected = {"folder": (tmp_path, "is a folder"),
                     "under a file": (file / "record.txt", f"{file} is a file, not a folder"),
                     "missing folder": (tmp_path / "no" / "record.txt", "does not exist. Create it")}[case]
    assert envcheck_cli.main(["evidence", "--python", sys.executable, "--only", "numpy", "--out", str(out)]) == 2
    line = one_line(capsys)
    assert line.startswith(f"envcheck: cannot write --out {out}") or line.startswith(f"envcheck: --out {out}")
    assert expected in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"] and file.read_text() == "x"


@pytest.mark.parametrize("case", ["missing", "folder"])
def test_evidence_refuses_a_python_that_is_no_interpreter(tmp_path, capsys, no_checks_run, case):
    python = tmp_path / "nope" if case == "missing" else tmp_path
    assert envcheck_cli.main(["evidence", "--python", str(python), "--only", "numpy"]) == 2
    line = one_line(capsys)
    assert f"--python {python}" in line and ("does not exist" if case == "missing" else "is a folder") in line


def test_a_program_check_whose_program_is_missing_fails_without_a_traceback(tmp_path):
    python = tmp_path / "bin" / "python"  # a venv without uv beside its python
    verdict = isolated.run_check(Check("uv", "", program=("uv", "--version")), str(python))
    assert verdict.status == isolated.FAILED and f"cannot run {tmp_path / 'bin' / 'uv'}" in verdict.detail


# -- patches convert and trust --------------------------------------------------------------------

def test_convert_output_under_a_file_names_that_file(tmp_path, capsys):
    source, file = tmp_path / "model.pt", tmp_path / "file"
    source.write_bytes(b"not read")
    file.write_text("x")
    assert patches_cli.main(["convert", str(source), "-o", str(file / "model.safetensors")]) == 2
    assert f"{file} is a file, not a folder" in one_line(capsys)
    assert file.read_text() == "x"


def safetensors_file(path: Path) -> Path:
    header = b'{"__metadata__":{"note":"test"}}'
    path.write_bytes(len(header).to_bytes(8, "little") + header)
    return path


def test_trust_add_on_a_read_only_disk_is_one_line_and_leaves_the_list(tmp_path, capsys, monkeypatch):
    import envcheck.atomic

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    trust_file = tmp_path / "trust.json"
    monkeypatch.setattr(envcheck.atomic.tempfile, "mkstemp", read_only)
    checkpoint = safetensors_file(tmp_path / "w.safetensors")
    code = patches_cli.main(["trust", "--trust-file", str(trust_file), "add", str(checkpoint)])
    assert code == 2
    line = one_line(capsys)
    assert f"cannot write the checkpoint trust list {trust_file} (Read-only file system)" in line
    assert "TTSRIG_TRUST_FILE" in line and not trust_file.exists()


def test_bootstrap_refuses_a_venv_on_a_read_only_disk_before_building_anything(tmp_path, read_only_disk, capsys):
    from envcheck import bootstrap

    venv = tmp_path / "venv"
    assert bootstrap.main(["--venv", str(venv), "--python", sys.executable, "--dry-run"]) == 2
    assert one_line(capsys).endswith(
        f"cannot make --venv {venv}: {tmp_path} is on a read-only file system. Choose a folder on a writable disk")
    assert not venv.exists()


def test_a_failed_start_removes_only_the_folders_it_made(tmp_path):
    out = tmp_path / "new" / "run"
    with pytest.raises(RuntimeError):
        with paths.removed_on_failure(out, lambda: False):
            out.mkdir(parents=True)
            raise RuntimeError("failed before any output")
    assert not (tmp_path / "new").exists() and tmp_path.is_dir()
    kept = tmp_path / "kept"
    kept.mkdir()
    with pytest.raises(RuntimeError):
        with paths.removed_on_failure(kept, lambda: False):
            raise RuntimeError("a folder that existed before stays")
    assert kept.is_dir()
    with pytest.raises(RuntimeError):
        with paths.removed_on_failure(out, lambda: True):
            out.mkdir(parents=True)
            raise RuntimeError("after the first output, the folder stays")
    assert out.is_dir()



def test_a_failed_start_leaves_a_parent_it_made_when_another_run_now_uses_it(tmp_path):
    # Run b starts while runs/ is missing, so runs/ is made for it; run a then puts its folder in runs/. When
    # b fails, its own folder goes, and runs/ stays with a's checkpoint in it.
    mine, theirs = tmp_path / "runs" / "b", tmp_path / "runs" / "a"
    with pytest.raises(RuntimeError):
        with paths.removed_on_failure(mine, lambda: False):
            mine.mkdir(parents=True)
            theirs.mkdir()
            (theirs / "epoch_1.safetensors").write_bytes(b"weights")
            raise RuntimeError("b failed before any output")
    assert not mine.exists()
    assert (theirs / "epoch_1.safetensors").read_bytes() == b"weights"

# -- patches inspect on malformed safetensors (issue: trust, second round) --------------------------------

def safetensors_bytes(header: bytes, data: bytes = b"") -> bytes:
    return len(header).to_bytes(8, "little") + header + data


@pytest.mark.parametrize("case, header, data, reason", [
    ("bytes missing", b'{"w":{"dtype":"F32","shape":[1000],"data_offsets":[0,4000]}}', b"\0" * 16,
     "lies outside the file's data"),
    ("shape and size disagree", b'{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', b"\0" * 8,
     "does not fit its shape and dtype"),
    ("unknown dtype", b'{"w":{"dtype":"F99","shape":[1],"data_offsets":[0,4]}}', b"\0" * 4, "has no known dtype"),
    ("overlapping", b'{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],'
                    b'"data_offsets":[2,6]}}', b"\0" * 6, "overlap or leave gaps"),
    ("nested without end", b'{"__metadata__":' + b'{"a":' * 5000 + b"1" + b"}" * 5001, b"",
     "nested more than 64 levels deep"),
])
def test_inspect_never_calls_a_malformed_safetensors_file_safe(tmp_path, capsys, case, header, data, reason):
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(safetensors_bytes(header, data))
    assert patches_cli.main(["inspect", str(bad)]) == 2
    out = capsys.readouterr()
    assert "loads without running code" not in out.out
    assert f"{bad} is not a readable safetensors file" in out.err and reason in out.err
    assert len(out.err.strip().splitlines()) == 1 and "Traceback" not in out.err


def test_inspect_of_a_well_formed_safetensors_file_says_it_loads_without_code(tmp_path, capsys):
    good = tmp_path / "model.safetensors"
    good.write_bytes(safetensors_bytes(b'{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
                                       b'"__metadata__":{"note":"x"}}', b"\0" * 8))
    assert patches_cli.main(["inspect", str(good)]) == 0
    assert "loads without running code" in capsys.readouterr().out


def test_inspect_of_a_fifo_is_one_line_not_a_hang(tmp_path, capsys):
    fifo = tmp_path / "model.pth"
    os.mkfifo(fifo)
    assert patches_cli.main(["inspect", str(fifo)]) == 2
    assert "is a named pipe (FIFO), not a regular file" in one_line(capsys)
