"""`envcheck evidence --checks asr`: the ASR backends' wheels, checked in a venv the user installed them into."""
from __future__ import annotations

import importlib.util
import sys

import pytest

from envcheck import cli, evidence


def test_the_asr_set_checks_every_wheel_and_faster_whispers_whole_path():
    names = [c.name for c in evidence.CHECK_SETS["asr"]]
    assert names[:5] == ["numpy", "ctranslate2", "av (PyAV)", "onnxruntime", "tokenizers"]
    assert {"ctranslate2 Whisper load + encode", "faster-whisper transcribe float32",
            "faster-whisper transcribe int8", "faster-whisper VAD (onnxruntime)"} <= set(names)
    assert evidence.CHECK_SETS["locks"] is evidence.CHECKS and not set(names[5:]) & {c.name for c in evidence.CHECKS}


def test_the_asr_record_names_what_is_missing(tmp_path, capsys):
    if importlib.util.find_spec("ctranslate2"):
        pytest.skip("this interpreter has ctranslate2: the row would say ok (the recorded evidence covers that)")
    out = tmp_path / "record.txt"
    code = cli.main(["evidence", "--checks", "asr", "--python", sys.executable, "--only", "ctranslate2",
                     "--out", str(out)])
    record = out.read_text()
    [row] = [line for line in record.splitlines() if line.startswith("ctranslate2")]
    assert " failed " in row and "No module named 'ctranslate2'" in row and code == 1
    assert record == capsys.readouterr().out


def test_the_whisper_cpp_set_runs_the_named_build_and_only_it_under_emulation():
    checks = evidence.whisper_cpp_checks("/opt/w/whisper-cli", "phenom")
    assert [c.name for c in checks] == ["whisper.cpp build (system_info)", "whisper.cpp transcribe (ttsrig's command)"]
    assert all("'/opt/w/whisper-cli', emulate='phenom'" in c.code and not c.program for c in checks)


@pytest.mark.parametrize("given, says", [(None, "needs --whisper-cli PATH"), ("/nonexistent/whisper-cli",
                                                                           "is not an executable file")])
def test_the_whisper_cpp_record_needs_an_executable_build(tmp_path, capsys, given, says):
    out = tmp_path / "record.txt"
    argv = ["evidence", "--checks", "whisper.cpp", "--python", sys.executable, "--out", str(out)]
    code = cli.main(argv + (["--whisper-cli", given] if given else []))
    assert code == 2 and says in capsys.readouterr().err and not out.exists()

