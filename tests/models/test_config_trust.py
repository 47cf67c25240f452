"""No setting or file runs code unless the user trusted it, and bad ids and voice configs
are one line: the vocoder's config.yaml, an F5 run's run.json, StyleTTS2's configs and WavLM,
hf:// ids and the voices' TOML files. Every malicious file is made here; its payload would write a marker
file, and the marker must never appear."""
from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from envcheck.errors import TtsrigError
from patches.checkpoints import CheckpointError
from tests.models import synth, tiny_styletts2, voices_fixtures

ROOT = Path(__file__).resolve().parents[2]
REF_TEXT = "The bath was full of warm water."
VOCOS_ID = "charactr/vocos-mel-24khz"


# -- helpers ----------------------------------------------------------------------------------------

def payload(marker: Path) -> dict:
    """A vocos/jsonargparse-style section that vocos' from_hparams would import and call: it writes marker."""
    return {"class_path": "subprocess.run", "init_args": {"args": ["touch", str(marker)]}}


def yaml_payload(marker: Path) -> str:
    """A YAML tag that an unsafe yaml.load would call: it writes marker."""
    return f"!!python/object/apply:subprocess.run [[touch, {marker}]]"


class Evil:
    def __reduce__(self):
        return (subprocess.run, (["touch", self.marker],))


def evil_pickle(path: Path, marker: Path) -> Path:
    evil = Evil()
    evil.marker = str(marker)
    path.write_bytes(pickle.dumps({"weights": evil}))
    return path


def say(engine: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "voices" / f"say-{engine}"), *args], capture_output=True, text=True,
                          cwd="/tmp", timeout=600, env={**os.environ, "TTSRIG_PYTHON": sys.executable,
                                                        "TTSRIG_OFFLINE": "1", "HF_HUB_OFFLINE": "1", **(env or {})})


