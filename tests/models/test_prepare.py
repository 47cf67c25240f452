"""trainers.prepare on synthetic recordings: layouts, clips, mels, manifest, re-runs and bad input."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from envcheck import run_lock, whispercpp_probe
from envcheck.errors import TtsrigError
from tests import whisper_cpp
from tests.models import synth
from envcheck import asr_backends as transcribe
from trainers import audio, manifest, mels, prepare
from trainers.prepare import Settings

ROOT = Path(__file__).resolve().parents[2]
SENTENCES = ["The bath was full of warm water.", "A good book on the shelf.", "Happy days are here again."]


def lj_dataset(root: Path) -> Path:
    for i, text in enumerate(SENTENCES):
        synth.write(root / "wavs" / f"s{i}.wav", synth.speech(text))
    (root / "metadata.csv").write_text("".join(f"s{i}|{t}|{t}\n" for i, t in enumerate(SENTENCES))
                                       + "gone|A line without audio.\n")
    return root


def run(root: Path, out: Path, transcriber=None, **settings) -> dict:
    return prepare.prepare(root, out, Settings(**settings), transcriber, "cpu", progress=False)


def test_ljspeech_layout_to_clips_mels_and_manifest(tmp_path):
    out = tmp_path / "set"
    summary = run(lj_dataset(tmp_path / "in"), out)
    clips = manifest.read(out / "manifest.jsonl")
    assert [c.text for c in clips] == SENTENCES
    assert summary["clips"] == 3 and summary["rejected"] == {"no audio for a metadata.csv line": 1}
    assert summary["speakers"] == {"in": {"clips": 3, "hours": summary["hours"]}}
    for clip in clips:
        wave, rate = sf.read(out / clip.audio)
        assert rate == 24_000 and wave.ndim == 1
        assert abs(len(wave) / rate - clip.duration) < 1e-3 and 1.0 < clip.duration < 5.0
        rms_db = 20 * np.log10(np.sqrt(np.mean(wave ** 2)))
        assert -21.5 < rms_db < -18.5  # levelled to -20 dBFS
        f5 = load_file(out / clip.mel_f5)["mel"]
        st = load_file(out / clip.mel_styletts2)["mel"]
        assert f5.shape[0] == 100 and abs(f5.shape[1] - len(wave) / 256) <= 2
        assert st.shape[0] == 80 and abs(st.shape[1] - (len(wave) + 10_000) / 300) <= 2
        # the F5 mel is upstream's own MelSpec of the clip as written
        again = mels.f5_mel(torch.from_numpy(wave.astype(np.float32)))
        assert torch.allclose(again, f5, atol=1e-4)
    assert json.loads((out / "summary.json").read_text())["clips"] == 3


def test_transcripts_beside_files_speaker_folders_stereo_and_other_rates(tmp_path):
    root = tmp_path / "in"
    synth.write(root / "alice" / "one.flac", synth.speech(SENTENCES[0], 48_000), 48_000, stereo=True)
    (root / "alice" / "one.txt").write_text(SENTENCES[0] + "\n")
    synth.write(root / "bob" / "two.wav", synth.speech(SENTENCES[1], 16_000), 16_000)
    (root / "bob" / "two.lab").write_text(SENTENCES[1])
    summary = run(root, tmp_path / "set", mels=("f5",))
    assert set(summary["speakers"]) == {"alice", "bob"}
    clips = {c.id: c for c in manifest.read(tmp_path / "set" / "manifest.jsonl")}
    assert set(clips) == {"alice__one", "bob__two"} and clips["bob__two"].mel_styletts2 is None
    assert sf.info(tmp_path / "set" / clips["alice__one"].audio).channels == 1


def test_rejections_are_counted_with_reasons(tmp_path):
    root = tmp_path / "in"
    synth.write(root / "ok.wav", synth.speech(SENTENCES[0]))
    (root / "ok.txt").write_text(SENTENCES[0])
    synth.write(root / "short.wav", synth.tone(0.4))
    (root / "short.txt").write_text("Too short.")
    synth.write(root / "quiet.wav", synth.silence(2.0))
    (root / "quiet.txt").write_text("Nothing said.")
    synth.write(root / "blank.wav", synth.speech(SENTENCES[1]))
    (root / "blank.txt").write_text("   \n")
    synth.write(root / "untranscribed.wav", synth.speech(SENTENCES[2]))
    (root / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    (root / "broken.txt").write_text("Broken.")
    long = np.concatenate([synth.speech(SENTENCES[0]), synth.silence(1.0)] * 4)
    synth.write(root / "long.wav", long)
    (root / "long.txt").write_text("One transcript for a long recording.")
    summary = run(root, tmp_path / "set", max_s=8.0)
    assert summary["clips"] == 1
    assert summary["rejected"] == {"shorter than 1 s": 1, "silent": 1, "empty transcript": 1, "no transcript": 1,
                                   "unreadable audio": 1,
                                   "longer than 8 s with one transcript (split it, or install a Whisper backend "
                                   "to split and re-transcribe)": 1}


FAKE_WHISPER_CLI = """#!{python}
# Stands in for whisper.cpp's whisper-cli: checks what ttsrig passes, answers like the real one (-otxt -of).
import sys, soundfile as sf
args = sys.argv[1:]
model, wav, out = args[args.index("-m") + 1], args[args.index("-f") + 1], args[args.index("-of") + 1]
assert open(model).read() == "ggml", model
data, rate = sf.read(wav)
assert rate == 16000, rate
open(out + ".txt", "w").write(" piece of %.1f seconds\\n" % (len(data) / rate))
"""


@pytest.fixture
def whisper_cli(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "whisper-cli"
    script.write_text(FAKE_WHISPER_CLI.format(python=sys.executable))
    script.chmod(0o755)
    model = tmp_path / "ggml-base.en.bin"
    model.write_text("ggml")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return model


def test_long_untranscribed_recordings_are_split_on_silence_and_transcribed(tmp_path, whisper_cli):
    root = tmp_path / "in"
    parts = [synth.speech(s) for s in SENTENCES * 2]
    recording = np.concatenate([np.concatenate([p, synth.silence(0.8)]) for p in parts])
    synth.write(root / "book.wav", recording, 22_050, stereo=True)
    found = transcribe.find("auto", model=str(whisper_cli), language="en", device="cpu")
    assert isinstance(found, transcribe.WhisperCpp)
    summary = run(root, tmp_path / "set", found, max_s=6.0, mels=())
    clips = manifest.read(tmp_path / "set" / "manifest.jsonl")
    assert summary["clips"] == len(clips) >= 3
    assert [c.id for c in clips] == [f"book-{i:03d}" for i in range(1, len(clips) + 1)]
    assert all(1.0 <= c.duration <= 6.0 and c.text.startswith("piece of") for c in clips)
    assert sum(c.duration for c in clips) > 0.8 * sum(len(p) for p in parts) / 22_050



def test_a_real_whisper_cli_transcribes_the_split_pieces(tmp_path, monkeypatch):
    """The same path with whisper.cpp's own binary (tests/whisper_cpp.py finds or, under CI, builds it) and
    envcheck/whispercpp_probe.py's random model, which says one word whatever it hears."""
    bin_dir = whisper_cpp.on_path(tmp_path, whisper_cpp.required())
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    model = whispercpp_probe.ggml_model(tmp_path / "ggml-tiny-random.bin", answer=whispercpp_probe.ANSWER)
    root = tmp_path / "in"
    recording = np.concatenate([np.concatenate([synth.speech(s), synth.silence(0.8)]) for s in SENTENCES * 2])
    synth.write(root / "book.wav", recording, 22_050)
    found = transcribe.find("whisper.cpp", model=str(model), language="en", device="cpu")
    summary = run(root, tmp_path / "set", found, max_s=6.0, mels=())
    clips = manifest.read(tmp_path / "set" / "manifest.jsonl")
    assert summary["clips"] == len(clips) >= 3
    assert {c.text for c in clips} == {"w%d" % whispercpp_probe.ANSWER}

