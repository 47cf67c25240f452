"""Values a user gives that torch, numpy or upstream's code cannot take are one line and exit status 2, caught
where they enter (argparse types, the voice settings, the config check, the data set check), never a traceback:
seeds, F5 sampling settings, mel files, text that is not UTF-8, StyleTTS2 settings and language,
TTSRIG_DIST_TIMEOUT. Each test calls the check itself or runs the command only until it refuses."""
from __future__ import annotations

import copy
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from envcheck.errors import TtsrigError
from trainers import distributed, manifest, styletts2_pieces
from voices import f5 as f5_voice

ROOT = Path(__file__).resolve().parents[2]
SEED_RANGE = "is not a whole number from 0 to 4294967295"


@pytest.fixture
def no_model(monkeypatch):
    """A refusal must come before the voice loads: loading one fails the test."""
    from voices import say as say_mod

    def refuse(*args, **kwargs):
        raise AssertionError("the model loaded although the command should have been refused first")

    monkeypatch.setattr(say_mod.Speaker, "__init__", refuse)


def one_line(code: int, capsys) -> str:
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def say(capsys, *args: str) -> str:
    """say's main in this process; the one line it ends with (argparse's SystemExit or main's own exit 2)."""
    from voices import say as say_mod

    try:
        code = say_mod.main(list(args))
    except SystemExit as stopped:
        code = stopped.code
    return one_line(code, capsys)


# -- 1: seeds --------------------------------------------------------------------------------------

@pytest.mark.parametrize("engine", ["strong", "default"])
@pytest.mark.parametrize("seed", ["999999999999999999999", "-1", "4294967296"])
def test_say_refuses_a_seed_numpy_cannot_take(tmp_path, capsys, no_model, engine, seed):
    err = say(capsys, engine, "Hello.", "--seed", seed, "-o", str(tmp_path / "o.wav"))
    assert f"argument --seed: {seed} {SEED_RANGE}" in err and not (tmp_path / "o.wav").exists()


def test_a_render_refuses_a_seed_out_of_range_whoever_passes_it():
    from voices import say as say_mod

    with pytest.raises(TtsrigError, match=SEED_RANGE):  # audition passes seed + take
        say_mod.Speaker.render(object(), "Hello.", 2 ** 32)


@pytest.mark.parametrize("seed", ["999999999999999999999", "-1"])
def test_trainers_f5_refuses_a_seed_numpy_cannot_take(tmp_path, capsys, seed):
    from trainers import f5

    with pytest.raises(SystemExit) as stopped:
        f5.main([str(tmp_path / "m.jsonl"), "--out", str(tmp_path / "run"), "--seed", seed])
    assert f"argument --seed: {seed} {SEED_RANGE}" in one_line(stopped.value.code, capsys)


# -- 2: F5 sampling: sway, speed, the length asked for ------------------------------------------------

def test_the_sway_range_is_where_the_warped_time_grid_increases():
    """t + s (cos(pi/2 t) - 1 + t) on [0, 1] has slope 1 + s (1 - pi/2 sin(pi/2 t)): increasing exactly for
    -1 <= s <= 2 / (pi - 2). Checked on a fine float64 grid, inside and just outside."""
    t = torch.linspace(0, 1, 100_001, dtype=torch.float64)

    def increasing(s: float) -> bool:
        warped = t + s * (torch.cos(torch.pi / 2 * t) - 1 + t)
        return bool((warped[1:] > warped[:-1]).all()) and float(warped[0]) == 0 and abs(float(warped[-1]) - 1) < 1e-12

    assert f5_voice.SWAY_MIN == -1 and f5_voice.SWAY_MAX == pytest.approx(1 / (math.pi / 2 - 1))
    for s in np.linspace(f5_voice.SWAY_MIN, f5_voice.SWAY_MAX, 41):
        assert increasing(float(s)), s
    assert not increasing(f5_voice.SWAY_MIN - 0.01) and not increasing(f5_voice.SWAY_MAX + 0.01)