def assert_one_line_refusal(out: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2, no traceback, and the error is one line (warnings on the way are allowed, not the error's tail)."""
    assert out.returncode == 2, out.stdout + out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    errors = [i for i, line in enumerate(lines) if line.startswith(("say-", "trainers."))]
    assert errors and errors[-1] == len(lines) - 1, out.stderr  # the error is the last line, not continued
    for needle in needles:
        assert needle in lines[-1], lines[-1]
    return lines[-1]


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text.strip(), text
    return text


@pytest.fixture(scope="module")
def kit(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("trust")
    ref = synth.write(root / "ref.wav", synth.speech(REF_TEXT, 24_000), 24_000)
    return {"root": root, "ref": ref, "vocoder": voices_fixtures.vocoder(root / "vocos"),
            "run": voices_fixtures.f5_run(root / "f5run", epochs=1)}


def strong(kit: dict, tmp_path: Path, *, vocoder: str | None = None, checkpoint: str | None = None,
           env: dict | None = None, **settings) -> subprocess.CompletedProcess:
    config = voices_fixtures.strong_config(tmp_path / "strong.toml", Path(vocoder or kit["vocoder"]), **settings)
    return say("strong", "Hello there.", "--voice-config", str(config), "--checkpoint",
               checkpoint or str(kit["run"] / "epoch_0001.safetensors"), "--ref", str(kit["ref"]), "--ref-text",
               REF_TEXT, "--device", "cpu", "-o", str(tmp_path / "out.wav"), env=env)


def vocoder_copy(kit: dict, folder: Path, change) -> Path:
    shutil.copytree(kit["vocoder"], folder)
    config = yaml.safe_load((folder / "config.yaml").read_text())
    text = change(config)
    (folder / "config.yaml").write_text(text if isinstance(text, str) else yaml.safe_dump(config))
    return folder


def hub_cache(home: Path, repo: str, files: dict[str, Path]) -> Path:
    """A Hugging Face cache holding `repo` at one revision, as huggingface_hub lays it out."""
    commit = "0" * 40
    cached = home / "hub" / f"models--{repo.replace('/', '--')}"
    (cached / "refs").mkdir(parents=True)
    (cached / "refs" / "main").write_text(commit)
    snapshot = cached / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name, source in files.items():
        shutil.copy(source, snapshot / name)
    return home


# -- item 2: the vocoder ----------------------------------------------------------------------------

def test_say_strong_refuses_a_vocoder_config_that_names_another_class_unrun(kit, tmp_path):
    marker = tmp_path / "marker"
    folder = vocoder_copy(kit, tmp_path / "vocos", lambda c: c.update({"backbone": payload(marker)}))
    out = strong(kit, tmp_path, vocoder=str(folder))
    line = assert_one_line_refusal(out, "backbone.class_path 'subprocess.run' is not allowed",
                                   "vocos.feature_extractors.MelSpectrogramFeatures", "vocos.models.VocosBackbone",
                                   "vocos.heads.ISTFTHead")
    assert VOCOS_ID in line
    assert not marker.exists() and not (tmp_path / "out.wav").exists()


@pytest.mark.parametrize("case", ["feature_extractor", "head", "extra-argument", "yaml-tag", "wrong-kind",
                                  "not-a-mapping"])
def test_a_vocoder_config_is_refused_unless_it_is_the_supported_vocoder(kit, tmp_path, case):
    from voices import f5

    marker = tmp_path / "marker"

    def change(config):
        if case in ("feature_extractor", "head"):
            config[case] = payload(marker)
        elif case == "extra-argument":  # the right class, an argument it was never given
            config["backbone"]["init_args"]["command"] = f"touch {marker}"
        elif case == "yaml-tag":
            return yaml.safe_dump(config).replace("num_layers: 2", f"num_layers: {yaml_payload(marker)}")
        elif case == "wrong-kind":
            config["head"]["init_args"]["dim"] = [f"touch {marker}"]
        else:
            return f"- {yaml_payload(marker)}\n"

    folder = vocoder_copy(kit, tmp_path / "vocos", change)
    with pytest.raises(TtsrigError) as refused:
        f5.load_vocoder(str(folder), "cpu")
    assert f"vocoder config {folder / 'config.yaml'}" in one_line(refused)
    if case in ("feature_extractor", "head"):
        assert f"{case}.class_path 'subprocess.run' is not allowed" in str(refused.value)
    assert not marker.exists()


def test_the_published_vocoder_layout_still_loads_and_decodes_as_vocos_does(kit):
    from vocos import Vocos

    from voices import f5

    ours = f5.load_vocoder(str(kit["vocoder"]), "cpu")
    theirs = Vocos.from_hparams(str(kit["vocoder"] / "config.yaml"))
    theirs.load_state_dict(torch.load(kit["vocoder"] / "pytorch_model.bin", weights_only=True))
    mel = torch.randn(1, 100, 24)
    with torch.no_grad():
        assert torch.equal(ours.decode(mel), theirs.eval().decode(mel))


def test_the_default_vocoder_id_comes_from_the_hub_cache_and_a_bad_config_there_is_refused(kit, tmp_path):
    """`vocoder = "charactr/vocos-mel-24khz"` (the shipped setting) is a hub id, not a path in the checkout; what
    a cached repository holds goes through the same checks as a folder."""
    marker = tmp_path / "marker"
    evil = vocoder_copy(kit, tmp_path / "evil-vocos", lambda c: c.update({"backbone": payload(marker)}))
    home = hub_cache(tmp_path / "hf", VOCOS_ID, {"config.yaml": kit["vocoder"] / "config.yaml",
                                                  "pytorch_model.bin": kit["vocoder"] / "pytorch_model.bin"})
    hub_cache(home, "someone/evil-vocos", {"config.yaml": evil / "config.yaml",
                                           "pytorch_model.bin": evil / "pytorch_model.bin"})
    env = {"HF_HOME": str(home)}
    (tmp_path / "a").mkdir()
    out = strong(kit, tmp_path / "a", vocoder=VOCOS_ID, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "a" / "out.wav").stat().st_size > 1000
    code = ("from voices import f5\nfrom envcheck.errors import TtsrigError\n"
            "try:\n    f5.load_vocoder('someone/evil-vocos', 'cpu')\nexcept TtsrigError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=600,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", **env})
    assert "backbone.class_path 'subprocess.run' is not allowed" in out.stdout, out.stdout + out.stderr[-3000:]
    assert not marker.exists()


def test_a_pickled_vocoder_weight_file_is_refused_unrun(kit, tmp_path):
    """A guard: the vocoder's weights already went through the safe loader."""
    from voices import f5

    marker = tmp_path / "marker"
    folder = vocoder_copy(kit, tmp_path / "vocos", lambda c: None)
    evil_pickle(folder / "pytorch_model.bin", marker)
    with pytest.raises(CheckpointError, match="refused to unpickle"):
        f5.load_vocoder(str(folder), "cpu")
    assert not marker.exists()


# -- item 2: the run.json and model_config of F5 -----------------------------------------------------

@pytest.mark.parametrize("arch", [
    {"class_path": "subprocess.run", "args": ["touch", "MARKER"]},
    {**voices_fixtures.TINY_F5, "depth": "2; touch MARKER"},
    {**voices_fixtures.TINY_F5, "attn_backend": "subprocess.run"},
    {**voices_fixtures.TINY_F5, "dim": True},
    "touch MARKER",
], ids=["class-name", "string-for-int", "unknown-backend", "bool-for-int", "not-a-mapping"])
def test_an_f5_run_json_is_checked_before_a_model_is_built(kit, tmp_path, arch):
    from voices import f5

    marker = tmp_path / "marker"
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(kit["run"] / "epoch_0001.safetensors", run)
    arch = json.loads(json.dumps(arch).replace("MARKER", str(marker)))
    (run / "run.json").write_text(json.dumps({"arch": arch, "vocab": None}))
    if isinstance(arch, dict) and "class_path" in arch:  # once through say-strong: exit 2, one line
        out = strong(kit, tmp_path, checkpoint=str(run / "epoch_0001.safetensors"))
        assert_one_line_refusal(out, "run.json", "unknown setting")
    with pytest.raises(TtsrigError) as refused:
        f5.load(str(run / "epoch_0001.safetensors"), vocab=None, model_config=None, vocoder=str(kit["vocoder"]),
                device="cpu")
    assert str(run / "run.json") in one_line(refused) and "arch" in str(refused.value)
    assert not marker.exists()


def test_a_model_config_is_checked_the_same_way(kit, tmp_path):
    from voices import f5

    config = tmp_path / "arch.json"
    config.write_text(json.dumps({**voices_fixtures.TINY_F5, "__class__": "subprocess.run"}))
    with pytest.raises(TtsrigError, match=r"unknown setting __class__; allowed: dim, depth") as refused:
        f5.load(str(kit["run"] / "epoch_0001.safetensors"), vocab=None, model_config=str(config),
                vocoder=str(kit["vocoder"]), device="cpu")
    one_line(refused)
    # a good run.json is read as the trainer wrote it
    voice = f5.load(str(kit["run"] / "epoch_0001.safetensors"), vocab=None, model_config=None,
                    vocoder=str(kit["vocoder"]), device="cpu")
    assert voice.model.transformer.dim == voices_fixtures.TINY_F5["dim"]


# -- item 2: StyleTTS2's configs, PL-BERT, ASR and WavLM ----------------------------------------------

@pytest.fixture(scope="module")
def pieces(tmp_path_factory) -> Path:
    return tiny_styletts2.make(tmp_path_factory.mktemp("st2") / "pieces")


@pytest.fixture(scope="module")
def st2_run(pieces, tmp_path_factory) -> Path:
    return voices_fixtures.styletts2_checkpoint(pieces, tmp_path_factory.mktemp("st2run") / "run")


def test_a_styletts2_run_config_with_a_yaml_payload_is_refused_in_one_line(kit, st2_run, tmp_path):
    marker = tmp_path / "marker"
    config = tmp_path / "config.yml"
    config.write_text((st2_run.parent / "config.yml").read_text().replace(
        "model_params:", f"evil: {yaml_payload(marker)}\nmodel_params:", 1))
    settings = tmp_path / "default.toml"
    settings.write_text(f'config = "{config}"\n')
    out = say("default", "Hello.", "--voice-config", str(settings), "--checkpoint", str(st2_run), "--ref",
              str(kit["ref"]), "--device", "cpu", "-o", str(tmp_path / "out.wav"))
    assert_one_line_refusal(out, "the StyleTTS2 config", "is not valid YAML", "python/object/apply")
    assert not marker.exists() and not (tmp_path / "out.wav").exists()


def checkpoint_beside(st2_run: Path, folder: Path, config_text: str) -> Path:
    """The run's checkpoint copied into `folder`, with `config_text` as the config.yml beside it (what
    say-default reads when only --checkpoint is given: a checkpoint folder someone shared)."""
    folder.mkdir()
    shutil.copy(st2_run, folder / st2_run.name)
    (folder / "config.yml").write_text(config_text)
    return folder / st2_run.name


def say_default(kit, checkpoint: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    return say("default", "Hello.", "--checkpoint", str(checkpoint), "--ref", str(kit["ref"]), "--device", "cpu",
               "-o", str(tmp_path / "out.wav"))


def test_a_config_naming_a_fifo_for_a_piece_is_one_line_not_a_hang(kit, st2_run, tmp_path):
    fifo = tmp_path / "asr-config.yml"
    os.mkfifo(fifo)
    config = yaml.safe_load((st2_run.parent / "config.yml").read_text())
    config["pieces"]["asr_config"] = str(fifo)
    checkpoint = checkpoint_beside(st2_run, tmp_path / "shared", yaml.safe_dump(config))
    out = say_default(kit, checkpoint, tmp_path)  # the helper's 600 s time-out would be the hang
    assert_one_line_refusal(out, f"the ASR config {fifo} is a named pipe (FIFO), not a regular file")
    assert not (tmp_path / "out.wav").exists()


def test_a_yaml_alias_bomb_beside_a_checkpoint_is_one_line_and_takes_no_memory(kit, st2_run, tmp_path):
    bomb = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9 if i else ['lol'] * 9)}]\n" for i in range(10))
    config = (st2_run.parent / "config.yml").read_text() + bomb  # 9^10 strings once expanded
    checkpoint = checkpoint_beside(st2_run, tmp_path / "shared", config)
    out = subprocess.run(["prlimit", f"--as={12 << 30}", "--", str(ROOT / "voices" / "say-default"), "Hello.",
                          "--checkpoint", str(checkpoint), "--ref", str(kit["ref"]), "--device", "cpu", "-o",
                          str(tmp_path / "out.wav")], capture_output=True, text=True, cwd="/tmp", timeout=600,
                         env={**os.environ, "TTSRIG_PYTHON": sys.executable, "HF_HUB_OFFLINE": "1"})
    assert_one_line_refusal(out, "the StyleTTS2 config", "YAML aliases (*name) are not accepted")
    assert not (tmp_path / "out.wav").exists()


