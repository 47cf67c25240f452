"""say-strong, say-default and audition with tiny random checkpoints and a random vocoder (no downloads)."""
from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.models import synth, tiny_styletts2, voices_fixtures
from voices import markers
from voices import text as text_mod

ROOT = Path(__file__).resolve().parents[2]
REF_TEXT = "The bath was full of warm water."


@pytest.fixture(scope="module")
def kit(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("voices")
    ref = synth.write(root / "ref.wav", synth.speech(REF_TEXT, 48_000), 48_000, stereo=True)  # any rate, stereo
    vocoder = voices_fixtures.vocoder(root / "vocos")
    run = voices_fixtures.f5_run(root / "f5run")
    return {"root": root, "ref": ref, "run": run, "strong": voices_fixtures.strong_config(root / "strong.toml", vocoder),
            "pieces": None}


@pytest.fixture(scope="module")
def st2(kit) -> Path:
    pieces = tiny_styletts2.make(kit["root"] / "st2-pieces")
    return voices_fixtures.styletts2_checkpoint(pieces, kit["root"] / "st2run")


def say(engine: str, *args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The real executable, from another directory, with the test venv's python."""
    return subprocess.run([str(ROOT / "voices" / f"say-{engine}"), *args], capture_output=True, text=True,
                          input=stdin, cwd=cwd or "/tmp", env={**os.environ, "TTSRIG_PYTHON": sys.executable,
                                                               "TTSRIG_OFFLINE": "1", "HF_HUB_OFFLINE": "1"})


def strong(kit, out: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    return say("strong", "--voice-config", str(kit["strong"]), "--checkpoint", str(kit["run"] / "epoch_0003.safetensors"),
               "--ref", str(kit["ref"]), "--ref-text", REF_TEXT, "--device", "cpu", "-o", str(out), *args, **kw)


def read(path: Path) -> np.ndarray:
    data, rate = sf.read(path, dtype="float32")
    assert rate == 24_000 and data.ndim == 1
    return data


def test_say_strong_writes_a_24k_wav_of_plausible_length(kit, tmp_path):
    out = strong(kit, tmp_path / "a.wav", "A short sentence to say.", "--seed", "1")
    assert out.returncode == 0, out.stderr[-2000:]
    wave = read(tmp_path / "a.wav")
    assert np.isfinite(wave).all() and np.abs(wave).max() > 0
    # F5 sizes the output from the reference's speaking rate: about as long as the text takes to say
    assert 0.8 < len(wave) / 24_000 < 5.0
    assert re.search(r"wrote .*a\.wav: [\d.]+ s of audio in [\d.]+ s \(real-time factor [\d.]+", out.stdout)


def test_a_seed_makes_a_render_repeatable(kit, tmp_path):
    for name, seed in (("a", "7"), ("b", "7"), ("c", "8")):
        assert strong(kit, tmp_path / f"{name}.wav", "Repeat after me.", "--seed", seed).returncode == 0
    a, b, c = (read(tmp_path / f"{n}.wav") for n in "abc")
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_long_text_is_chunked_and_cross_faded(kit, tmp_path):
    text = "First sentence here. Second one follows! And a third, to finish?"
    assert text_mod.sentences(text) == ["First sentence here.", "Second one follows!", "And a third, to finish?"]
    one = strong(kit, tmp_path / "one.wav", "First sentence here.", "--seed", "1")
    three = strong(kit, tmp_path / "three.wav", "--file", str(Path(tmp_path / "t.txt")), "--seed", "1") \
        if (tmp_path / "t.txt").write_text(text) else None
    assert one.returncode == 0 and three.returncode == 0, three.stderr[-2000:]
    assert len(read(tmp_path / "three.wav")) > 2 * len(read(tmp_path / "one.wav"))
    # the seam: a pause and an equal-power fade, no jump between two pieces of constant level
    a, b = np.full(4800, 0.5, np.float32), np.full(4800, 0.5, np.float32)
    joined = text_mod.join([a, b], fade_s=0.05, gap_s=0.1)
    assert len(joined) == 4800 + 2400 + 4800 - 1200
    assert np.abs(np.diff(joined)).max() < 0.01


def test_text_from_standard_input(kit, tmp_path):
    out = strong(kit, tmp_path / "stdin.wav", "--seed", "1", stdin="Read from standard input.\n")
    assert out.returncode == 0, out.stderr[-2000:]
    assert len(read(tmp_path / "stdin.wav")) > 0


def test_say_default_writes_a_24k_wav(kit, st2, tmp_path):
    args = ["Hello from the default voice.", "--checkpoint", str(st2), "--ref", str(kit["ref"]), "--device", "cpu",
            "--diffusion-steps", "3", "--seed", "1", "-o", str(tmp_path / "d.wav")]
    refused = say("default", *args)
    assert refused.returncode == 2 and "refused to unpickle" in refused.stderr and not (tmp_path / "d.wav").exists()
    out = say("default", *args, "--trust-checkpoint")
    assert out.returncode == 0, out.stderr[-2000:]
    wave = read(tmp_path / "d.wav")
    assert np.isfinite(wave).all() and len(wave) > 2400


def test_a_checkpoint_copied_without_its_run_json_loads(kit, tmp_path):
    """The trainer writes the architecture into the inference checkpoint's metadata: a tiny (not the default)
    DiT copied alone, with no run.json and no model_config, still loads in say-strong."""
    import torch

    from trainers import f5_model

    model, _ = f5_model.build_model(voices_fixtures.TINY_F5, f5_model.default_vocab())
    copied = tmp_path / "copied" / "epoch_0007.safetensors"
    copied.parent.mkdir()
    copied.write_bytes(f5_model.inference_bytes(model, 70, voices_fixtures.TINY_F5, None))
    out = strong(kit, tmp_path / "c.wav", "A short sentence to say.", "--checkpoint", str(copied))
    assert out.returncode == 0, out.stderr[-2000:]
    assert np.isfinite(read(tmp_path / "c.wav")).all()


@pytest.mark.parametrize("case", ["empty", "unsupported", "no-ref", "silent-ref", "missing-checkpoint", "unwritable"])
def test_bad_input_fails_clearly_and_writes_nothing(kit, tmp_path, case):
    target = tmp_path / "out.wav"
    silent = synth.write(tmp_path / "silent.wav", synth.silence(2.0))
    if case == "empty":
        out = strong(kit, target, stdin="   \n")
        expected = "text is empty"
    elif case == "unsupported":
        out = strong(kit, target, "☃☃☃")
        expected = "no character"
    elif case == "no-ref":
        out = strong(kit, target, "Hello.", "--ref", str(tmp_path / "absent.wav"))
        expected = "does not exist"
    elif case == "silent-ref":
        out = strong(kit, target, "Hello.", "--ref", str(silent))
        expected = "silent or shorter"
    elif case == "missing-checkpoint":
        out = strong(kit, target, "Hello.", "--checkpoint", str(tmp_path / "runs/x/epoch_0009.safetensors"))
        expected = "looked at .*python -m trainers.f5.*offline"
    else:
        (tmp_path / "file").write_text("")
        out = strong(kit, tmp_path / "file" / "out.wav", "Hello.")
        target = tmp_path / "file" / "out.wav"
        expected = "cannot write"
    assert out.returncode == 2, out.stdout + out.stderr
    assert re.search(expected, out.stderr), out.stderr
    assert "Traceback" not in out.stderr and not target.exists()
    assert not list(tmp_path.glob(".*ttsrig-tmp"))


def test_the_marker_passage_covers_every_marker():
    words = set(re.findall(r"[a-z']+", markers.PASSAGE.lower()))
    for marker in markers.MARKERS:
        for probe in marker["words"]:
            assert set(probe.lower().split()) <= words, (marker["id"], probe)
    assert len(markers.GUIDANCE) >= 4 and "right" in markers.VERDICTS


def run_audition(kit, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "voices/audition"), "render", "strong", str(kit["run"] / "epoch_*.safetensors"),
                           "--ref", str(kit["ref"]), "--ref-text", REF_TEXT, "--out", str(out), "--voice-config",
                           str(kit["strong"]), "--device", "cpu", *extra], capture_output=True, text=True, cwd="/tmp",
                          env={**os.environ, "TTSRIG_PYTHON": sys.executable, "HF_HUB_OFFLINE": "1"})


def test_audition_renders_every_checkpoint_and_the_page_saves_verdicts(kit, tmp_path):
    out = tmp_path / "aud"
    done = run_audition(kit, out)
    assert done.returncode == 0, done.stderr[-2000:]
    renders = json.loads((out / "renders.json").read_text())["renders"]
    assert [r["label"] for r in renders] == ["epoch_0001", "epoch_0002", "epoch_0003"]
    lengths = {len(read(out / r["file"])) for r in renders}
    assert len(lengths) == 1  # same passage, same reference, same seed: same length

    report, _ = voices_fixtures.page_selftest(out)
    assert report["renders"] == ["epoch_0001", "epoch_0002", "epoch_0003"] and report["audio"] == 3
    assert report["markers"] == len(markers.MARKERS) and report["saved"] is True
    saved = json.loads((out / "verdicts.json").read_text())
    assert saved == {"epoch_0001": {"bath": "right"}}

    # the next audition into the folder shows them again
    again = run_audition(kit, out)
    assert again.returncode == 0
    html = (out / "index.html").read_text()
    data = json.loads(re.search(r'<script id="audition-data" type="application/json">(.*?)</script>', html, re.S)
                      .group(1).replace("<\\/", "</"))
    assert data["verdicts"] == saved


def test_cuda_out_of_memory_suggests_the_cpu_or_shorter_text(monkeypatch):
    from voices import say

    speaker = say.Speaker.__new__(say.Speaker)
    speaker.engine, speaker.device = "strong", "cpu"

    def out_of_memory(sentence):
        raise __import__("torch").cuda.OutOfMemoryError("CUDA out of memory")

    speaker.sentence = out_of_memory
    with pytest.raises(Exception, match="--device cpu, or shorter text"):
        speaker.render("One sentence. Another one.", seed=1)


# -- paths of the wrong kind: one line, exit 2, nothing written, before any model loads -----------

@pytest.fixture
def no_model(monkeypatch):
    """A refusal must come before the voice loads: loading one fails the test."""
    from voices import say as say_mod

    def refuse(*args, **kwargs):
        raise AssertionError("the model loaded although the command should have been refused first")

    monkeypatch.setattr(say_mod.Speaker, "__init__", refuse)


def say_in_process(capsys, *args: str) -> str:
    from voices import say as say_mod

    code = say_mod.main(list(args))
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("case", ["folder", "latin-1"])
def test_a_text_file_that_is_a_folder_or_not_utf8_is_one_line(tmp_path, capsys, no_model, case):
    given = tmp_path / "story.txt"
    if case == "folder":
        given.mkdir()
    else:
        given.write_bytes("Un caf\u00e9.".encode("latin-1"))
    err = say_in_process(capsys, "strong", "--file", str(given), "-o", str(tmp_path / "o.wav"))
    assert f"--file {given}" in err and "give the text as arguments" in err
    assert ("is a folder" if case == "folder" else "is not UTF-8 text") in err
    assert not (tmp_path / "o.wav").exists()


@pytest.mark.parametrize("engine", ["default", "strong"])
def test_an_output_under_a_file_is_refused_before_the_voice_loads(tmp_path, capsys, no_model, engine):
    file = tmp_path / "file"
    file.write_text("mine")
    err = say_in_process(capsys, engine, "Hello.", "-o", str(file / "out.wav"))
    assert "cannot write" in err and f"{file} is a file, not a folder" in err and file.read_text() == "mine"


def test_a_reference_or_voice_config_that_is_a_folder_says_so(tmp_path, capsys):
    folder = tmp_path / "folder"
    folder.mkdir()
    err = say_in_process(capsys, "strong", "Hello.", "--ref", str(folder), "-o", str(tmp_path / "o.wav"))
    assert f"reference clip {folder} is a folder" in err
    err = say_in_process(capsys, "default", "Hello.", "--voice-config", str(folder), "-o", str(tmp_path / "o.wav"))
    assert f"voice config {folder} is a folder" in err
    assert not (tmp_path / "o.wav").exists()


def test_a_checkpoint_that_is_a_folder_says_so(tmp_path, capsys):
    from voices import say as say_mod

    with pytest.raises(say_mod.TtsrigError, match=f"checkpoint {tmp_path} is a folder"):
        say_mod.checkpoint_path("strong", str(tmp_path))


@pytest.mark.parametrize("case", ["a folder", "not audio"])
def test_audition_with_a_bad_reference_leaves_no_out_folder(tmp_path, capsys, case):
    from voices import audition

    ref = tmp_path / "ref.wav"
    if case == "a folder":
        ref.mkdir()
    else:
        ref.write_text("not audio")
    checkpoint = tmp_path / "epoch_0001.safetensors"
    checkpoint.write_bytes(b"x")
    out = tmp_path / "aud"
    code = audition.main(["render", "strong", str(checkpoint), "--ref", str(ref), "--out", str(out),
                          "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert str(ref) in err and not out.exists()


def test_a_second_render_into_a_folder_being_rendered_is_refused_and_writes_nothing(tmp_path, capsys):
    from envcheck import run_lock
    from voices import audition

    checkpoint = tmp_path / "epoch_0001.safetensors"
    checkpoint.write_bytes(b"x")
    out = tmp_path / "aud"
    with run_lock.held("audition-render", out, str):  # what the first render holds
        code = audition.main(["render", "strong", str(checkpoint), "--out", str(out), "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"another audition render (process {os.getpid()}) is writing into --out {out} now" in err
    assert not out.exists()


# -- issue: trust, second round: outputs that are not plain files, numbers out of range, Ctrl-C, venvs ----

AS_ROOT = os.geteuid() == 0


@pytest.mark.skipif(not AS_ROOT, reason="mknod needs root (CI runs as root)")
def test_an_output_that_is_a_device_node_is_written_into_and_never_replaced(kit, tmp_path):
    null = tmp_path / "null"
    os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a copy of /dev/null's node, as `-o /dev/null` is
    out = strong(kit, null, "Thrown away.")
    assert out.returncode == 0, out.stderr[-2000:]
    assert stat.S_ISCHR(os.lstat(null).st_mode), "the device node was replaced by a regular file"
    assert os.listdir(tmp_path) == ["null"]


def test_an_output_fifo_receives_the_wav_and_stays_a_fifo(kit, tmp_path):
    import io
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    out = strong(kit, fifo, "Streamed out.")
    reader.join(60)
    assert out.returncode == 0, out.stderr[-2000:]
    wave, rate = sf.read(io.BytesIO(got[0]), dtype="float32")
    assert rate == 24_000 and len(wave) > 0 and stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.parametrize("engine, args, expected", [
    ("strong", ["--speed", "0"], "argument --speed: 0 is not a number above 0"),
    ("strong", ["--speed", "-1"], "argument --speed: -1 is not a number above 0"),
    ("strong", ["--steps", "0"], "argument --steps: 0 is not a whole number from 1"),
    ("strong", ["--steps", "-3"], "argument --steps: -3 is not a whole number from 1"),
    ("strong", ["--cfg-strength", "nan"], "argument --cfg-strength: nan is not a number"),
    ("default", ["--diffusion-steps", "0"], "argument --diffusion-steps: 0 is not a whole number from 1"),
    ("default", ["--alpha", "1.5"], "argument --alpha: 1.5 is not a number from 0 to 1"),
    ("default", ["--embedding-scale", "-1"], "argument --embedding-scale: -1 is not a number from 0"),
])
def test_numbers_out_of_range_are_one_line_before_any_model_loads(tmp_path, capsys, no_model, engine, args, expected):
    from voices import say as say_mod

    with pytest.raises(SystemExit) as stopped:  # the command's own parser, in this process (no torch start-up each)
        say_mod.main([engine, "Hello.", *args, "-o", str(tmp_path / "o.wav")])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and expected in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o.wav").exists()


def test_the_real_command_says_a_number_out_of_range_in_one_line(tmp_path):
    out = say("strong", "Hello.", "--speed", "0", "-o", str(tmp_path / "o.wav"))
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.strip().splitlines() == ["say-strong: error: argument --speed: 0 is not a number above 0 "
                                               "(say-strong --help lists the options)"]


@pytest.mark.parametrize("setting, expected", [("speed = 0", "speed = 0 should be a number above 0"),
                                               ("steps = -1", "steps = -1 should be a whole number from 1"),
                                               ("speed = nan", "speed = nan should be a number above 0")])
def test_a_voice_config_out_of_range_is_one_line(tmp_path, capsys, no_model, setting, expected):
    config = tmp_path / "mine.toml"
    config.write_text(setting + "\n")
    err = say_in_process(capsys, "strong", "Hello.", "--voice-config", str(config), "-o", str(tmp_path / "o.wav"))
    assert expected in err


def test_ctrl_c_while_the_voice_starts_is_one_line_not_a_traceback(kit, tmp_path):
    import signal
    import time

    # Ctrl-C in the middle of the command's imports, after torch's. The start reaches the missing model about a
    # second after torch's library is mapped (timed by hand), so a Ctrl-C timed from outside raced it on a
    # loaded machine (it lost once in CI): a sitecustomize of the test's holds the import of voices.reference
    # (say.py imports it after torch) until the Ctrl-C comes, and says when it is there.
    hook, waiting = tmp_path / "hook", tmp_path / "importing-voices.reference"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import pathlib, sys, time\n"
        "class HoldAnImport:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'voices.reference':\n"
        f"            pathlib.Path({str(waiting)!r}).touch()\n"
        "            time.sleep(120)\n"
        "        return None\n"
        "sys.meta_path.insert(0, HoldAnImport())\n")
    proc = subprocess.Popen([str(ROOT / "voices" / "say-strong"), "--voice-config", str(kit["strong"]), "--ref",
                             str(kit["ref"]), "--ref-text", REF_TEXT, "Hello there.", "-o", str(tmp_path / "o.wav")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/tmp",
                            env={**os.environ, "TTSRIG_PYTHON": sys.executable, "HF_HUB_OFFLINE": "1",
                                 "PYTHONPATH": str(hook)},
                            # as a terminal's Ctrl-C finds it: a test run started in the background (`cmd &`)
                            # ignores SIGINT, and Python keeps an inherited SIG_IGN
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not waiting.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert waiting.exists(), proc.communicate()[1][-2000:]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode in (-signal.SIGINT, 130), err[-2000:]
    assert "Traceback" not in err and err.strip().splitlines() == ["say: interrupted"], err[-2000:]
    assert not (tmp_path / "o.wav").exists()


@pytest.mark.skipif(not AS_ROOT, reason="running as another user needs root (CI runs as root)")
def test_a_venv_this_user_cannot_enter_is_named_as_such_not_as_missing(tmp_path):
    import shutil
    import tempfile

    shared = Path(tempfile.mkdtemp(prefix="ttsrig-venv-test-"))  # in /tmp, which every user may enter
    shared.chmod(0o755)
    venv = shared / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    venv.chmod(0o700)  # root's venv
    try:
        _refused_as_nobody(venv, tmp_path)
    finally:
        shutil.rmtree(shared)


def _refused_as_nobody(venv: Path, tmp_path: Path) -> None:
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
    out = subprocess.run([*as_nobody, str(ROOT / "voices" / "say-strong"), "Hello."], capture_output=True, text=True,
                         cwd="/", env={"PATH": os.environ["PATH"], "TTSRIG_PYTHON": str(venv / "bin" / "python")})
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert f"you may not enter {venv} (it belongs to root)" in out.stderr and "not found" not in out.stderr
    missing = subprocess.run([str(ROOT / "voices" / "say-strong"), "Hello."], capture_output=True, text=True,
                             env={**os.environ, "TTSRIG_PYTHON": str(tmp_path / "none" / "bin" / "python")})
    assert missing.returncode == 2 and "not found: run" in missing.stderr and "bin/bootstrap" in missing.stderr
