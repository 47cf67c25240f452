"""`voices/audition screen` and `render --screen/--takes`: screen.json, and the page that shows the results.

The folders are espeak-ng renders with known defects (tests/models/test_screen.py makes them) and the word
check runs through a scripted ASR backend; the page is read back from headless Chromium (its ?selftest=1
report says what it shows). `render --takes 2` runs the real command with tiny random F5 checkpoints.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.models import synth, voices_fixtures
from tests.models.test_screen import HER, NAMES, PASSAGE, REF_TEXT, TODAY, defects, make_folder, scripted  # noqa: F401
from voices import asr, audition, markers, say, screen

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "voices" / "audition"
ENV = {**os.environ, "TTSRIG_PYTHON": sys.executable, "HF_HUB_OFFLINE": "1"}
# What an ASR could be made to "hear" (or a hand-edited screen.json hold): markup and a script-ending trick
XSS = ("<img src=x onerror=\"document.body.dataset.pwned='yes'\"> </q></script>"
       "<!--<script>document.body.dataset.pwned='yes'</script>")  # no brackets: the ASR's annotations are stripped


def audition_cli(*args: str, path: str | None = None) -> subprocess.CompletedProcess:
    env = {**ENV, "PATH": path} if path is not None else ENV
    return subprocess.run([str(LAUNCHER), *args], capture_output=True, text=True, cwd="/tmp", env=env, timeout=600)


def page_data(folder: Path) -> dict:
    """The data the page was written with (the JSON in its <script> element)."""
    found = re.search(r'<script id="audition-data" type="application/json">(.*?)</script>',
                      (folder / "index.html").read_text(), re.S)
    return json.loads(found.group(1))


def with_training_log(folder: Path) -> Path:
    """The run folder the renders.json of make_folder names, with a train-log.tsv as trainers.f5 writes it."""
    run = folder / "run"
    run.mkdir(exist_ok=True)
    rows = "".join(f"{e}\t{e * 10}\t{0.9 - e / 100:.6f}\t1e-05\t12.00\t0.100\n" for e in range(1, 6))
    (run / "train-log.tsv").write_text("epoch\tstep\tmean_loss\tlr\tseconds\tdata_seconds\n" + rows)
    return folder


def screen_in_process(folder: Path, backend: asr.Hears | None, monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """`audition screen FOLDER` through audition.main, with `backend` as the one ASR found."""
    monkeypatch.setattr(asr, "find", lambda *a, **k: backend)
    code = audition.main(["screen", str(folder), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_screen_writes_screen_json_and_the_page_shows_scores_marks_loss_and_the_suggestion(
        defects, tmp_path, monkeypatch, capsys):
    folder = with_training_log(make_folder(tmp_path / "aud", defects, NAMES))
    backend = scripted(NAMES, **{"04-epoch_0004.wav": PASSAGE + " " + XSS})
    code, out, err = screen_in_process(folder, backend, monkeypatch, capsys)
    assert code == 0, err
    result = json.loads((folder / "screen.json").read_text())
    assert (result["suggestion"]["latest_clean"], result["suggestion"]["first_problem"]) == ("epoch_0004", "epoch_0002")
    assert "suggestion (not a verdict): epoch_0004 is the latest checkpoint" in out
    assert f"wrote {folder / 'index.html'}" in out and "02-epoch_0002.wav: WER" in err  # progress on stderr
    assert page_data(folder)["screen"] == result  # the page carries exactly what screen.json holds

    report, dom = voices_fixtures.page_selftest(folder)
    shown = report["screen"]
    assert report["renders"] == ["epoch_0001", "epoch_0002", "epoch_0003", "epoch_0004", "epoch_0005"]
    assert report["audio"] == 5 and report["markers"] == len(markers.MARKERS)
    assert shown["suggestion"].startswith("Suggestion, not a verdict: epoch_0004 is the latest checkpoint with no "
                                          "dropped or cut words in any take; they start at epoch_0002.")
    rows = shown["rows"]
    # the words each checkpoint dropped or cut, marked in its passage where they stand
    assert rows["epoch_0001"]["marked"] == [] and rows["epoch_0004"]["marked"] == []
    assert rows["epoch_0002"]["marked"] == [{"word": "her", "kind": "dropped", "title": "dropped in 1 of 1 take"}]
    assert rows["epoch_0003"]["marked"] == [{"word": "today", "kind": "cut", "title": "cut off in 1 of 1 take"}]
    assert [m["word"] for m in rows["epoch_0005"]["marked"]] == ["away"]
    # the scores beside each player: WER and the flags of the signal checks
    [clean], [silence], [ending] = (rows[f"epoch_000{i}"]["takes"] for i in (1, 4, 5))
    assert clean["scores"].startswith("WER 0.00 · ") and clean["flags"] == ["no flags"]
    assert silence["flags"] == ["long-silence"]
    assert re.search(r"long silence inside the speech: 1\.\d s at \d\.\d s", silence["scores"])
    assert ending["flags"] == ["ending-cut"] and "the render ends mid-sound" in ending["scores"]
    assert "dropped: her" in rows["epoch_0002"]["takes"][0]["scores"]
    assert "cut off: today (heard “to”)" in rows["epoch_0003"]["takes"][0]["scores"]
    # each epoch's training loss from train-log.tsv beside its results
    assert rows["epoch_0002"]["loss"] == ["epoch 2 · training loss 0.8800 (mean_loss)"]
    assert rows["epoch_0003"]["status"] == ["words dropped or cut off"]
    assert shown["asr_note"] is None and shown["not_screened"] is None
    # the transcript with markup is shown as text: no element made from it, nothing of it ran
    assert "data-pwned" not in dom and shown["images"] == 0
    assert silence["transcript"] == PASSAGE + " " + XSS
    assert "&lt;img src=x onerror=" in dom and report["saved"] is True  # the page's own script still ran


def test_without_a_backend_the_signal_checks_run_and_the_page_says_how_to_add_one(defects, tmp_path):
    if importlib.util.find_spec("faster_whisper"):
        pytest.skip("faster-whisper is installed in this venv: `auto` would find it")
    folder = make_folder(tmp_path / "aud", defects, NAMES)
    no_whisper_cli = os.pathsep.join(p for p in ENV["PATH"].split(os.pathsep)
                                     if not any(Path(p, b).exists() for b in ("whisper-cli", "whisper-cpp")))
    done = audition_cli("screen", str(folder), path=no_whisper_cli)
    assert done.returncode == 0, done.stderr
    assert "note: no ASR backend, so dropped and cut words were not checked" in done.stdout
    assert "suggestion (not a verdict): dropped or cut words start at epoch_0003" in done.stdout
    result = json.loads((folder / "screen.json").read_text())
    assert all(r["words"] is None for r in result["renders"])
    assert [r["signal"]["flags"] for r in result["renders"]] == [[], [], ["sentence-cut"], ["long-silence"],
                                                                 ["ending-cut"]]
    report, _ = voices_fixtures.page_selftest(folder)
    shown = report["screen"]
    assert shown["asr_note"] == asr.HOW_TO_ADD_ONE
    assert "faster-whisper" in shown["asr_note"] and "whisper-cli" in shown["asr_note"]
    assert shown["rows"]["epoch_0005"]["takes"][0]["flags"] == ["ending-cut"]
    assert shown["rows"]["epoch_0001"]["status"] == ["not word-checked"]
    assert all(row["marked"] == [] for row in shown["rows"].values())


def test_a_crashing_backend_is_one_line_naming_it_and_the_other_renders_are_scored(
        defects, tmp_path, monkeypatch, capsys):
    folder = make_folder(tmp_path / "aud", defects, NAMES)
    backend = scripted(NAMES, **{"03-epoch_0003.wav": RuntimeError("CUDA error: an illegal memory access\n  at ...")})
    code, out, err = screen_in_process(folder, backend, monkeypatch, capsys)
    assert code == 0, err
    [line] = [ln for ln in err.splitlines() if ln.startswith("03-epoch_0003.wav")]
    assert line.endswith("scripted crashed on 03-epoch_0003.wav: RuntimeError: CUDA error: an illegal memory "
                         "access at ...")
    renders = {r["file"]: r for r in page_data(folder)["screen"]["renders"]}
    assert renders["03-epoch_0003.wav"]["words"] is None
    assert renders["02-epoch_0002.wav"]["words"]["dropped"] == [{"index": HER, "word": "her"}]
    assert renders["05-epoch_0005.wav"]["words"]["wer"] > 0 and renders["01-epoch_0001.wav"]["words"]["wer"] == 0


def test_json_prints_only_the_result_for_scripts(defects, tmp_path, monkeypatch, capsys):
    folder = make_folder(tmp_path / "aud", defects, ["clean", "dropped"])
    code, out, err = screen_in_process(folder, scripted(["clean", "dropped"]), monkeypatch, capsys, "--json")
    assert code == 0 and err == ""
    printed = json.loads(out)
    assert printed == json.loads((folder / "screen.json").read_text())
    assert printed["suggestion"] == {"latest_clean": "epoch_0001", "first_problem": "epoch_0002",
                                     "text": printed["suggestion"]["text"]}


@pytest.mark.parametrize("case", ["empty-folder", "missing", "renders-not-json", "verdicts-broken"])
def test_screen_refuses_what_is_not_an_audition_folder_in_one_line(defects, tmp_path, case):
    folder = tmp_path / "aud"
    if case == "empty-folder":
        folder.mkdir()
        expected = "is not an audition folder (no renders.json)"
    elif case == "missing":
        expected = "is not an audition folder"
    elif case == "renders-not-json":
        folder.mkdir()
        (folder / "renders.json").write_text("{")
        expected = "cannot be read as JSON"
    else:
        make_folder(folder, defects, ["clean"])
        (folder / "verdicts.json").write_text('{"epoch_0001": ')
        expected = "verdicts.json is not JSON"
    before = sorted(p.name for p in folder.iterdir()) if folder.exists() else None
    done = audition_cli("screen", str(folder), "--asr", "none")
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and expected in done.stderr and "Traceback" not in done.stderr
    assert (sorted(p.name for p in folder.iterdir()) if folder.exists() else None) == before  # nothing written


def test_a_named_backend_that_is_missing_is_refused_before_rendering(tmp_path):
    out = tmp_path / "out"
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "epoch_0001.safetensors").write_bytes(b"never read: the checks come first")
    done = audition_cli("render", "strong", str(tmp_path / "run" / "epoch_*.safetensors"), "--out", str(out),
                        "--screen", "--asr", "whisper-cpp", path="/usr/bin:/bin")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "--asr whisper.cpp: neither whisper-cli nor whisper-cpp is in the venv's bin/ or on PATH" in done.stderr
    assert not out.exists()


# -- the render loop: takes, seeds and what the screen can use ---------------------------------------------------


class FakeSpeaker:
    """say.Speaker's surface as audition uses it: espeak-ng speech per sentence, louder with the seed."""

    made: list[str] = []

    def __init__(self, engine: str, cfg: dict, device: str, trust: bool) -> None:
        self.engine, self.cfg = engine, cfg
        self.piece_lengths: list[int] = []
        self.collapsed: list[dict] = []
        FakeSpeaker.made.append(cfg["checkpoint"])

    def render(self, text: str, seed: int | None) -> np.ndarray:
        from voices import text as text_mod

        pieces = [synth.speech(s, 24_000) * (0.5 + 0.01 * (seed or 0)) for s in text_mod.sentences(text)]
        self.piece_lengths = [len(p) for p in pieces]
        collapsed = {"phoneme": "t", "index": 3, "frames": 1, "word": "kˈʌt"}
        self.collapsed = [collapsed] if self.engine == "default" else []
        return text_mod.join(pieces)