@pytest.mark.parametrize("case", ["decoder-type", "transformer-argument", "unknown-piece", "slm-model"])
def test_a_styletts2_run_config_chooses_sizes_not_what_is_built(st2_run, case):
    from trainers import styletts2_model

    config = yaml.safe_load((st2_run.parent / "config.yml").read_text())
    params = config["model_params"]
    if case == "decoder-type":
        params["decoder"]["type"] = "subprocess.run"
    elif case == "transformer-argument":
        params["diffusion"]["transformer"]["channels"] = 7  # build_model sets it; a second value is a TypeError
    elif case == "unknown-piece":
        config["pieces"]["evil"] = "/tmp/evil.pth"
    else:
        params["slm"]["model"] = ["not", "a", "path"]
    with pytest.raises(TtsrigError) as refused:
        styletts2_model.build(config)
    assert "StyleTTS2 config" in one_line(refused)


@pytest.mark.parametrize("piece", ["ASR", "PL-BERT"])
@pytest.mark.parametrize("case", ["yaml-tag", "unknown-argument", "not-a-mapping"])
def test_the_asr_and_plbert_configs_are_plain_settings_of_their_class(pieces, tmp_path, piece, case):
    from trainers import styletts2_model

    marker = tmp_path / "marker"
    layout = {"ASR": "Utils/ASR", "PL-BERT": "Utils/PLBERT"}[piece]
    source = pieces / layout / "config.yml"
    config = tmp_path / "config.yml"
    params = yaml.safe_load(source.read_text())["model_params"]
    if case == "yaml-tag":
        config.write_text(source.read_text() + f"evil: {yaml_payload(marker)}\n")
    elif case == "unknown-argument":  # PL-BERT: transformers would fetch an attention kernel by this name
        extra = {"attn_implementation": "kernels-community/evil"} if piece == "PL-BERT" else {"command": "touch"}
        config.write_text(yaml.safe_dump({"model_params": {**params, **extra}}))
    else:
        config.write_text(yaml.safe_dump({"model_params": [f"touch {marker}"]}))
    with pytest.raises(TtsrigError) as refused:
        if piece == "ASR":
            styletts2_model.load_asr(config, pieces / "Utils/ASR/epoch_00080.pth")
        else:
            styletts2_model.load_plbert(config, pieces / "Utils/PLBERT/step_1000000.t7")
    assert str(config) in one_line(refused)
    assert not marker.exists()


