"""A check in its own interpreter: how it ended, named without killing the caller."""
import sys

import pytest

from envcheck import isolated
from envcheck.errors import TtsrigError
from envcheck.isolated import CRASHED, FAILED, OK, TIMED_OUT, Check


def verdict(code, timeout=30.0):
    return isolated.run_check(Check("t", code, timeout), sys.executable)


def test_ok_reports_the_last_line_printed():
    v = verdict("print('first'); print('1.26.4 ready')")
    assert (v.status, v.detail) == (OK, "1.26.4 ready")


def test_sigill_is_named_and_explained():
    v = verdict("import os, signal; os.kill(os.getpid(), signal.SIGILL)")
    assert (v.status, v.signal) == (CRASHED, "SIGILL")
    assert "an instruction this CPU lacks" in v.detail


def test_sigfpe_points_at_the_onednn_fault_and_its_patch():
    v = verdict("import os, signal; os.kill(os.getpid(), signal.SIGFPE)")
    assert (v.status, v.signal) == (CRASHED, "SIGFPE")
    assert "oneDNN" in v.detail and "sitecustomize patch" in v.detail


def test_an_exception_shows_its_last_line():
    v = verdict("raise ImportError('libfoo.so: cannot open shared object file')")
    assert (v.status, v.detail) == (FAILED, "ImportError: libfoo.so: cannot open shared object file")


def test_a_hang_times_out():
    v = verdict("import time; time.sleep(30)", timeout=1)
    assert v.status == TIMED_OUT and "1 s" in v.detail


def test_missing_qemu_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(isolated.shutil, "which", lambda name: None)
    with pytest.raises(TtsrigError, match=r"apt-get install qemu-user"):
        isolated.run_check(Check("t", "pass"), sys.executable, emulate="phenom")


def test_emulation_drops_the_openblas_core_override(monkeypatch):
    monkeypatch.setattr(isolated, "qemu_command", lambda cpu: [])  # run natively, keep the env handling
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    code = "import os; print(os.environ.get('OPENBLAS_CORETYPE', 'unset'))"
    assert isolated.run_check(Check("t", code), sys.executable, emulate="phenom").detail == "unset"
    assert isolated.run_check(Check("t", code), sys.executable).detail == "Haswell"


def test_evidence_command_writes_the_record(tmp_path, capsys):
    from envcheck import cli, evidence

    evidence_names = [c.name for c in evidence.CHECKS]
    assert "torch float32 matmul" in evidence_names and "uv (the installer binary)" in evidence_names
    out = tmp_path / "record.txt"
    code = cli.main(["evidence", "--python", sys.executable, "--only", "soundfile", "--out", str(out)])
    record = out.read_text()
    assert record.startswith("# envcheck evidence, ")
    row = [line for line in record.splitlines() if line.startswith("soundfile")]
    assert len(row) == 1
    assert code == (0 if " ok " in row[0] else 1)
    assert record == capsys.readouterr().out