@pytest.mark.parametrize("steps, sway, speed", [(32, -1.0, 1.0), (32, f5_voice.SWAY_MAX, 1.0), (16, 0.5, 0.1),
                                                (1, 0.0, 10.0), (7, -0.5, 2.0)])
def test_sampling_settings_in_range_pass(steps, sway, speed):
    f5_voice.check_sampling(steps=steps, sway_sampling_coef=sway, speed=speed)
    grid = f5_voice.time_grid(steps, sway)
    assert len(grid) == steps + 1 and bool((grid[1:] > grid[:-1]).all())


@pytest.mark.parametrize("steps, sway, speed, expected", [
    (32, 1e308, 1.0, "sway_sampling_coef 1e+308 is outside -1 to 1.752"),
    (32, -1.5, 1.0, "sway_sampling_coef -1.5 is outside -1 to 1.752"),
    (32, 2.0, 1.0, "sway_sampling_coef 2 is outside"),
    (32, -1.0, 1e-300, "speed 1e-300 is outside 0.1 to 10"),
    (32, -1.0, 1e-6, "speed 1e-06 is outside 0.1 to 10"),
    (32, -1.0, 1e300, "speed 1e+300 is outside 0.1 to 10"),
    (100_000, -1.0, 1.0, "steps 100000 with sway_sampling_coef -1 give a time grid whose steps round"),
])
def test_sampling_settings_f5_cannot_compute_are_one_line(steps, sway, speed, expected):
    with pytest.raises(TtsrigError, match=expected.replace("+", r"\+")):
        f5_voice.check_sampling(steps=steps, sway_sampling_coef=sway, speed=speed)


@pytest.mark.parametrize("args, expected", [
    (["--speed", "1e-300"], "speed 1e-300 (its option, or in "),
    (["--speed", "1e-6"], "speed 1e-06 (its option, or in "),
    (["--sway", "1e308"], "sway_sampling_coef 1e+308 (its option, or in "),
])
def test_say_strong_refuses_sampling_options_before_the_model_loads(tmp_path, capsys, no_model, args, expected):
    err = say(capsys, "strong", "Hello.", *args, "-o", str(tmp_path / "o.wav"))
    assert expected in err and not (tmp_path / "o.wav").exists()


@pytest.mark.parametrize("setting, expected", [("sway_sampling_coef = 1e308", "sway_sampling_coef 1e+308"),
                                               ("speed = 1e-300", "speed 1e-300"),
                                               ("steps = 200000", "steps 200000 with sway_sampling_coef -1")])
def test_a_voice_config_with_such_values_is_one_line_too(tmp_path, capsys, no_model, setting, expected):
    config = tmp_path / "mine.toml"
    config.write_text(setting + "\n")
    err = say(capsys, "strong", "Hello.", "--voice-config", str(config), "-o", str(tmp_path / "o.wav"))
    assert expected in err and str(config) in err


def test_the_length_asked_for_is_bounded_by_what_the_model_can_generate():
    ref_samples, ref_text = 24_000 * 5, "The bath was full of warm water. "
    ref_frames, frames = f5_voice.frames_needed(ref_samples, ref_text, "A short sentence.", 1.0)
    assert ref_frames == ref_samples // 256  # upstream's rule: the text at the reference's rate
    assert frames == ref_frames + int(ref_frames / len(ref_text) * len("A short sentence."))
    long = "word " * 60
    assert f5_voice.frames_needed(ref_samples, ref_text, long, 1.0)[1] <= f5_voice.MAX_FRAMES
    with pytest.raises(TtsrigError, match=r"at speed 0.1 would take \d+ s after the 5.0 s reference, more than the "
                                          r"87 s F5-TTS can generate at once: raise --speed, split the sentence"):
        f5_voice.frames_needed(ref_samples, ref_text, long, 0.1)


# -- 3: mel files of a prepared set ------------------------------------------------------------------