@pytest.fixture(scope="module")
def built(st2_run) -> None:
    """The model built as the trainer builds it, before it makes its WavLMLoss."""
    from trainers import styletts2_model

    styletts2_model.build(yaml.safe_load((st2_run.parent / "config.yml").read_text()))


def wavlm_loss(source: str):
    from styletts2.losses import WavLMLoss

    return WavLMLoss(source, torch.nn.Identity(), 24_000, 16_000)


@pytest.mark.parametrize("case", ["auto-map", "other-model", "pickled-weights"])
def test_wavlm_is_only_transformers_wavlm_with_weights_through_the_safe_loader(pieces, built, tmp_path, case):
    marker = tmp_path / "marker"
    folder = tmp_path / "wavlm"
    shutil.copytree(pieces / "wavlm-base-plus", folder)
    config = json.loads((folder / "config.json").read_text())
    if case == "auto-map":  # with trust_remote_code transformers would import modeling_evil.py
        (folder / "modeling_evil.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n")
        config["auto_map"] = {"AutoModel": "modeling_evil.EvilModel"}
        config["model_type"] = "evil"
    elif case == "other-model":
        config["model_type"] = "bert"
    else:
        (folder / "model.safetensors").unlink()
        evil_pickle(folder / "pytorch_model.bin", marker)
    (folder / "config.json").write_text(json.dumps(config))
    expected = CheckpointError if case == "pickled-weights" else TtsrigError
    with pytest.raises(expected) as refused:
        wavlm_loss(str(folder))
    if case == "pickled-weights":  # the safe loader's refusal: its sha256 and how to trust it, on several lines
        assert str(refused.value).startswith("refused to unpickle")
    else:
        assert "model_type" in one_line(refused) and "wavlm" in str(refused.value)
    assert not marker.exists()


