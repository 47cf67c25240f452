"""What a file, a setting or a checkpoint names is bounded before it is allocated (a tester's breaks): audio whose
header claims a rate no recording has (or a length beyond MAX_SECONDS), a model whose sizes multiply beyond any
real one, standard input that never ends, an --passage that is a device or a pipe, a seed numpy cannot take.
Each is one line with exit status 2, never a traceback, a hang or gigabytes allocated."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from envcheck.errors import TtsrigError
from tests.models import synth, tiny_styletts2, voices_fixtures
from trainers import audio, config_check, f5_arch

ROOT = Path(__file__).resolve().parents[2]
REF_TEXT = "The bath was full of warm water."
ENV = {**os.environ, "TTSRIG_PYTHON": sys.executable, "TTSRIG_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}


def one_line(out: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2, no traceback, the error the last line of stderr (warnings on the way are allowed)."""
    assert out.returncode == 2, out.stdout + out.stderr[-3000:]
    assert "Traceback" not in out.stderr and "Error:" not in out.stderr, out.stderr[-3000:]
    last = [line for line in out.stderr.splitlines() if line.strip()][-1]
    for needle in needles:
        assert needle in last, last
    return last


def refusal(call) -> str:  # noqa: ANN001
    with pytest.raises(TtsrigError) as refused:
        call()
    assert "\n" not in str(refused.value)
    return str(refused.value)


@pytest.fixture(scope="module")
def kit(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("bounds")
    ref = synth.write(root / "ref.wav", synth.speech(REF_TEXT, 24_000), 24_000)
    vocoder = voices_fixtures.vocoder(root / "vocos")
    return {"root": root, "ref": ref, "run": voices_fixtures.f5_run(root / "f5run", epochs=1),
            "strong": voices_fixtures.strong_config(root / "strong.toml", vocoder)}


def say_strong(kit: dict, out: Path, *args: str, stdin=None) -> subprocess.CompletedProcess:  # noqa: ANN001
    command = [str(ROOT / "voices" / "say-strong"), "--voice-config", str(kit["strong"]), "--checkpoint",
               str(kit["run"] / "epoch_0001.safetensors"), "--ref", str(kit["ref"]), "--ref-text", REF_TEXT,
               "--device", "cpu", "-o", str(out), *args]
    return subprocess.run(command, capture_output=True, text=True, cwd="/tmp", timeout=600, env=ENV,
                          stdin=stdin if stdin is not None else subprocess.DEVNULL)


def audition(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "voices" / "audition"), *args], capture_output=True, text=True, cwd="/tmp",
                          timeout=120, env=ENV)  # the time-out is the hang a FIFO caused


# -- 1. audio: the rate a header claims, and the length ---------------------------------------------