MELS = {
    "int64": (torch.zeros(100, 50, dtype=torch.int64), "holds a mel of int64, not of floats"),
    "bool": (torch.zeros(100, 50, dtype=torch.bool), "holds a mel of bool, not of floats"),
    "uint8": (torch.zeros(100, 50, dtype=torch.uint8), "holds a mel of uint8, not of floats"),
    "0 frames": (torch.zeros(100, 0), "holds a mel of 0 frames"),
    "80 bins": (torch.zeros(80, 50), "mel_f5 needs [100, frames]"),
    "1-D": (torch.zeros(100), "holds a mel of shape [100]"),
    "float32": (torch.zeros(100, 50), None), "float16": (torch.zeros(100, 50, dtype=torch.float16), None),
    "bfloat16": (torch.zeros(100, 50, dtype=torch.bfloat16), None),
}


@pytest.mark.parametrize("case", list(MELS))
def test_a_mel_of_the_wrong_dtype_or_shape_is_named_before_the_epoch(tmp_path, case):
    tensor, expected = MELS[case]
    save_file({"mel": tensor}, tmp_path / "m.safetensors")
    clip = manifest.Clip("clip-7", "a.wav", "text", 1.0, "s", mel_f5="m.safetensors")
    if expected is None:
        manifest.check_files(tmp_path / "manifest.jsonl", [clip], ("mel_f5",))
        return
    with pytest.raises(TtsrigError) as refused:
        manifest.check_files(tmp_path / "manifest.jsonl", [clip], ("mel_f5",))
    message = str(refused.value)
    assert expected in message and "clip-7: " in message and "\n" not in message


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_a_half_precision_mel_trains_as_float32(tmp_path, dtype):
    from trainers.f5 import MelClips

    save_file({"mel": torch.ones(100, 9, dtype=dtype)}, tmp_path / "m.safetensors")
    data = MelClips.__new__(MelClips)  # only what __getitem__ reads
    data.root, data.tokens = tmp_path, [torch.tensor([1, 2])]
    data.clips = [manifest.Clip("c", "a.wav", "text", 1.0, "s", mel_f5="m.safetensors")]
    mel, _tokens = data[0]
    assert mel.dtype == torch.float32 and tuple(mel.shape) == (9, 100)


def test_a_styletts2_mel_is_checked_for_its_own_bins(tmp_path):
    save_file({"mel": torch.zeros(100, 50)}, tmp_path / "m.safetensors")
    assert "mel_styletts2 needs [80, frames]" in manifest.file_problem(tmp_path / "m.safetensors", "mel_styletts2")
    save_file({"mel": torch.zeros(80, 50, dtype=torch.int32)}, tmp_path / "m.safetensors")
    assert "holds a mel of int32" in manifest.file_problem(tmp_path / "m.safetensors", "mel_styletts2")


# -- 4: text that is not UTF-8 -----------------------------------------------------------------------

LATIN1 = b"Un caf\xe9 noir.".decode("utf-8", "surrogateescape")  # how Python reads such bytes from argv


@pytest.mark.parametrize("engine", ["strong", "default"])
def test_say_refuses_text_arguments_that_are_not_utf8(tmp_path, capsys, no_model, engine):
    err = say(capsys, engine, LATIN1, "-o", str(tmp_path / "o.wav"))
    assert "argument text: is not UTF-8 text (at b'Un caf\\xe9 noir.')" in err


def test_say_strong_refuses_a_ref_text_that_is_not_utf8(tmp_path, capsys, no_model):
    err = say(capsys, "strong", "Hello.", "--ref-text", LATIN1, "-o", str(tmp_path / "o.wav"))
    assert "argument --ref-text: is not UTF-8 text" in err


@pytest.mark.parametrize("errors", ["strict", "surrogateescape"])  # a UTF-8 locale, and a C locale's escapes
def test_say_refuses_standard_input_that_is_not_utf8(tmp_path, capsys, no_model, monkeypatch, errors):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"Un caf\xe9 noir."), encoding="utf-8",
                                                       errors=errors))
    err = say(capsys, "default", "-o", str(tmp_path / "o.wav"))
    assert "standard input is not UTF-8 text" in err and "LANG=C.UTF-8" in err