def test_the_tiny_wavlm_still_loads_every_weight(pieces, built):
    from safetensors.torch import load_file

    loss = wavlm_loss(str(pieces / "wavlm-base-plus"))
    saved = load_file(pieces / "wavlm-base-plus" / "model.safetensors")
    state = loss.wavlm.state_dict()
    assert type(loss.wavlm).__name__ == "WavLMModel" and set(saved) <= set(state)
    assert all(torch.equal(state[k], v) for k, v in saved.items())


# -- item 8: hf:// ids ------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["hf://onlyorg", "hf://org/repo", "hf://../x", "hf://org/repo/../../x", "hf://org/re po/f"])
def test_a_bad_hf_id_is_one_line_naming_the_form(spec):
    from trainers import hub

    with pytest.raises(TtsrigError) as refused:
        hub.parse(spec)
    assert "hf://org/repo/path/to/file" in one_line(refused) and spec in str(refused.value)


def test_every_hf_id_is_parsed_by_the_one_parser(kit, tmp_path):
    """say-strong's --checkpoint, a voice config's checkpoint and trainers.f5's --pretrained."""
    out = strong(kit, tmp_path, checkpoint="hf://onlyorg")
    assert_one_line_refusal(out, "hf://org/repo/path/to/file", "only an organisation")
    settings = voices_fixtures.strong_config(tmp_path / "s.toml", kit["vocoder"], checkpoint="hf://org/repo")
    from voices import config as voice_config

    with pytest.raises(TtsrigError, match="hf://org/repo/path/to/file") as refused:
        voice_config.load("strong", str(settings))
    one_line(refused)
    (tmp_path / "m.jsonl").write_text("")
    out = subprocess.run([sys.executable, "-m", "trainers.f5", str(tmp_path / "m.jsonl"), "--out",
                          str(tmp_path / "run"), "--pretrained", "hf://../x"], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert_one_line_refusal(out, "hf://org/repo/path/to/file")


def test_an_hf_id_missing_from_the_cache_offline_says_the_form_and_the_fix(kit, tmp_path):
    out = strong(kit, tmp_path, checkpoint="hf://someone/somerepo/model.safetensors",
                 env={"HF_HOME": str(tmp_path / "empty-cache")})
    assert_one_line_refusal(out, "not in the Hugging Face cache", "hf://org/repo/path/to/file", "--checkpoint PATH")


# -- item 8: the voices' TOML files -----------------------------------------------------------------

def test_a_voice_config_with_some_settings_takes_the_rest_from_the_shipped_one(kit, tmp_path):
    from voices import config as voice_config

    partial = tmp_path / "partial.toml"
    partial.write_text(f'vocoder = "{kit["vocoder"]}"\nsteps = 4\n')
    cfg = voice_config.load("strong", str(partial))
    assert (cfg["steps"], cfg["vocoder"], cfg["cfg_strength"], cfg["speed"]) == (4, str(kit["vocoder"]), 2.0, 1.0)
    out = say("strong", "Hello there.", "--voice-config", str(partial), "--checkpoint",
              str(kit["run"] / "epoch_0001.safetensors"), "--ref", str(kit["ref"]), "--ref-text", REF_TEXT,
              "--device", "cpu", "-o", str(tmp_path / "out.wav"))
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "out.wav").is_file()