def test_split_on_silence_cuts_in_the_gaps(tmp_path):
    rate = 24_000
    bursts = [synth.tone(2.0, rate, 200 + 50 * i) for i in range(5)]
    wave = np.concatenate([np.concatenate([b, synth.silence(0.5, rate)]) for b in bursts])
    clips = audio.split_on_silence(wave, 1.0, 5.0, rate)
    assert len(clips) == 3 and all(b - a <= 5 * rate for a, b in clips)
    starts = [i * 2.5 * rate for i in range(5)]
    for a, b in clips:  # no cut falls inside a tone
        assert not any(s < a < s + 2 * rate or s < b < s + 2 * rate for s in starts)


def test_voiced_intervals_are_librosa_effects_split_exactly():
    # trainers.audio computes librosa's silence rule in numpy (no numba compile); the same ranges to the sample.
    import librosa

    rng = np.random.default_rng(7)
    speech = synth.speech(SENTENCES[0], 24_000).astype(np.float32)
    waves = [speech, np.concatenate([synth.silence(0.7, 24_000), speech, synth.silence(1.3, 24_000)]),
             np.concatenate([synth.tone(0.4, 24_000), synth.silence(0.5, 24_000), 0.01 * synth.tone(0.3, 24_000)]),
             speech[:700], (1e-3 * rng.standard_normal(30_001)).astype(np.float32)]
    for _ in range(40):  # tones of random loudness and place over a noise floor
        wave = (1e-4 * rng.standard_normal(int(rng.integers(2_000, 90_000)))).astype(np.float32)
        for _ in range(int(rng.integers(1, 5))):
            a = int(rng.integers(0, len(wave)))
            wave[a:a + int(rng.integers(200, 30_000))] += float(rng.random()) * 0.5
        waves.append(wave)
    for wave in waves:
        for top_db in (20.0, 40.0, 60.0):
            ours = audio.voiced_intervals(wave.astype(np.float32), top_db)
            theirs = librosa.effects.split(wave.astype(np.float32), top_db=top_db, frame_length=1024, hop_length=256)
            assert ours.tolist() == theirs.tolist(), (len(wave), top_db)
    assert audio.voiced_intervals(np.zeros(500, np.float32)).shape == (0, 2)