@pytest.mark.parametrize("field", ["text", "speaker", "id"])
def test_a_manifest_with_a_lone_surrogate_escape_names_its_line(tmp_path, field):
    line = {"id": "c1", "audio": "wavs/c1.wav", "text": "A clip.", "duration": 1.0, "speaker": "s"}
    path = tmp_path / "manifest.jsonl"
    good = json.dumps(line)
    line[field] = "caf\udce9"
    path.write_text(good + "\n" + json.dumps(line) + "\n")  # json writes the escape "\udce9"
    assert "\\udce9" in path.read_text()
    with pytest.raises(TtsrigError, match=rf"manifest.jsonl:2: {field} is not UTF-8 text \(at b'caf\\xe9'"):
        manifest.read(path)


# -- 5: StyleTTS2 settings ---------------------------------------------------------------------------

def defaults() -> dict:
    return copy.deepcopy(styletts2_pieces.FINE_TUNE_DEFAULTS)


@pytest.mark.parametrize("setting, expected", [
    ("batch_size=.inf", "batch_size = inf should be a whole number from 1"),
    ("max_len=.inf", "max_len = inf should be a whole number from 1"),
    ("epochs=abc", "epochs = 'abc' should be a whole number from 1"),
    ("epochs=0", "epochs = 0 should be"),
    ("batch_size=2.5", "batch_size = 2.5 should be a whole number"),
    ("seed=abc", "seed = 'abc' should be a whole number from 0 to 4294967295"),
    ("seed=-1", "seed = -1 should be"),
    ("seed=4294967296", "seed = 4294967296 should be"),
    ("loss_params.diff_epoch=abc", "loss_params.diff_epoch = 'abc' should be a whole number from 0"),
    ("loss_params.joint_epoch=-1", "loss_params.joint_epoch = -1 should be"),
    ("optimizer_params.lr=-1", "optimizer_params.lr = -1 should be a number above 0 and at most 1"),
    ("optimizer_params.bert_lr=.nan", "optimizer_params.bert_lr = nan should be"),
    ("optimizer_params.ft_lr=0", "optimizer_params.ft_lr = 0 should be"),
    ("loss_params.lambda_mel=-1", "loss_params.lambda_mel = -1 should be a number from 0"),
    ("loss_params.lambda_slm=.inf", "loss_params.lambda_slm = inf should be"),
    ("slmadv_params.iter=0", "slmadv_params.iter = 0 should be a whole number from 1"),
    ("slmadv_params.batch_percentage=2", "slmadv_params.batch_percentage = 2 should be"),
    ("slmadv_params.sig=abc", "slmadv_params.sig = 'abc' should be a number above 0"),
    ("slmadv_params.min_len=600", "slmadv_params.min_len 600 is above its max_len 500"),
    ("save_freq=[1]", "save_freq = [1] should be"),
    ("optimizer_params=5", "optimizer_params is 5, not a section of settings"),
    ("max_len=40", "below 80 frames"),
])
def test_every_numeric_setting_is_checked_before_use(setting, expected):
    with pytest.raises(TtsrigError) as refused:
        styletts2_pieces.apply_sets(defaults(), [setting])
    assert expected in str(refused.value) and "\n" not in str(refused.value)


def test_numbers_yaml_reads_as_text_are_taken_as_numbers():
    config = defaults()
    styletts2_pieces.apply_sets(config, ["optimizer_params.lr=1e-5", "seed=4294967295", "loss_params.diff_epoch=3"])
    assert config["optimizer_params"]["lr"] == 1e-5 and config["seed"] == 2 ** 32 - 1


def test_the_defaults_pass_and_every_default_setting_has_a_kind():
    styletts2_pieces.check(defaults())
    for section, value in styletts2_pieces.FINE_TUNE_DEFAULTS.items():
        names = [f"{section}.{k}" for k in value] if isinstance(value, dict) else [section]
        for name in names:
            assert name in styletts2_pieces.SETTINGS or ".lambda_" in name, name


