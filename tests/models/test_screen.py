"""The audition screen: ASR-free checks on espeak-ng speech with known defects, the word check with a
scripted backend, each real backend's command line and output parsing against samples of its output,
screen.json and the bad inputs."""
from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import types
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest

from envcheck import whispercpp_probe
from envcheck.errors import TtsrigError
from tests import whisper_cpp
from tests.models import synth
from trainers import audio
from voices import asr, screen, signalcheck, wordcheck
from voices import text as text_mod

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data" / "asr"
RATE = 24_000
SENTENCES = ["After a long day, Clare and her brother walked home along the path today.",
             "The grass was cut, and the light was fading away."]
PASSAGE = " ".join(SENTENCES)
REF_TEXT = "The bath was full of warm water."
HER = 6  # 'her' in the normalised passage: after a long day clare and HER
TODAY = 13


def speech(text: str) -> np.ndarray:
    return synth.speech(text, RATE)


def end_of_sound(wave: np.ndarray) -> int:
    """The sample after the last one above -60 dBFS: where espeak-ng's speech ends, before its silence."""
    return int(np.flatnonzero(np.abs(wave) > 1e-3)[-1]) + 1


def cut_last_word(wave: np.ndarray, seconds: float = 0.12) -> np.ndarray:
    """The sentence stops `seconds` before its last word ends: mid-vowel in 'today' and 'away'."""
    return wave[:end_of_sound(wave) - int(seconds * RATE)]


def with_silence(wave: np.ndarray, seconds: float) -> np.ndarray:
    """`seconds` of silence inserted in the middle of the longest pause inside the speech (espeak-ng's
    pauses are runs of exact zeros)."""
    inside = wave[:end_of_sound(wave)]
    zero = np.concatenate([[0], (inside == 0).astype(np.int8), [0]])
    starts, ends = np.flatnonzero(np.diff(zero) == 1), np.flatnonzero(np.diff(zero) == -1)
    starts, ends = starts[starts > 0], ends[starts > 0]  # not the leading silence
    longest = int(np.argmax(ends - starts))
    at = (starts[longest] + ends[longest]) // 2
    return np.concatenate([wave[:at], np.zeros(int(seconds * RATE), np.float32), wave[at:]])


def joined(pieces: list[np.ndarray]) -> tuple[np.ndarray, list[float]]:
    """A render as audition makes one: sentences joined by voices.text.join, with its sentence ends."""
    ends = signalcheck.sentence_ends([len(p) for p in pieces])
    return text_mod.join(pieces), [round(e / RATE, 4) for e in ends]


@pytest.fixture(scope="module")
def defects() -> dict[str, tuple[np.ndarray, list[float]]]:
    first, second = speech(SENTENCES[0]), speech(SENTENCES[1])
    return {
        "clean": joined([first, second]),
        "dropped": joined([speech(SENTENCES[0].replace(" her ", " ")), second]),  # as a TTS says it without 'her'
        "cut-word": joined([cut_last_word(first), second]),  # 'today' cut mid-sound at the sentence's end
        "silence": joined([with_silence(first, 1.5), second]),  # 1.5 s inside the first sentence
        "ending": joined([first, cut_last_word(second)]),  # 'away' cut mid-sound: the render ends there
    }


def make_folder(folder: Path, defects: dict, names: list[str], *, takes: int = 1, reference_text: str | None = REF_TEXT,
                run: Path | None = None) -> Path:
    """An audition folder: one checkpoint per name (epoch 1, 2, ...), `takes` renders each, renders.json."""
    folder.mkdir(parents=True, exist_ok=True)
    ref = synth.write(folder / "ref.wav", synth.speech(REF_TEXT))  # 22.05 kHz: any rate is read
    run = run or folder / "run"
    renders = []
    for epoch, name in enumerate(names, start=1):
        wave, ends = defects[name]
        for take in range(takes):
            file = f"{epoch:02d}-epoch_{epoch:04d}" + (f"-take{take + 1}" if takes > 1 else "") + ".wav"
            audio.write_wav(folder / file, np.clip(wave, -1, 1))
            renders.append({"checkpoint": str(run / f"epoch_{epoch:04d}.safetensors"), "label": f"epoch_{epoch:04d}",
                            "file": file, "seconds": round(len(wave) / RATE, 2), "rtf": 1.5, "take": take,
                            "seed": take, "sentence_ends": ends})
    data = {"engine": "strong", "passage": PASSAGE, "reference": str(ref), "seed": 0, "renders": renders}
    if reference_text:
        data["reference_text"] = reference_text
    (folder / "renders.json").write_text(json.dumps(data))
    return folder


