"""The first run speaks (issue 26): with nothing configured, both voices speak with the upstream pretrains
from the download caches and the example clip the installed f5-tts ships; `python -m trainers.fetch` fills
those caches and says what each file is. Tiny models stand in for the pretrains, laid out exactly where
huggingface_hub and cached_path keep downloads; everything runs offline."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.models import tiny_styletts2, voices_fixtures
from trainers import f5_model, hub, styletts2_pieces

ROOT = Path(__file__).resolve().parents[2]
COMMIT = "3f0c4a1e9b2d8c7f6a5e4d3c2b1a09f8e7d6c5b4"  # any commit id: refs/main names the snapshot to read
HF_URL = "https://huggingface.co/"
PICKLED = (".pth", ".t7", ".bin")


# -- the caches, laid out as the two libraries keep their downloads -------------------------------------------

def hub_file(hub_root: Path, repo: str, filename: str, source: Path) -> Path:
    """`source` as huggingface_hub keeps a downloaded file: the bytes in blobs/<etag> (a large file's etag is
    its sha256, a small git file's its git blob id), linked from snapshots/<commit>/<filename>, and
    refs/main naming the commit. Returns the snapshot path (what hf_hub_download answers)."""
    data = source.read_bytes()
    folder = hub_root / ("models--" + repo.replace("/", "--"))
    large = filename.endswith((*PICKLED, ".safetensors"))
    etag = hashlib.sha256(data).hexdigest() if large else hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    (folder / "blobs").mkdir(parents=True, exist_ok=True)
    (folder / "blobs" / etag).write_bytes(data)
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(COMMIT)
    snapshot = folder / "snapshots" / COMMIT / filename
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    snapshot.symlink_to(os.path.relpath(folder / "blobs" / etag, snapshot.parent))
    return snapshot


def cached_path_file(root: Path, url: str, source: Path) -> Path:
    """`source` as cached_path keeps a download of `url`: a file named by the sha256 of the URL."""
    root.mkdir(parents=True, exist_ok=True)
    target = root / hashlib.sha256(url.encode()).hexdigest()
    shutil.copy(source, target)
    return target


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """Tiny stand-ins for every file trainers.fetch fetches (random weights, the real formats)."""
    root = tmp_path_factory.mktemp("tiny")
    model, _ = f5_model.build_model(voices_fixtures.TINY_F5, f5_model.default_vocab())
    pretrain = root / "f5.safetensors"  # the architecture travels in its metadata, as the trainer writes it
    pretrain.write_bytes(f5_model.inference_bytes(model, 1, voices_fixtures.TINY_F5, None))
    return {"f5": pretrain, "vocoder": voices_fixtures.vocoder(root / "vocos"),
            "styletts2": tiny_styletts2.make(root / "styletts2"), "root": root}


def lay_out(tiny: dict[str, Path], cache: Path, groups: tuple[str, ...] = ("f5", "styletts2"),
            skip: tuple[str, ...] = ()) -> dict[str, Path]:
    """The caches of `groups` under `cache` (less the sources named in `skip`); {label: cached path}."""
    hub_root, laid = cache / "hf" / "hub", {}
    if "f5" in groups:
        pretrain = hub.parse(f5_model.PRETRAINED)
        laid["F5-TTS pretrain"] = hub_file(hub_root, pretrain.repo, pretrain.filename, tiny["f5"])
        if "vocoder" not in skip:
            for name in f5_model.VOCODER_FILES:
                laid[f"vocoder {name}"] = hub_file(hub_root, f5_model.VOCODER, name, tiny["vocoder"] / name)
    if "styletts2" in groups:
        for name, (layout, url) in styletts2_pieces.PIECES.items():
            source = tiny["styletts2"] / layout
            if url.startswith(HF_URL):
                repo, filename = url[len(HF_URL):].split("/resolve/main/")
                laid[name] = hub_file(hub_root, repo, filename, source)
            else:
                laid[name] = cached_path_file(cache / "cached_path", url, source)
        for name in ("config.json", "model.safetensors"):  # what save_pretrained wrote
            laid[f"WavLM {name}"] = hub_file(hub_root, styletts2_pieces.WAVLM, name,
                                             tiny["styletts2"] / "wavlm-base-plus" / name)
    return laid


def offline_env(cache: Path) -> dict[str, str]:
    """Offline, with `cache` as both libraries' caches (the trust list stays the test's own: conftest)."""
    return {**os.environ, "TTSRIG_PYTHON": sys.executable, "PYTHONPATH": str(ROOT), "TTSRIG_OFFLINE": "1",
            "HF_HUB_OFFLINE": "1", "HF_HOME": str(cache / "hf"), "HF_HUB_CACHE": str(cache / "hf" / "hub"),
            "CACHED_PATH_CACHE_ROOT": str(cache / "cached_path")}


@pytest.fixture(scope="module")
def full_cache(tiny) -> tuple[Path, dict[str, Path]]:
    cache = tiny["root"] / "full-cache"
    return cache, lay_out(tiny, cache)


# -- running the commands -------------------------------------------------------------------------------------

def say(engine: str, cache: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "voices" / f"say-{engine}"), *args, "--device", "cpu"], capture_output=True,
                          text=True, cwd="/tmp", timeout=600, env=env or offline_env(cache))


def fetch(cache: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trainers.fetch", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=600, env=offline_env(cache))


def shipped_example() -> tuple[Path, str]:
    """The example clip and transcript of the installed f5-tts, as its own settings file names them."""
    basic = files("f5_tts").joinpath("infer/examples/basic")
    settings = tomllib.loads(basic.joinpath("basic.toml").read_text(encoding="utf-8"))
    clip = Path(str(files("f5_tts").joinpath(settings["ref_audio"])))
    assert clip.name == "basic_ref_en.wav" and clip.is_file()
    return clip, settings["ref_text"]


def notes_naming(stderr: str, clip: Path) -> list[str]:
    return [line for line in stderr.splitlines() if str(clip) in line]


def one_line_error(out: subprocess.CompletedProcess, prefix: str) -> str:
    """Exit 2, no traceback, the error the last line of stderr and not continued."""
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith(prefix), out.stderr
    assert sum(line.startswith(prefix) for line in lines) == 1, out.stderr
    return lines[-1]


def wav_seconds(path: Path) -> float:
    data, rate = sf.read(path, dtype="float32")
    assert rate == 24_000 and data.ndim == 1 and np.isfinite(data).all() and np.abs(data).max() > 0
    return len(data) / rate


# -- both voices, nothing configured ---------------------------------------------------------------------------

def test_say_strong_speaks_with_the_cached_pretrain_and_the_example_clip(full_cache, tmp_path):
    cache, _ = full_cache
    out = say("strong", cache, "Hello there.", "-o", str(tmp_path / "hello.wav"), "--steps", "4")
    assert out.returncode == 0, out.stderr[-3000:]
    assert wav_seconds(tmp_path / "hello.wav") > 0.2
    clip, text = shipped_example()
    [note] = notes_naming(out.stderr, clip)  # one line, once
    assert text in note and "--ref CLIP --ref-text TEXT" in note and "reference and reference_text" in note
    assert str(ROOT / "voices" / "strong.toml") in note


def test_fetch_trust_then_say_default_speaks_with_the_cached_pieces(full_cache, tmp_path):
    """The quick start offline: trust the legacy pretrain through trainers.fetch, then speak without flags."""
    cache, laid = full_cache
    refused = say("default", cache, "Hello there.", "-o", str(tmp_path / "refused.wav"))
    assert refused.returncode == 2 and f"refused to unpickle {laid['model']}" in refused.stderr, refused.stderr[-3000:]
    assert not (tmp_path / "refused.wav").exists()

    trusted = fetch(cache, "--only", "styletts2", "--trust")
    assert trusted.returncode == 0, trusted.stderr[-3000:]
    out = say("default", cache, "Hello there.", "-o", str(tmp_path / "hello.wav"), "--diffusion-steps", "3")
    assert out.returncode == 0, out.stderr[-3000:]
    assert wav_seconds(tmp_path / "hello.wav") > 0.1
    clip, _ = shipped_example()
    [note] = notes_naming(out.stderr, clip)
    assert "--ref CLIP" in note and "--ref-text" not in note and str(ROOT / "voices" / "default.toml") in note
    # the pretrain was the cache's (the trust list's entry is what let it load)
    assert f"loaded legacy pickle {laid['model']}" in out.stderr, out.stderr[-3000:]


def test_audition_records_the_example_and_notes_it_once(tiny, tmp_path):
    run = voices_fixtures.f5_run(tmp_path / "run", epochs=2)
    config = voices_fixtures.strong_config(tmp_path / "strong.toml", tiny["vocoder"])
    (tmp_path / "passage.txt").write_text("A short passage to hear.")
    out = subprocess.run([str(ROOT / "voices" / "audition"), "render", "strong", str(run / "epoch_*.safetensors"),
                          "--out", str(tmp_path / "aud"), "--voice-config", str(config), "--passage",
                          str(tmp_path / "passage.txt"), "--device", "cpu"], capture_output=True, text=True,
                         cwd="/tmp", timeout=600, env=offline_env(tmp_path / "no-cache"))
    assert out.returncode == 0, out.stderr[-3000:]
    clip, text = shipped_example()
    assert len(notes_naming(out.stderr, clip)) == 1, out.stderr  # two checkpoints, one note
    renders = json.loads((tmp_path / "aud" / "renders.json").read_text())
    assert renders["reference"] == str(clip.resolve()) and renders["reference_text"] == text
    assert len(renders["renders"]) == 2


def test_a_transcript_without_a_clip_is_refused_before_the_voice_loads(tmp_path, capsys, monkeypatch):
    from voices import say as say_mod

    def refuse(*args, **kwargs):
        raise AssertionError("the model loaded although the command should have been refused first")

    monkeypatch.setattr(say_mod.Speaker, "__init__", refuse)
    code = say_mod.main(["strong", "Hello.", "--ref-text", "Words someone said.", "-o", str(tmp_path / "o.wav")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "reference_text is set but no reference clip" in err and "--ref CLIP" in err
    assert not (tmp_path / "o.wav").exists()


@pytest.mark.parametrize("engine, removed", [("strong", "clip"), ("default", "example")])
def test_the_example_missing_from_the_package_is_one_line(tmp_path, engine, removed):
    """A copy of the installed f5-tts, first on PYTHONPATH, that lacks the example clip (or the whole example)."""
    installed = Path(str(files("f5_tts").joinpath("infer"))).parent
    shadow = tmp_path / "shadow" / "f5_tts"
    shutil.copytree(installed, shadow, ignore=shutil.ignore_patterns("__pycache__"))
    clip, _ = shipped_example()
    missing = shadow / clip.relative_to(installed)
    if removed == "clip":
        missing.unlink()
    else:
        shutil.rmtree(missing.parent)
        missing = missing.parent / "basic.toml"
    env = {**offline_env(tmp_path / "no-cache"), "PYTHONPATH": str(shadow.parent)}
    out = say(engine, tmp_path, "Hello.", "-o", str(tmp_path / "o.wav"), env=env)
    line = one_line_error(out, f"say-{engine}:")
    assert str(missing) in line and "re-run bin/bootstrap" in line and "--ref CLIP" in line, line
    assert not (tmp_path / "o.wav").exists()


# -- offline, not cached: the command that fetches ---------------------------------------------------------------

@pytest.mark.parametrize("engine, cached, alternative", [
    ("strong", (), "--checkpoint PATH"),
    ("strong", ("f5",), "set vocoder to a folder"),
    ("default", (), "--pretrained-dir"),
])
def test_offline_without_the_pretrain_names_trainers_fetch(tiny, tmp_path, engine, cached, alternative):
    cache = tmp_path / "cache"
    lay_out(tiny, cache, groups=cached, skip=("vocoder",))
    out = say(engine, cache, "Hello.", "-o", str(tmp_path / "o.wav"), "--trust-checkpoint")
    line = one_line_error(out, f"say-{engine}:")
    assert "python -m trainers.fetch" in line and "while online" in line.lower() and alternative in line, line
    assert not (tmp_path / "o.wav").exists()


def test_offline_without_wavlm_names_trainers_fetch(tmp_path):
    code = ("from trainers import styletts2_pieces\nfrom envcheck.errors import TtsrigError\n"
            "try:\n    styletts2_pieces.wavlm_folder(styletts2_pieces.WAVLM)\nexcept TtsrigError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env=offline_env(tmp_path / "cache"))
    [line] = out.stdout.splitlines()
    assert "python -m trainers.fetch" in line and "--wavlm PATH" in line, out.stdout + out.stderr


# -- trainers.fetch ----------------------------------------------------------------------------------------------

def test_fetch_offline_with_everything_cached_prints_each_file_and_trusts_nothing(full_cache):
    cache, laid = full_cache
    out = fetch(cache)
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    lines = out.stdout.splitlines()
    for label, path in laid.items():
        [line] = [each for each in lines if each.endswith(")") and f": {path} (" in each]
        if str(cache / "cached_path") in str(path):
            assert "GitHub publishes no hash" in line, line
        elif path.name.endswith((*PICKLED, ".safetensors")):  # offline: the hub was not asked, so no claim of it
            assert "sha256 matches the name the cache filed it under" in line and "hub publishes" not in line, line
    pretrain = laid["model"]
    trust_commands = [line for line in lines if "python -m patches trust add" in line]
    assert trust_commands and all(line.endswith(f"python -m patches trust add {pretrain}") for line in trust_commands)
    assert len(trust_commands) == 1  # the tiny pieces besides the pretrain are tensor-only pickles
    assert not Path(os.environ["TTSRIG_TRUST_FILE"]).exists()  # trust is the user's decision


def test_fetch_trust_trusts_exactly_the_legacy_pickles(full_cache):
    cache, laid = full_cache
    out = fetch(cache, "--trust")
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    entries = json.loads(Path(os.environ["TTSRIG_TRUST_FILE"]).read_text())["checkpoints"]
    pickles = [laid[name] for name, (layout, _) in styletts2_pieces.PIECES.items() if layout.endswith(PICKLED)]
    assert len(pickles) > 1 and laid["vocoder pytorch_model.bin"].exists()  # tensor-only pickles were there too
    assert set(entries) == {hashlib.sha256(laid["model"].read_bytes()).hexdigest()}
    assert "trusted by --trust" in out.stdout and "python -m patches trust add" in out.stdout


def test_fetch_offline_with_nothing_cached_fails_in_one_line(tmp_path):
    out = fetch(tmp_path / "empty")
    line = one_line_error(out, "trainers.fetch:")
    assert "downloads are off" in line and "python -m trainers.fetch while online" in line, line
    assert "F5-TTS pretrain" in line and "WavLM" in line and out.stdout == ""


def test_fetch_only_f5_needs_only_f5s_files(tiny, tmp_path):
    cache = tmp_path / "cache"
    laid = lay_out(tiny, cache, groups=("f5",))
    out = fetch(cache, "--only", "f5")
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    assert all(str(path) in out.stdout for path in laid.values()) and "StyleTTS2" not in out.stdout


def test_fetch_refuses_a_cached_file_whose_bytes_differ_from_the_hubs_hash(tiny, tmp_path):
    cache = tmp_path / "cache"
    laid = lay_out(tiny, cache, groups=("f5",))
    blob = laid["F5-TTS pretrain"].resolve()
    blob.write_bytes(blob.read_bytes() + b"\0")  # damaged after the download
    line = one_line_error(fetch(cache, "--only", "f5"), "trainers.fetch:")
    assert str(laid["F5-TTS pretrain"]) in line and "damaged or was replaced" in line, line
    assert f"Delete {blob} and run python -m trainers.fetch again" in line, line