def test_a_resumed_config_with_a_bad_value_is_one_line(tmp_path, capsys):
    from trainers import styletts2 as st

    run = tmp_path / "run"
    run.mkdir()
    config = {**defaults(), "model_params": {}, "language": "en-us"}
    config["loss_params"]["diff_epoch"] = "abc"
    styletts2_pieces.save_config(config, run / "config.yml")
    err = one_line(st.main([str(tmp_path / "m.jsonl"), "--out", str(run), "--resume", "--device", "cpu"]), capsys)
    assert "loss_params.diff_epoch = 'abc' should be a whole number from 0" in err


# -- 6: StyleTTS2 language ---------------------------------------------------------------------------

def test_an_unknown_language_is_one_line_before_anything_is_fetched(tmp_path, capsys, monkeypatch):
    from trainers import styletts2 as st

    monkeypatch.setattr(styletts2_pieces, "find", lambda *a, **k: pytest.fail("pieces looked for first"))
    err = one_line(st.main([str(tmp_path / "m.jsonl"), "--out", str(tmp_path / "run"), "--language", "xx-nope",
                            "--device", "cpu"]), capsys)
    assert "--language 'xx-nope' is not a language espeak-ng phonemises" in err and "espeak-ng --voices" in err
    assert "python -m trainers.phonemes --languages" in err and not (tmp_path / "run").exists()


def test_the_phonemiser_itself_refuses_an_unknown_language():
    from trainers import phonemes

    with pytest.raises(TtsrigError, match="'xx-nope' is not a language espeak-ng phonemises"):
        phonemes.phonemize(["Hello."], "xx-nope")
    assert "en-us" in phonemes.languages() and phonemes.check_language("en-gb") == "en-gb"


# -- 7: TTSRIG_DIST_TIMEOUT ----------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["abc", "1e400", "inf", "nan", "-5", "0", "0.5", "1e20"])
def test_a_bad_dist_timeout_is_one_line_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv("TTSRIG_DIST_TIMEOUT", value)
    with pytest.raises(TtsrigError, match=rf"TTSRIG_DIST_TIMEOUT='{value}' is not a number of seconds from 1 to "
                                          "604800"):
        distributed.timeout()
    monkeypatch.setenv("WORLD_SIZE", "2")  # only a distributed run reads it, before its process group starts
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda *a, **k: pytest.fail("started"))
    with pytest.raises(TtsrigError, match="TTSRIG_DIST_TIMEOUT"):
        distributed.join("cpu")


def test_a_good_dist_timeout_and_the_default(monkeypatch):
    monkeypatch.setenv("TTSRIG_DIST_TIMEOUT", "90.5")
    assert distributed.timeout().total_seconds() == 90.5
    monkeypatch.delenv("TTSRIG_DIST_TIMEOUT")
    assert distributed.timeout().total_seconds() == 300


@pytest.mark.parametrize("env, expected", [({"WORLD_SIZE": "abc"}, "WORLD_SIZE='abc' is not a whole number"),
                                           ({"WORLD_SIZE": "2", "RANK": "x"}, "RANK='x' is not a whole number"),
                                           ({"WORLD_SIZE": "2"}, "RANK is not set although WORLD_SIZE is"),
                                           ({"WORLD_SIZE": "2", "RANK": "2"}, "RANK 2 is not below WORLD_SIZE 2")])
def test_torchrun_s_variables_set_by_hand_are_one_line(monkeypatch, env, expected):
    monkeypatch.delenv("RANK", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(TtsrigError, match=expected):
        distributed.join("cpu")


def test_a_bad_dist_timeout_does_not_stop_a_run_of_one_process():
    code = "import trainers.distributed as d, trainers.f5; assert d.join('cpu').size == 1"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "TTSRIG_DIST_TIMEOUT": "abc"})
    assert proc.returncode == 0, proc.stderr[-2000:]