def test_unknown_voice_settings_are_named_with_the_valid_ones(tmp_path, capsys):
    from voices import config as voice_config

    typo = tmp_path / "typo.toml"
    typo.write_text("stpes = 8\nalpha = 0.5\n")
    cfg = voice_config.load("default", str(typo))
    warning = capsys.readouterr().err.strip()
    assert "\n" not in warning and "stpes" in warning and "diffusion_steps" in warning and "alpha" in warning
    assert cfg["alpha"] == 0.5 and "stpes" not in cfg and cfg["diffusion_steps"] == 5


@pytest.mark.parametrize("case", ["wrong-kind", "bool-for-number", "not-toml", "not-utf8"])
def test_a_voice_config_that_is_not_toml_or_has_a_wrong_value_is_one_line(kit, tmp_path, case):
    from voices import config as voice_config

    bad = tmp_path / "bad.toml"
    contents = {"wrong-kind": b'steps = "many"\n', "bool-for-number": b"speed = true\n",
                "not-toml": b"steps = = 4\n", "not-utf8": b'reference_text = "caf\xe9"\n'}[case]
    bad.write_bytes(contents)
    with pytest.raises(TtsrigError) as refused:
        voice_config.load("strong", str(bad))
    assert str(bad) in one_line(refused)
    if case == "wrong-kind":
        out = say("strong", "Hello.", "--voice-config", str(bad), "--ref", str(kit["ref"]), "-o",
                  str(tmp_path / "out.wav"))
        assert_one_line_refusal(out, "steps = 'many' should be a whole number")


def test_the_shipped_voice_configs_hold_every_setting_of_the_right_kind():
    from trainers.config_check import check
    from voices import config as voice_config

    for name, fields in voice_config.SETTINGS.items():
        shipped = voice_config.load(name)
        assert set(shipped) - {"_file"} == set(fields)
        check({k: v for k, v in shipped.items() if k != "_file"}, fields, name)