def test_no_backend_and_nothing_transcribed_says_how(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    real_find_spec = importlib.util.find_spec  # a venv without the ASR layer (the models venv has it)
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "faster_whisper" else real_find_spec(name, *a))
    root = tmp_path / "in"
    synth.write(root / "a.wav", synth.speech(SENTENCES[0]))
    assert transcribe.find("auto", model=None, language=None, device="cpu") is None
    with pytest.raises(TtsrigError, match="no usable clips.*no transcript: 1.*faster-whisper.*whisper-cli"):
        run(root, tmp_path / "set")
    with pytest.raises(TtsrigError, match="whisper.cpp transcription backend is not available"):
        transcribe.find("whisper.cpp", model=None, language=None, device="cpu")


def test_rerun_reuses_finished_work_and_notices_changes(tmp_path):
    root, out = lj_dataset(tmp_path / "in"), tmp_path / "set"
    run(root, out)
    first = (out / "manifest.jsonl").read_bytes()
    again = run(root, out)
    assert (again["recordings_processed"], again["recordings_reused"]) == (0, 3)
    assert (out / "manifest.jsonl").read_bytes() == first
    # a changed transcript and a changed recording are processed again; a removed one disappears
    (root / "metadata.csv").write_text((root / "metadata.csv").read_text().replace("|A good book", "|A fine book"))
    synth.write(root / "wavs" / "s2.wav", synth.speech("Something else entirely now."))
    (root / "wavs" / "s0.wav").unlink()
    changed = run(root, out)
    assert (changed["recordings_processed"], changed["recordings_reused"]) == (2, 0)
    clips = {c.id: c for c in manifest.read(out / "manifest.jsonl")}
    assert set(clips) == {"s1", "s2"} and clips["s1"].text.startswith("A fine book")
    assert not (out / "wavs" / "s0.wav").exists() and not (out / "mels" / "f5" / "s0.safetensors").exists()
    # outputs deleted by hand are made again
    (out / clips["s1"].mel_f5).unlink()
    assert run(root, out)["recordings_processed"] == 1


def test_a_second_prepare_into_the_same_output_stops_at_once_and_changes_nothing(tmp_path):
    """Two prepares writing one OUTPUT would delete each other's clips as stale: the second stops at once."""
    root, out = lj_dataset(tmp_path / "in"), tmp_path / "set"
    run(root, out)
    before = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    with run_lock.held("prepare", out, str):  # what a running prepare holds
        with pytest.raises(TtsrigError, match=f"another prepare \\(process {os.getpid()}\\) is writing into "
                                              f"OUTPUT {out} now; let it finish"):
            run(root, out)
    assert {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == before
    assert run(root, out)["recordings_reused"] == 3  # once it is free, the next run goes on


def test_bad_input_fails_clearly(tmp_path):
    with pytest.raises(TtsrigError, match="not a folder"):
        run(tmp_path / "missing", tmp_path / "set")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TtsrigError, match="no recordings"):
        run(tmp_path / "empty", tmp_path / "set")
    root = tmp_path / "in"
    synth.write(root / "a.wav", synth.speech(SENTENCES[0]))
    (root / "metadata.csv").write_text("a|fine\nno separator here\n")
    with pytest.raises(TtsrigError, match=r"metadata.csv:2 is not `id\|text`"):
        run(root, tmp_path / "set")
    with pytest.raises(TtsrigError, match="clip range"):
        Settings(min_s=5, max_s=2).check()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "audio": "a.wav", "text": "x", "duration": 1, "speaker": "s"}\nnot json\n')
    with pytest.raises(TtsrigError, match=r"bad.jsonl:2 is not JSON"):
        manifest.read(bad)


def test_command_line(tmp_path):
    root = lj_dataset(tmp_path / "in")
    cmd = [sys.executable, "-m", "trainers.prepare", str(root), str(tmp_path / "set"), "--quiet", "--mels", "f5",
           "--transcribe", "none"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "3 clips" in out.stdout and "no audio for a metadata.csv line: 1" in out.stdout
    bad = subprocess.run(cmd[:5] + ["--max-seconds", "60"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "clip range" in bad.stderr and "Traceback" not in bad.stderr