def test_takes_render_each_checkpoint_with_successive_seeds_and_record_sentence_ends(tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    for epoch in (1, 2):
        (run / f"epoch_{epoch:04d}.safetensors").write_bytes(b"")
    (tmp_path / "passage.txt").write_text(PASSAGE)
    ref = synth.write(tmp_path / "ref.wav", synth.speech(REF_TEXT))
    monkeypatch.setattr(say, "Speaker", FakeSpeaker)
    monkeypatch.setattr(say, "pick_device", lambda device: "cpu")
    FakeSpeaker.made = []
    out = tmp_path / "aud"
    code = audition.main(["render", "default", str(run / "epoch_*.safetensors"), "--out", str(out), "--ref", str(ref),
                          "--passage", str(tmp_path / "passage.txt"), "--seed", "5", "--takes", "2"])
    assert code == 0
    assert FakeSpeaker.made == [str(run / "epoch_0001.safetensors"), str(run / "epoch_0002.safetensors")]  # loaded once
    data = json.loads((out / "renders.json").read_text())
    assert [(r["file"], r["label"], r["take"], r["seed"]) for r in data["renders"]] == [
        ("01-epoch_0001-take1.wav", "epoch_0001", 0, 5), ("01-epoch_0001-take2.wav", "epoch_0001", 1, 6),
        ("02-epoch_0002-take1.wav", "epoch_0002", 0, 5), ("02-epoch_0002-take2.wav", "epoch_0002", 1, 6)]
    assert data["takes"] == 2 and data["reference"] == str(ref.resolve()) and data["reference_text"] is None
    first = data["renders"][0]
    wave, rate = sf.read(out / first["file"], dtype="float32")
    [end] = first["sentence_ends"]  # two sentences: one seam, where the first sentence's speech stops
    assert abs(len(synth.speech(PASSAGE.split(". ")[0] + ".", 24_000)) - end * rate) <= 1
    assert first["collapsed_phonemes"] == [{"phoneme": "t", "index": 3, "frames": 1, "word": "kˈʌt"}]
    result = screen.screen(out, backend=None)
    assert [c["takes"] for c in result["checkpoints"]] == [2, 2]
    assert {r["file"]: r["seed"] for r in result["renders"]}["02-epoch_0002-take2.wav"] == 6
    assert result["checkpoints"][0]["signal_flags"] == {"collapsed-phonemes": 2}
    assert page_data(out)["takes"] == 2 and "screen" not in page_data(out)


def test_render_screen_puts_the_results_on_the_page_and_a_failure_keeps_the_renders(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "epoch_0001.safetensors").write_bytes(b"")
    (tmp_path / "passage.txt").write_text(PASSAGE)
    ref = synth.write(tmp_path / "ref.wav", synth.speech(REF_TEXT))
    monkeypatch.setattr(say, "Speaker", FakeSpeaker)
    monkeypatch.setattr(say, "pick_device", lambda device: "cpu")
    args = ["render", "strong", str(run / "epoch_*.safetensors"), "--ref", str(ref), "--ref-text", REF_TEXT,
            "--passage", str(tmp_path / "passage.txt"), "--screen"]

    def cannot_start(*a, **k):
        raise asr.TtsrigError("the faster-whisper ASR backend could not start: OSError: no model base.en offline")

    monkeypatch.setattr(asr, "find", cannot_start)
    assert audition.main([*args, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith(f"(the renders are written: screen them with `voices/audition "
                                                 f"screen {tmp_path / 'a'}`)\n")
    assert (tmp_path / "a" / "01-epoch_0001.wav").is_file() and "screen" not in page_data(tmp_path / "a")

    monkeypatch.setattr(asr, "find", lambda *a, **k: asr.Scripted({"01-epoch_0001.wav": PASSAGE.replace(" her ", " ")}))
    assert audition.main([*args, "--out", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "suggestion (not a verdict): dropped or cut words start at epoch_0001" in out
    shown = page_data(tmp_path / "b")["screen"]
    assert shown == json.loads((tmp_path / "b" / "screen.json").read_text())
    assert shown["checkpoints"][0]["words"]["dropped"] == {str(HER): 1}
    assert shown["rate"]["basis"] == "reference clip"  # --ref-text, recorded in renders.json, is the basis

    # Rendering into the folder again replaces the audio that screen.json scored: the old result goes with it.
    assert audition.main([*args[:-1], "--out", str(tmp_path / "b")]) == 0
    assert not (tmp_path / "b" / "screen.json").exists() and "screen" not in page_data(tmp_path / "b")


def test_takes_must_be_at_least_one(tmp_path):
    done = audition_cli("render", "strong", str(tmp_path / "none-*.safetensors"), "--out", str(tmp_path / "o"),
                        "--takes", "0")
    assert done.returncode == 2 and "argument --takes: 0 is not a whole number from 1" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def test_say_default_records_the_phonemes_whose_duration_collapsed(monkeypatch):
    """Speaker.sentence keeps what styletts2.synthesize_timed says each token lasted (pads left out)."""
    from trainers import phonemes
    from voices import styletts2

    [(text, tokens)] = phonemes.encode(["Cut."])
    kept = "".join(s for s in text if s not in tokens.unknown)
    frames = [3] + [1 if s == "t" else 4 for s in kept]  # the leading pad, then one per symbol: 't' collapsed
    monkeypatch.setattr(styletts2, "synthesize_timed", lambda *a, **k: (np.ones(2400, np.float32), frames))
    speaker = say.Speaker.__new__(say.Speaker)
    speaker.engine, speaker.cfg, speaker.voice, speaker.style, speaker.device = "default", {
        "alpha": 0.3, "beta": 0.7, "diffusion_steps": 3, "embedding_scale": 1.0}, None, None, "cpu"
    speaker.render("Cut. Cut.", seed=1)
    assert [(c["phoneme"], c["frames"]) for c in speaker.collapsed] == [("t", 1), ("t", 1)]
    assert speaker.piece_lengths == [2400, 2400]
    speaker.render("Cut.", seed=1)  # each render starts afresh
    assert len(speaker.collapsed) == 1 and speaker.piece_lengths == [2400]


# -- the real command with tiny checkpoints -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kit(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("voices")
    return {"ref": synth.write(root / "ref.wav", synth.speech(REF_TEXT, 24_000)),
            "run": voices_fixtures.f5_run(root / "f5run", epochs=2),
            "strong": voices_fixtures.strong_config(root / "strong.toml", voices_fixtures.vocoder(root / "vocos"))}


def test_render_takes_2_and_screen_report_each_take(kit, tmp_path):
    out = tmp_path / "aud"
    (tmp_path / "passage.txt").write_text("One short sentence. And another one.")
    done = audition_cli("render", "strong", str(kit["run"] / "epoch_*.safetensors"), "--ref", str(kit["ref"]),
                        "--ref-text", REF_TEXT, "--out", str(out), "--voice-config", str(kit["strong"]),
                        "--device", "cpu", "--passage", str(tmp_path / "passage.txt"), "--takes", "2", "--screen",
                        "--asr", "none")
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads((out / "renders.json").read_text())
    files = [r["file"] for r in data["renders"]]
    assert files == ["01-epoch_0001-take1.wav", "01-epoch_0001-take2.wav", "02-epoch_0002-take1.wav",
                     "02-epoch_0002-take2.wav"]
    assert [(r["take"], r["seed"]) for r in data["renders"]] == [(0, 0), (1, 1)] * 2
    assert data["reference_text"] == REF_TEXT and all(len(r["sentence_ends"]) == 1 for r in data["renders"])
    take1, take2 = (sf.read(out / f, dtype="float32")[0] for f in files[:2])
    assert not np.array_equal(take1, take2)  # another seed, another render
    result = json.loads((out / "screen.json").read_text())
    assert [r["file"] for r in result["renders"]] == files
    assert [(c["label"], c["takes"], c["files"]) for c in result["checkpoints"]] == [
        ("epoch_0001", 2, files[:2]), ("epoch_0002", 2, files[2:])]
    assert result["asr"]["note"] == "word check skipped (--asr none)"
    assert "suggestion (not a verdict):" in done.stdout
    assert page_data(out)["screen"] == result


def test_a_render_killed_after_a_wav_leaves_a_record_of_exactly_what_is_there(kit, tmp_path):
    """renders.json is the folder's record: written after each WAV it lists (with the WAV's sha256) and
    marked complete at the end. Killed between a WAV and its entry, the folder describes its audio truly,
    and serve and screen say what is missing."""
    out = tmp_path / "aud"
    (tmp_path / "passage.txt").write_text("One short sentence.")
    args = ["render", "strong", str(kit["run"] / "epoch_*.safetensors"), "--ref", str(kit["ref"]), "--ref-text",
            REF_TEXT, "--out", str(out), "--voice-config", str(kit["strong"]), "--device", "cpu", "--passage",
            str(tmp_path / "passage.txt")]
    assert audition_cli(*args).returncode == 0  # an earlier, finished render into the same folder
    old = {p.name: p.read_bytes() for p in out.glob("*.wav")}
    env = {**ENV, "TTSRIG_CRASH_AT": "audition:between-wav-and-record@2"}
    killed = subprocess.run([str(LAUNCHER), *args, "--seed", "7"], capture_output=True, text=True, cwd="/tmp",
                            env=env, timeout=600)
    assert killed.returncode == -9, killed.stderr[-2000:]
    data = json.loads((out / "renders.json").read_text())
    assert data["complete"] is False and data["planned"] == 2
    assert [r["file"] for r in data["renders"]] == ["01-epoch_0001.wav"]  # the second WAV is not listed
    assert (out / "02-epoch_0002.wav").read_bytes() != old["02-epoch_0002.wav"]  # though it was written over
    for entry in data["renders"]:
        assert hashlib.sha256((out / entry["file"]).read_bytes()).hexdigest() == entry["sha256"]
    assert [r["file"] for r in page_data(out)["renders"]] == ["01-epoch_0001.wav"]  # the page shows the same
    screened = audition_cli("screen", str(out), "--asr", "none")
    assert screened.returncode == 0, screened.stderr[-2000:]
    assert "stopped before it finished: 1 of 2 renders were written" in screened.stdout + screened.stderr
    assert [r["file"] for r in json.loads((out / "screen.json").read_text())["renders"]] == ["01-epoch_0001.wav"]
    (out / "01-epoch_0001.wav").write_bytes(old["01-epoch_0001.wav"])  # audio that is not the recorded render
    again = screen.screen(out, backend=None)
    assert "is not the render renders.json records" in again["renders"][0]["errors"][0]
    assert audition_cli(*args).returncode == 0  # rendering again completes the folder
    assert json.loads((out / "renders.json").read_text())["complete"] is True


# -- which backend runs where ---------------------------------------------------------------------------------------


def test_faster_whisper_is_never_started_on_a_pre_v2_cpu(tmp_path, monkeypatch):
    """CTranslate2 imports on a Core 2 or Phenom II and dies with SIGILL loading a model
    (requirements/evidence/asr-phenom-numpy1.txt): there, auto skips faster-whisper, and naming it is one line."""
    from envcheck import asr_backends as transcribe

    started = []

    class FakeFasterWhisper:
        name = "faster-whisper"

        def __init__(self, *args) -> None:
            started.append(args)

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name == "faster_whisper" else real_find_spec(name, *a))
    monkeypatch.setattr(transcribe, "FasterWhisper", FakeFasterWhisper)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # no whisper-cli yet
    monkeypatch.setattr(asr, "cpu_tier", lambda: "pre-v2")
    with pytest.raises(asr.TtsrigError, match=r"--asr faster-whisper: .*SIGILL .*pre-v2 CPU.*--asr whisper.cpp"):
        asr.find("faster-whisper", device="cpu")
    assert asr.find("auto", device="cpu") is None  # the screen goes on with the ASR-free checks
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "whisper-cli").write_text("#!/bin/sh\nexit 0\n")
    (tmp_path / "bin" / "whisper-cli").chmod(0o755)
    (tmp_path / "ggml-base.en.bin").write_bytes(b"model")
    assert asr.find("auto", model=str(tmp_path / "ggml-base.en.bin"), device="cpu").name == "whisper.cpp"
    assert started == []
    monkeypatch.setattr(asr, "cpu_tier", lambda: "v2")  # measured to run from Nehalem on
    assert isinstance(asr.find("auto", device="cpu"), FakeFasterWhisper) and len(started) == 1