def wav_claiming(path: Path, rate: int, seconds_at_8k: float = 5.0) -> Path:
    """An ordinary 16-bit WAV (80 KB for 5 s at 8 kHz) whose header then claims `rate` Hz."""
    sf.write(path, synth.speech(REF_TEXT, 8_000)[: int(seconds_at_8k * 8_000)], 8_000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    assert data[12:16] == b"fmt " and data[24:28] == (8_000).to_bytes(4, "little")
    data[24:28] = rate.to_bytes(4, "little")  # the fmt chunk's sample rate
    data[28:32] = min(rate * 2, (1 << 32) - 1).to_bytes(4, "little")  # its byte rate, as a writer would say
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("rate", [1, 3_999, 768_001, 2_000_000_000])
def test_a_header_claiming_a_rate_no_recording_has_is_one_line_before_anything_is_resampled(tmp_path, rate):
    bad = wav_claiming(tmp_path / "bad.wav", rate)
    for call in (lambda: audio.load(bad), lambda: audio.check_header(bad)):
        message = refusal(call)
        assert f"audio {bad} says its sample rate is {rate} Hz, outside the 4000-768000 Hz" in message


def test_the_rates_recordings_have_still_load_as_before(tmp_path):
    for rate in (audio.MIN_RATE, 8_000, 44_100, audio.MAX_RATE):
        wave = synth.tone(0.5, rate)
        path = synth.write(tmp_path / f"{rate}.wav", wave, rate, stereo=True)
        # the result of the one-shot read this replaced: the whole file, mixed down, resampled at once
        data, _ = sf.read(path, dtype="float32", always_2d=True)
        import soxr

        before = data.mean(axis=1)
        before = before if rate == audio.SAMPLE_RATE else soxr.resample(before, rate, audio.SAMPLE_RATE,
                                                                         quality="HQ").astype(np.float32)
        assert np.array_equal(audio.load(path), before)


def test_a_recording_longer_than_its_bound_is_refused_before_it_is_read_whole(tmp_path, monkeypatch):
    path = synth.write(tmp_path / "long.wav", synth.tone(3.0, 8_000), 8_000)
    message = refusal(lambda: audio.load(path, max_s=2.0))
    assert f"audio {path} is 0:00:03 long, more than the 2 s ttsrig reads from one file: split it first" in message
    assert len(audio.load(path, max_s=3.0)) == 3 * audio.SAMPLE_RATE
    assert audio.MAX_SECONDS == 2 * 3600
    # a header that does not say its length (libsndfile's 2**63 - 1): the read itself stops at the bound
    monkeypatch.setattr(audio, "_BLOCK_SAMPLES", 1000)
    read = []

    class Unsaid(sf.SoundFile):
        frames = property(lambda self: (1 << 63) - 1)

        def read(self, frames=-1, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN201
            data = super().read(frames, *args, **kwargs)
            read.append(len(data))
            return data

    monkeypatch.setattr(sf, "SoundFile", Unsaid)
    assert f"audio {path} is longer than the 1 s ttsrig reads" in refusal(lambda: audio.load(path, max_s=1.0))
    assert sum(read) == 8_001 and max(read) <= 1000  # a frame past the bound, in blocks, and not the rest


def test_say_strong_with_such_a_reference_is_one_line(kit, tmp_path):
    bad = wav_claiming(tmp_path / "ref-1hz.wav", 1)
    out = say_strong(kit, tmp_path / "out.wav", "Hello there.", "--ref", str(bad))
    one_line(out, f"{bad} says its sample rate is 1 Hz")
    assert not (tmp_path / "out.wav").exists()


def test_prepare_rejects_such_a_recording_and_goes_on(tmp_path):
    from trainers import manifest, prepare

    root = tmp_path / "in"
    synth.write(root / "ok.wav", synth.speech(REF_TEXT))
    (root / "ok.txt").write_text(REF_TEXT)
    wav_claiming(root / "hostile.wav", 1)
    (root / "hostile.txt").write_text("One hertz.")
    summary = prepare.prepare(root, tmp_path / "set", prepare.Settings(), None, "cpu", progress=False)
    assert summary["clips"] == 1 and summary["rejected"] == {"unreadable audio": 1}
    assert [c.id for c in manifest.read(tmp_path / "set" / "manifest.jsonl")] == ["ok"]


def test_audition_refuses_such_a_reference_before_it_makes_its_folder(kit, tmp_path):
    bad = wav_claiming(tmp_path / "ref-1hz.wav", 1)
    out = audition("render", "strong", str(kit["run"] / "epoch_0001.safetensors"), "--out", str(tmp_path / "aud"),
                   "--ref", str(bad), "--ref-text", REF_TEXT, "--voice-config", str(kit["strong"]), "--device", "cpu")
    one_line(out, "says its sample rate is 1 Hz")
    assert not (tmp_path / "aud").exists()


# -- 2. the size of the model a checkpoint's metadata or a config describes ------------------------------

def checkpoint_claiming(path: Path, arch: dict) -> Path:
    from safetensors.torch import save_file

    from trainers import f5_model

    save_file({"step": torch.tensor(1)}, path, metadata={f5_model.ARCH_KEY: json.dumps(arch)})
    return path


@pytest.mark.parametrize("change, needle", [
    ({"depth": 1 << 20}, "depth = 1048576 should be a whole number from 1 to 1024"),
    ({"dim": 1 << 14, "depth": 22}, "describes a model of about"),
], ids=["depth", "dim"])
def test_say_strong_refuses_a_checkpoint_whose_arch_is_beyond_any_model_unbuilt(kit, tmp_path, change, needle):
    checkpoint = checkpoint_claiming(tmp_path / "epoch_0009.safetensors", {**voices_fixtures.TINY_F5, **change})
    out = subprocess.run(["prlimit", f"--as={12 << 30}", "--", str(ROOT / "voices" / "say-strong"), "Hello.",
                          "--voice-config", str(kit["strong"]), "--checkpoint", str(checkpoint), "--ref",
                          str(kit["ref"]), "--ref-text", REF_TEXT, "--device", "cpu", "-o", str(tmp_path / "o.wav")],
                         capture_output=True, text=True, cwd="/tmp", timeout=600, env=ENV)
    one_line(out, f"{checkpoint} (metadata ttsrig.f5.arch)", needle)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("arch", [
    "base", voices_fixtures.TINY_F5, {"dim": 80, "depth": 3},
    {"dim": 256, "depth": 4, "heads": 4, "long_skip_connection": True, "text_dim": 64, "conv_layers": 2, "ff_mult": 3},
], ids=["F5TTS_v1_Base", "tiny", "defaults", "long-skip"])
def test_the_f5_estimate_counts_most_of_the_model_and_never_more(arch):
    from f5_tts.model.utils import get_tokenizer

    from patches import f5_core
    from trainers import f5_model, mels

    assert f5_arch.MEL_DIM == mels.F5_MELS
    arch = f5_model.default_arch() if arch == "base" else arch
    _, size = get_tokenizer(f5_model.default_vocab(), "custom")
    with torch.device("meta"):  # counted, not allocated
        built = count(f5_core.install().DiT(**arch, text_num_embeds=size, mel_dim=mels.F5_MELS))
    assert 0.98 * built < f5_arch.parameters(arch, size) <= built


@pytest.mark.parametrize("sizes", ["full", "tiny"])
def test_the_styletts2_estimates_count_most_of_the_model_and_never_more(sizes):
    from styletts2.models import build_model
    from styletts2.Utils.ASR.models import ASRCNN
    from styletts2.Utils.JDC.model import JDCNet
    from styletts2.Utils.PLBERT.util import CustomAlbert
    from styletts2.utils import recursive_munch
    from transformers import AlbertConfig

    sizes = tiny_styletts2.full_size() if sizes == "full" else {
        "model_params": tiny_styletts2.MODEL_PARAMS, "asr": tiny_styletts2.ASR, "plbert": tiny_styletts2.PLBERT}
    with torch.device("meta"):
        asr, bert = ASRCNN(**sizes["asr"]), CustomAlbert(AlbertConfig(**sizes["plbert"]))
        nets = build_model(recursive_munch(sizes["model_params"]), asr, JDCNet(num_class=1, seq_len=192), bert)
    own = sum(count(nets[k]) for k in nets if k not in ("bert", "text_aligner", "pitch_extractor"))
    assert 0.95 * own < config_check.styletts2_parameters(sizes["model_params"], bert.config.hidden_size) <= own
    assert 0.85 * count(asr) < config_check.asr_parameters(sizes["asr"]) <= count(asr)
    assert 0.95 * count(bert) < config_check.plbert_parameters(sizes["plbert"]) <= count(bert)


def test_a_styletts2_config_with_n_layer_100000_is_refused_before_anything_is_built(tmp_path):
    import yaml

    from trainers import styletts2_model

    checkpoint = voices_fixtures.styletts2_checkpoint(tiny_styletts2.make(tmp_path / "pieces"), tmp_path / "run")
    config = yaml.safe_load((checkpoint.parent / "config.yml").read_text())
    config["model_params"]["n_layer"] = 100_000  # trainers.styletts2 --set model_params.n_layer=100000
    with pytest.raises(TtsrigError, match="n_layer = 100000 layers, more than the 1024"):
        styletts2_model.check_config(config, "run/config.yml")



@pytest.mark.parametrize("piece, fields, key", [("ASR", "ASR_PARAMS", "n_layers"),
                                                ("PL-BERT", "PLBERT_PARAMS", "num_hidden_groups")])
def test_a_piece_config_of_a_huge_model_is_refused_before_it_is_built(tmp_path, piece, fields, key):
    import yaml

    from trainers import styletts2_model

    params = dict(tiny_styletts2.ASR if piece == "ASR" else tiny_styletts2.PLBERT, **{key: 100_000})
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"model_params": params}))
    with pytest.raises(TtsrigError, match=f"{key} = 100000 layers, more than the 1024"):
        styletts2_model.model_params(config, getattr(styletts2_model, fields), piece)