def by_file(result: dict) -> dict[str, dict]:
    return {r["file"]: r for r in result["renders"]}


NAMES = ["clean", "dropped", "cut-word", "silence", "ending"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory, defects) -> Path:
    return make_folder(tmp_path_factory.mktemp("screen") / "audition", defects, NAMES)


def fresh(folder: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "audition"
    shutil.copytree(folder, copy)
    return copy


# -- the ASR-free checks on espeak-ng speech --------------------------------------------------------------------


def test_asr_free_checks_flag_each_defect_and_pass_the_clean_render(folder, tmp_path):
    result = screen.screen(fresh(folder, tmp_path), backend=None)
    signal = {r["label"]: r["signal"] for r in result["renders"]}
    clean, cut, silence, ending = (signal[f"epoch_{i:04d}"] for i in (1, 3, 4, 5))
    assert clean["flags"] == [], clean["notes"]
    assert cut["flags"] == ["sentence-cut"] and [c["sentence"] for c in cut["sentence_cuts"]] == [1]
    assert silence["flags"] == ["long-silence"]
    [gap] = silence["silences"]
    assert 1.5 <= gap["seconds"] < 1.5 + 0.4 and 0.5 < gap["start"] < 1.5  # the comma pause after 'day,'
    assert ending["flags"] == ["ending-cut"] and ending["ending_db"] > -signalcheck.CUT_WITHIN_DB
    assert clean["ending_db"] < -40  # espeak-ng's ending decays into silence
    # the rate check compares with the reference clip (espeak-ng too): the clean render is close to it
    assert clean["rate"]["basis"] == "reference clip" and 0.9 < clean["rate"]["ratio"] < 1.15
    assert result["rate"]["passage_phonemes"] > 60


def test_a_dropped_word_speeds_the_rate_up_but_is_left_to_the_word_check(folder, tmp_path):
    """One dropped word changes the phoneme rate by a few per cent, inside the spread of one speaker's
    sentences (espeak-ng's vary +-6%): the ASR-free checks report the rate and raise no false flag; the
    word check (below, and with a real backend) names the word."""
    signal = {r["label"]: r["signal"] for r in screen.screen(fresh(folder, tmp_path), backend=None)["renders"]}
    dropped, clean = signal["epoch_0002"], signal["epoch_0001"]
    assert dropped["flags"] == []
    assert dropped["rate"]["ratio"] > clean["rate"]["ratio"]


def test_rate_clipping_silence_and_broken_output(defects):
    import soxr

    wave, _ = defects["clean"]
    phonemes = signalcheck.espeak_phoneme_count(PASSAGE)
    reference = signalcheck.check(wave, phonemes=phonemes).rate["per_second"]

    def flags(w: np.ndarray) -> list[str]:
        return signalcheck.check(w, phonemes=phonemes, reference_rate=reference).flags

    assert flags(wave) == []
    assert flags(soxr.resample(wave, RATE, int(RATE * 0.7))) == ["fast"]  # played at 1.43x
    assert flags(soxr.resample(wave, RATE, int(RATE * 1.4))) == ["slow"]
    assert flags(np.clip(wave * 8, -1, 1)) == ["clipping"]
    assert flags(np.zeros(RATE, np.float32)) == ["silent"]
    assert flags(wave[: int(0.2 * RATE)]) == ["silent"]
    broken = wave.copy()
    broken[1000:1100] = np.nan
    assert flags(broken)[0] == "nonfinite"


def test_sentence_ends_match_the_join_audition_uses():
    rng = np.random.default_rng(0)
    pieces = [rng.uniform(0.2, 0.5, n).astype(np.float32) for n in (30_000, 500, 41_000, 12_345)]
    out = text_mod.join(pieces)
    ends = signalcheck.sentence_ends([len(p) for p in pieces])
    assert len(ends) == 3
    fade, gap = int(0.05 * RATE), int(0.1 * RATE)
    for end in ends:
        assert out[end - 1] != 0 and not np.any(out[end:end + gap - fade])  # the pause starts exactly there


def test_say_default_collapsed_phonemes_are_named():
    phonemes = "ðə ɡɹˈæs wʌz kˈʌt"
    #         ð  ə  _  ɡ  ɹ  ˈ  æ  s  _  w  ʌ  z  _  k  ˈ  ʌ  t
    frames = [3, 2, 1, 4, 1, 1, 6, 5, 1, 2, 3, 1, 1, 4, 1, 7, 1]
    found = signalcheck.collapsed_phonemes(phonemes, frames)
    # the space and the stress mark are short by nature; 'ɹ' (1 frame), 'z' and the final 't' collapsed
    assert [(c["phoneme"], c["word"]) for c in found] == [("ɹ", "ɡɹˈæs"), ("z", "wʌz"), ("t", "kˈʌt")]
    with pytest.raises(ValueError):
        signalcheck.collapsed_phonemes("abc", [1, 2])


def test_collapsed_phonemes_a_render_recorded_are_flagged_by_name(folder, tmp_path):
    copy = fresh(folder, tmp_path)
    data = json.loads((copy / "renders.json").read_text())
    data["renders"][0]["collapsed_phonemes"] = signalcheck.collapsed_phonemes("kˈʌt", [4, 1, 7, 1])
    (copy / "renders.json").write_text(json.dumps(data))
    first, second = screen.screen(copy, backend=None)["renders"][:2]
    assert first["signal"]["flags"] == ["collapsed-phonemes"]
    assert first["signal"]["notes"] == ["phonemes given the shortest duration the model allows: t in /kˈʌt/"]
    assert second["signal"]["flags"] == []


# -- the word check with a scripted backend ---------------------------------------------------------------------


def scripted(names: list[str], takes: int = 1, **special) -> asr.Scripted:
    heard = {"clean": PASSAGE, "dropped": PASSAGE.replace(" her ", " "), "cut-word": PASSAGE.replace("today", "to"),
             "silence": PASSAGE, "ending": " [BLANK_AUDIO] " + PASSAGE.replace(" away.", ".")}
    transcripts = {}
    for epoch, name in enumerate(names, start=1):
        for take in range(takes):
            file = f"{epoch:02d}-epoch_{epoch:04d}" + (f"-take{take + 1}" if takes > 1 else "") + ".wav"
            transcripts[file] = special.get(file, heard[name])
    return asr.Scripted(transcripts)


def test_the_word_check_names_dropped_and_cut_words_and_the_suggestion(folder, tmp_path):
    copy = fresh(folder, tmp_path)
    result = screen.screen(copy, backend=scripted(NAMES))
    words = {r["label"]: r["words"] for r in result["renders"]}
    assert words["epoch_0001"]["wer"] == 0 and words["epoch_0004"]["wer"] == 0
    assert words["epoch_0002"]["dropped"] == [{"index": HER, "word": "her"}]
    assert words["epoch_0003"]["truncated"] == [{"index": TODAY, "word": "today", "heard": "to"}]
    assert [d["word"] for d in words["epoch_0005"]["dropped"]] == ["away"]
    status = {c["label"]: c["status"] for c in result["checkpoints"]}
    assert status == {"epoch_0001": "clean", "epoch_0002": "problem", "epoch_0003": "problem",
                      "epoch_0004": "clean", "epoch_0005": "problem"}  # a long silence loses no word
    assert result["suggestion"]["latest_clean"] == "epoch_0004"
    assert result["suggestion"]["first_problem"] == "epoch_0002"
    # the page marks words in the passage text: each index has its span
    span = result["passage_words"][HER]
    assert PASSAGE[span["start"]:span["end"]] == "her"
    assert result["checkpoints"][1]["words"]["dropped"] == {str(HER): 1}
    assert result["asr"] == {"backend": "scripted", "note": None}
    on_disk = json.loads((copy / "screen.json").read_text())
    assert on_disk == json.loads(json.dumps(result))


def test_takes_are_summarised_worst_and_mean_per_checkpoint(defects, tmp_path):
    folder = make_folder(tmp_path / "takes", defects, ["clean", "clean"], takes=3)
    backend = scripted(["clean", "clean"], takes=3, **{"02-epoch_0002-take2.wav": PASSAGE.replace(" her ", " ")})
    result = screen.screen(folder, backend=backend)
    first, second = result["checkpoints"]
    assert (first["takes"], second["takes"]) == (3, 3)
    assert first["status"] == "clean" and second["status"] == "problem"
    words = len(wordcheck.normalise(PASSAGE))
    assert second["words"]["wer_worst"] == round(1 / words, 4)
    assert second["words"]["wer_mean"] == round(1 / words / 3, 4)
    assert second["words"]["dropped"] == {str(HER): 1}
    assert result["suggestion"]["latest_clean"] == "epoch_0001"
    assert result["suggestion"]["first_problem"] == "epoch_0002"
    assert sorted(backend.heard) == sorted(r["file"] for r in result["renders"])


def test_checkpoints_are_in_epoch_order_and_show_their_training_loss(defects, tmp_path):
    run = tmp_path / "runs" / "myvoice-f5"
    run.mkdir(parents=True)
    (run / "train-log.tsv").write_text("epoch\tstep\tmean_loss\tlr\tseconds\tdata_seconds\n"
                                       "1\t10\t0.812300\t1e-05\t12.00\t0.100\n2\t20\t0.754100\t1e-05\t12.00\t0.100\n")
    folder = make_folder(tmp_path / "audition", defects, ["clean", "clean"], run=run)
    data = json.loads((folder / "renders.json").read_text())
    data["renders"].reverse()  # listed out of order, and a pretrain without an epoch
    data["renders"].append({**data["renders"][0], "checkpoint": str(tmp_path / "model_1250000.safetensors"),
                            "label": "model_1250000"})
    (folder / "renders.json").write_text(json.dumps(data))
    result = screen.screen(folder, backend=None)
    assert [c["label"] for c in result["checkpoints"]] == ["model_1250000", "epoch_0001", "epoch_0002"]
    assert [c["loss"] and c["loss"]["value"] for c in result["checkpoints"]] == [None, 0.8123, 0.7541]
    assert result["checkpoints"][1]["loss"]["column"] == "mean_loss"


def test_styletts2_logs_give_the_mel_loss(tmp_path):
    (tmp_path / "train-log.tsv").write_text("epoch\titers\tskipped\tseconds\tmel\tgen\n3\t30\t0\t5.00\t0.41230\t2.1\n")
    loss = screen.training_loss(str(tmp_path / "epoch_2nd_00003.pth"))
    assert loss["column"] == "mel" and loss["value"] == pytest.approx(0.4123) and loss["epoch"] == 3
    assert screen.training_loss(str(tmp_path / "epoch_2nd_00004.pth")) is None  # not logged


def test_without_a_reference_transcript_the_renders_median_is_the_basis(defects, tmp_path):
    folder = make_folder(tmp_path / "a", defects, ["clean", "dropped", "silence"], reference_text=None)
    result = screen.screen(folder, backend=None)
    assert result["rate"]["basis"] == "renders' median"
    assert all(r["signal"]["rate"]["basis"] == "renders' median" for r in result["renders"])


def test_the_reference_transcript_comes_from_the_asr_when_renders_json_has_none(defects, tmp_path):
    folder = make_folder(tmp_path / "a", defects, ["clean"], reference_text=None)
    backend = asr.Scripted({"ref.wav": REF_TEXT, "01-epoch_0001.wav": PASSAGE})
    result = screen.screen(folder, backend=backend)
    assert result["rate"]["basis"] == "reference clip (transcribed)"
    assert "ref.wav" in backend.heard


# -- bad input -------------------------------------------------------------------------------------------------


def test_no_backend_still_runs_the_asr_free_checks_and_says_how_to_add_one(folder, tmp_path):
    result = screen.screen(fresh(folder, tmp_path), backend=None)
    assert result["asr"]["backend"] is None and result["asr"]["note"] == asr.HOW_TO_ADD_ONE
    assert "faster-whisper" in result["asr"]["note"] and "whisper-cli" in result["asr"]["note"]
    assert all(r["words"] is None for r in result["renders"])
    status = {c["label"]: c["status"] for c in result["checkpoints"]}
    assert status["epoch_0001"] == "unknown" and status["epoch_0003"] == "problem"  # the cut needs no ASR
    assert result["suggestion"]["latest_clean"] is None
    assert result["suggestion"]["first_problem"] == "epoch_0003"


def test_a_backend_crash_on_one_render_is_one_line_and_the_others_are_scored(folder, tmp_path):
    backend = scripted(NAMES, **{"02-epoch_0002.wav": RuntimeError("CUDA failed\nwith a long\ntraceback")})
    result = screen.screen(fresh(folder, tmp_path), backend=backend)
    renders = by_file(result)
    assert renders["02-epoch_0002.wav"]["errors"] == [
        "scripted crashed on 02-epoch_0002.wav: RuntimeError: CUDA failed with a long traceback"]
    assert renders["02-epoch_0002.wav"]["words"] is None and renders["02-epoch_0002.wav"]["signal"]["flags"] == []
    assert all(renders[f]["words"] is not None for f in renders if f != "02-epoch_0002.wav")
    assert {c["label"]: c["status"] for c in result["checkpoints"]}["epoch_0002"] == "unknown"


def test_missing_and_unreadable_renders_are_reported_and_the_rest_screened(folder, tmp_path):
    copy = fresh(folder, tmp_path)
    (copy / "02-epoch_0002.wav").unlink()
    (copy / "03-epoch_0003.wav").write_bytes(b"RIFF\x00\x00not a wav")
    result = screen.screen(copy, backend=scripted(NAMES))
    renders = by_file(result)
    [missing] = renders["02-epoch_0002.wav"]["errors"]
    assert "missing" in missing and "audition render" in missing and "\n" not in missing
    [unreadable] = renders["03-epoch_0003.wav"]["errors"]
    assert "cannot read audio" in unreadable and "\n" not in unreadable
    assert renders["01-epoch_0001.wav"]["words"]["wer"] == 0
    assert json.loads((copy / "screen.json").read_text())["renders"][1]["errors"] == [missing]


def test_a_render_outside_the_folder_is_not_read(folder, tmp_path, defects):
    copy = fresh(folder, tmp_path)
    audio.write_wav(tmp_path / "outside.wav", defects["clean"][0])
    data = json.loads((copy / "renders.json").read_text())
    data["renders"][0]["file"] = "../outside.wav"
    (copy / "renders.json").write_text(json.dumps(data))
    backend = scripted(NAMES)
    result = screen.screen(copy, backend=backend)
    assert result["renders"][0]["errors"] == ["../outside.wav is not a file of the audition folder: render the "
                                              "folder again"]
    assert result["renders"][0]["signal"] is None and "../outside.wav" not in backend.heard


def test_a_folder_that_is_not_an_audition_folder(tmp_path):
    with pytest.raises(TtsrigError, match="not an audition folder .*voices/audition render"):
        screen.screen(tmp_path, backend=None)
    (tmp_path / "renders.json").write_text("{not json")
    with pytest.raises(TtsrigError, match="cannot be read as JSON"):
        screen.screen(tmp_path, backend=None)
    (tmp_path / "renders.json").write_text(json.dumps({"passage": "x", "renders": []}))
    with pytest.raises(TtsrigError, match="lists no renders"):
        screen.screen(tmp_path, backend=None)
    assert not (tmp_path / "screen.json").exists()


def test_screen_json_is_never_half_written(folder, tmp_path):
    copy = fresh(folder, tmp_path)
    (copy / "screen.json").write_text('{"old": true}\n')
    backend = scripted(NAMES, **{"03-epoch_0003.wav": KeyboardInterrupt()})  # interrupted mid-way
    with pytest.raises(KeyboardInterrupt):
        screen.screen(copy, backend=backend)
    assert (copy / "screen.json").read_text() == '{"old": true}\n'
    assert not [p for p in copy.iterdir() if p.name.startswith(".screen.json")]


def test_a_broken_phonemiser_skips_only_the_rate(folder, tmp_path):
    def broken(text: str) -> int:
        raise OSError("espeak-ng library not found")

    result = screen.screen(fresh(folder, tmp_path), backend=None, phoneme_count=broken)
    assert result["notes"] == ["speaking rate not checked: the phonemiser failed (OSError: espeak-ng library not found)"]
    assert by_file(result)["05-epoch_0005.wav"]["signal"]["flags"] == ["ending-cut"]
    assert all(r["signal"]["rate"] is None for r in result["renders"])


# -- the command line --------------------------------------------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "voices.screen", *args], capture_output=True, text=True, cwd="/tmp",
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_the_command_prints_a_summary_and_json(folder, tmp_path):
    copy = fresh(folder, tmp_path)
    out = cli(str(copy), "--asr", "none")
    assert out.returncode == 0, out.stderr
    assert "suggestion (not a verdict): dropped or cut words start at epoch_0003" in out.stdout
    assert "epoch_0005: " in out.stdout and "ending-cut" in out.stdout
    assert f"wrote {copy / 'screen.json'}" in out.stdout
    as_json = cli(str(copy), "--asr", "none", "--json")
    assert as_json.returncode == 0, as_json.stderr
    printed = json.loads(as_json.stdout)
    assert printed["suggestion"]["first_problem"] == "epoch_0003"
    assert printed == json.loads((copy / "screen.json").read_text())


def test_the_command_fails_in_one_line(tmp_path):
    out = cli(str(tmp_path), "--asr", "none")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.count("\n") == 1 and "not an audition folder" in out.stderr
    missing = cli(str(tmp_path), "--asr", "whisper.cpp")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


# -- the real backends' command lines and output, against samples of their output ------------------------------


FAKE_WHISPER_CLI = """#!{python}
import json, os, sys
import soundfile as sf
args = sys.argv[1:]
wav = args[args.index("-f") + 1]
data, rate = sf.read(wav)
with open(os.environ["FAKE_WHISPER_LOG"], "a") as log:
    log.write(json.dumps({{"argv": args, "rate": rate, "channels": data.ndim, "subtype": sf.info(wav).subtype}}) + "\\n")
if os.environ.get("FAKE_WHISPER_FAIL"):
    sys.stderr.write("whisper_init_from_file: failed to load model\\nerror: failed to initialize whisper context\\n")
    sys.exit(3)
with open(args[args.index("-of") + 1] + ".txt", "w") as out:
    out.write(open(os.environ["FAKE_WHISPER_OUTPUT"]).read())
"""


@pytest.fixture
def fake_whisper_cli(tmp_path, monkeypatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    binary = bin_dir / "whisper-cli"
    binary.write_text(FAKE_WHISPER_CLI.format(python=sys.executable))
    binary.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_WHISPER_LOG", str(tmp_path / "calls.jsonl"))
    monkeypatch.setenv("FAKE_WHISPER_OUTPUT", str(DATA / "whisper-cli.segments.txt"))
    model = tmp_path / "ggml-base.en.bin"
    model.write_bytes(b"ggml")
    return model


def test_whisper_cli_command_line_and_output(fake_whisper_cli, tmp_path, defects):
    backend = asr.find("whisper.cpp", model=str(fake_whisper_cli), language="en")
    said = asr.hear(backend, defects["cut-word"][0], "03-epoch_0003.wav")
    assert said == ("After a long day, Clare and her brother walked home along the path to- "
                    "The grass was cut, and the light was fading away.")
    [call] = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    argv = call["argv"]
    assert argv[argv.index("-m") + 1] == str(fake_whisper_cli)
    assert argv[argv.index("-l") + 1] == "en"
    assert argv[argv.index("-bs") + 1] == "5"  # upstream's beam unless --asr-beam says otherwise
    assert {"-nt", "-otxt", "-of", "-f"} <= set(argv)
    assert (call["rate"], call["channels"], call["subtype"]) == (16_000, 1, "PCM_16")  # what whisper.cpp reads
    checked = wordcheck.check(PASSAGE, said)
    assert checked.truncated == [(TODAY, "to")] and checked.dropped == []
    greedy = asr.find("whisper.cpp", model=str(fake_whisper_cli), language="en", beam_size=1)
    asr.hear(greedy, defects["cut-word"][0], "03-epoch_0003.wav")
    argv = json.loads((tmp_path / "calls.jsonl").read_text().splitlines()[-1])["argv"]
    assert argv[argv.index("-bs") + 1] == "1"
    with pytest.raises(TtsrigError, match="--asr-beam 0: give 1"):
        asr.find("whisper.cpp", model=str(fake_whisper_cli), language="en", beam_size=0)



def test_the_command_runs_a_real_whisper_cli(folder, tmp_path):
    """`audition screen --asr whisper.cpp` end to end with whisper.cpp's own binary (tests/whisper_cpp.py finds or,
    under CI, builds it) and envcheck/whispercpp_probe.py's random model, which says one word whatever it hears."""
    bin_dir = whisper_cpp.on_path(tmp_path, whisper_cpp.required())
    model = whispercpp_probe.ggml_model(tmp_path / "ggml-tiny-random.bin", answer=whispercpp_probe.ANSWER)
    copy = fresh(folder, tmp_path)
    out = subprocess.run([sys.executable, "-m", "voices.screen", str(copy), "--asr", "whisper.cpp", "--whisper-model",
                          str(model), "--json"], capture_output=True, text=True, cwd="/tmp",
                         env={**os.environ, "PYTHONPATH": str(ROOT), "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["asr"]["backend"] == "whisper.cpp"
    heard = {r["label"]: r["words"]["transcript"] for r in result["renders"] if r.get("words")}
    assert len(heard) == len(result["renders"]) and set(heard.values()) == {"w%d" % whispercpp_probe.ANSWER}
    assert all(r["words"]["wer"] >= 0.9 for r in result["renders"])  # a passage heard as one foreign word

def test_whisper_cli_sample_of_its_own_jfk_output(fake_whisper_cli, monkeypatch, defects):
    monkeypatch.setenv("FAKE_WHISPER_OUTPUT", str(DATA / "whisper-cli.jfk.txt"))
    said = asr.hear(asr.find("auto", model=str(fake_whisper_cli)), defects["clean"][0], "x.wav")
    assert said.startswith("And so my fellow Americans, ask not") and said.endswith("for your country.")


def test_whisper_cli_failure_is_one_line_naming_it(fake_whisper_cli, monkeypatch, defects):
    monkeypatch.setenv("FAKE_WHISPER_FAIL", "1")
    backend = asr.find("whisper.cpp", model=str(fake_whisper_cli))
    with pytest.raises(TtsrigError) as caught:
        asr.hear(backend, defects["clean"][0], "01-epoch_0001.wav")
    message = str(caught.value)
    assert message.startswith("whisper.cpp failed on 01-epoch_0001.wav:") and "\n" not in message
    assert "failed to initialize whisper context" in message


def test_whisper_cli_without_its_model_says_which_option(fake_whisper_cli):
    with pytest.raises(TtsrigError, match="--whisper-model"):
        asr.find("whisper.cpp", model=None)


def test_faster_whisper_call_and_segments(monkeypatch, defects):
    recorded = json.loads((DATA / "faster-whisper.segments.json").read_text())["segments"]
    calls: dict = {}

    segment_type = namedtuple("Segment", list(recorded[0]))  # faster_whisper's Segment is a NamedTuple

    class WhisperModel:
        def __init__(self, model, device="auto", cpu_threads=0, **kw):
            calls["model"], calls["device"], calls["threads"] = model, device, cpu_threads

        def transcribe(self, audio, language=None, beam_size=5, **kw):
            calls["audio"], calls["language"], calls["beam"] = audio, language, beam_size
            return (segment_type(**s) for s in recorded), None

    fake = types.ModuleType("faster_whisper")
    fake.__spec__ = importlib.machinery.ModuleSpec("faster_whisper", None)
    fake.WhisperModel = WhisperModel
    monkeypatch.setitem(sys.modules, "faster_whisper", fake)
    backend = asr.find("auto", model=None, language="en", device="cpu")
    # As many CTranslate2 threads as cores this process may use (its default, 4, oversubscribes 2 cores).
    assert calls["threads"] == len(os.sched_getaffinity(0))
    assert backend.name == "faster-whisper"
    wave = defects["dropped"][0]
    said = asr.hear(backend, wave, "02-epoch_0002.wav")
    assert said == ("After a long day, Clare and brother walked home along the path today. "
                    "The grass was cut, and the light was fading away.")
    assert (calls["model"], calls["device"], calls["language"], calls["beam"]) == ("base.en", "cpu", "en", 5)
    asr.hear(asr.find("auto", model=None, language="en", device="cpu", beam_size=1), wave, "02-epoch_0002.wav")
    assert calls["beam"] == 1
    assert calls["audio"].dtype == np.float32 and abs(len(calls["audio"]) - len(wave) * 16_000 / RATE) < 2
    assert wordcheck.check(PASSAGE, said).dropped == [HER]


def test_the_faster_whisper_sample_has_the_fields_of_a_captured_run(monkeypatch):
    """faster-whisper-captured.json came from a real transcribe() (faster-whisper 1.2.1, a tiny random model): the
    hand-written sample has the same fields, and the backend reads the real objects (dataclasses in 1.2.1)."""
    import dataclasses

    captured = json.loads((DATA / "faster-whisper.captured.json").read_text())["segments"]
    written = json.loads((DATA / "faster-whisper.segments.json").read_text())["segments"]
    assert {frozenset(s) for s in captured} == {frozenset(s) for s in written}
    segment_type = dataclasses.make_dataclass("Segment", list(captured[0]))

    class WhisperModel:
        def __init__(self, model, **kw):
            pass

        def transcribe(self, audio, language=None, **kw):
            return (segment_type(**s) for s in captured), None

    fake = types.ModuleType("faster_whisper")
    fake.__spec__ = importlib.machinery.ModuleSpec("faster_whisper", None)
    fake.WhisperModel = WhisperModel
    monkeypatch.setitem(sys.modules, "faster_whisper", fake)
    backend = asr.find("faster-whisper", model="tiny", language="en", device="cpu")
    said = asr.hear(backend, np.zeros(RATE, dtype=np.float32), "01-epoch_0001.wav")
    assert said == " ".join(s["text"].strip() for s in captured)


def test_a_backend_that_cannot_start_is_one_line(monkeypatch):
    class WhisperModel:
        def __init__(self, *a, **kw):
            raise RuntimeError("Unable to open file 'model.bin' in model '/nowhere'\nmore")

    fake = types.ModuleType("faster_whisper")
    fake.__spec__ = importlib.machinery.ModuleSpec("faster_whisper", None)
    fake.WhisperModel = WhisperModel
    monkeypatch.setitem(sys.modules, "faster_whisper", fake)
    with pytest.raises(TtsrigError) as caught:
        asr.find("faster-whisper", model="/nowhere")
    assert "faster-whisper could not load the model '/nowhere' (RuntimeError: Unable to open" in str(caught.value)
    assert "\n" not in str(caught.value)


def real_backend() -> tuple[str, str] | None:
    """A real backend and model, when the machine has one: $TTSRIG_TEST_WHISPER_MODEL names a ggml file
    (with whisper-cli on PATH) or a faster-whisper model folder (with faster-whisper installed)."""
    model = os.environ.get("TTSRIG_TEST_WHISPER_MODEL")
    if not model or not Path(model).exists():
        return None
    if Path(model).is_file() and shutil.which("whisper-cli"):
        return "whisper.cpp", model
    if Path(model).is_dir() and importlib.util.find_spec("faster_whisper"):
        return "faster-whisper", model
    return None


@pytest.mark.skipif(real_backend() is None, reason="no real ASR backend: set TTSRIG_TEST_WHISPER_MODEL to a ggml "
                    "model (with whisper-cli on PATH) or a faster-whisper model folder (with faster-whisper installed)")
def test_a_real_backend_hears_the_clean_render_and_the_dropped_word(folder, tmp_path):
    choice, model = real_backend()
    result = screen.screen(fresh(folder, tmp_path), backend=asr.find(choice, model=model, language="en"))
    words = {r["label"]: r["words"] for r in result["renders"]}
    assert words["epoch_0001"]["wer"] <= 0.15, words["epoch_0001"]["transcript"]
    assert HER in [d["index"] for d in words["epoch_0002"]["dropped"]], words["epoch_0002"]["transcript"]