# -- 3. standard input -------------------------------------------------------------------------------

def test_standard_input_that_never_ends_is_one_line(kit, tmp_path):
    with open("/dev/zero", "rb") as zero:
        out = say_strong(kit, tmp_path / "x.wav", stdin=zero)
    one_line(out, "standard input is more than the 8.0 MB such a text can be")
    assert not (tmp_path / "x.wav").exists()


def test_standard_input_within_the_bound_reads_as_before(monkeypatch):
    import io

    from voices import text as text_mod

    stdin = io.TextIOWrapper(io.BytesIO("Read from standard input, caf\u00e9.\n".encode()), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", stdin)
    assert text_mod.read_stdin() == "Read from standard input, caf\u00e9.\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO("x" * 11))  # a text stream standing in for it
    assert "more than the 10 bytes" in refusal(lambda: text_mod.read_stdin(limit=10))


# -- 4. audition's --passage, 6. its --seed -----------------------------------------------------------

@pytest.mark.parametrize("kind", ["/dev/zero", "fifo", "folder", "too-big"])
def test_a_passage_that_is_no_regular_file_of_bounded_size_is_one_line(kit, tmp_path, kind):
    passage = {"/dev/zero": Path("/dev/zero"), "fifo": tmp_path / "fifo.txt", "folder": tmp_path,
               "too-big": tmp_path / "big.txt"}[kind]
    if kind == "fifo":
        os.mkfifo(passage)
    elif kind == "too-big":
        with open(passage, "wb") as handle:
            handle.truncate(9 << 20)
    out = audition("render", "strong", str(kit["run"] / "epoch_0001.safetensors"), "--out", str(tmp_path / "aud"),
                   "--ref", str(kit["ref"]), "--ref-text", REF_TEXT, "--passage", str(passage))
    expected = {"/dev/zero": "is a character device, not a regular file", "fifo": "is a named pipe (FIFO)",
                "folder": "is a folder, not a file", "too-big": "is 9.0 MB, more than the 8.0 MB"}[kind]
    one_line(out, f"--passage {passage} {expected}")
    assert not (tmp_path / "aud").exists()


def test_a_passage_in_utf8_with_a_bom_is_read_without_it(tmp_path):
    from voices import audition as audition_mod

    passage = tmp_path / "passage.txt"
    passage.write_bytes(b"\xef\xbb\xbfThe passage.\n")
    assert audition_mod.read_passage(str(passage)) == "The passage."
    passage.write_bytes(b"caf\xe9")
    assert f"--passage {passage}:1 is not UTF-8 text (byte 0xe9)" in refusal(
        lambda: audition_mod.read_passage(str(passage)))


@pytest.mark.parametrize("seed, takes, needle", [
    ("-1", "1", "argument --seed: -1 is not a whole number from 0 to 4294967295"),
    ("4294967296", "1", "argument --seed: 4294967296 is not a whole number from 0 to 4294967295"),
    ("4294967295", "2", "--seed 4294967295 with --takes 2 would seed take 2 with 4294967296"),
])
def test_a_seed_numpy_cannot_take_is_one_line_before_anything_is_made(kit, tmp_path, seed, takes, needle):
    out = audition("render", "strong", str(kit["run"] / "epoch_0001.safetensors"), "--out", str(tmp_path / "aud"),
                   "--ref", str(kit["ref"]), "--ref-text", REF_TEXT, "--seed", seed, "--takes", takes)
    one_line(out, needle)
    assert not (tmp_path / "aud").exists()
