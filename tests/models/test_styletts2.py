"""The StyleTTS2 fine-tune wrapper on a reduced model, tiny random pieces and synthetic speech."""
from __future__ import annotations

import gc
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
from patches.checkpoints import UntrustedCheckpoint, load_checkpoint
from tests.models import synth, tiny_styletts2
from trainers import batch_fit, mas, phonemes, styletts2_pieces
from trainers import styletts2 as st

ROOT = Path(__file__).resolve().parents[2]
SENTENCES = ["The rig speaks in a calm and even voice.", "A bath and a path along the grass.",
             "North and south the thought was caught.", "Happy city days are very pretty."]
FAST = ["max_len=80"]


@pytest.fixture(scope="module")
def pieces(tmp_path_factory) -> Path:
    return tiny_styletts2.make(tmp_path_factory.mktemp("pretrained"))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return synth.styletts2_set(tmp_path_factory.mktemp("voice"), SENTENCES, odd_clips=True)


@pytest.fixture(autouse=True)
def release_trainers():
    """The in-process trainers here hold a StyleTTS2 with its optimisers (GBs) in reference cycles: collect them
    after each test, or the session's memory grows until the torchrun test's processes do not fit."""
    yield
    gc.collect()


def train(dataset: Path, out: Path, pieces: Path | None, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-W", "ignore", "-m", "trainers.styletts2", str(dataset), "--out", str(out), "--quiet",
           "--device", "cpu", *args]
    if pieces is not None:
        cmd += ["--pretrained-dir", str(pieces)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "TTSRIG_OFFLINE": "1"})


def log_rows(run: Path) -> list[dict]:
    lines = (run / "train-log.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:]]


# -- pieces that need no training ---------------------------------------------------------------

def test_mas_equals_a_brute_force_dynamic_programme():
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(200):
        text, mel = int(rng.integers(1, 7)), int(rng.integers(1, 14))
        if mel < text:
            continue
        values = rng.standard_normal((text, mel)).astype(np.float32)
        path = mas.maximum_path(torch.from_numpy(values)[None], torch.ones(1, text, mel, dtype=torch.bool))[0]
        reference = mas.brute_force(values)
        assert (path.numpy() * values).sum() == pytest.approx((reference * values).sum(), abs=1e-4)
        assert (path.sum(0) == 1).all()  # every frame goes to exactly one token
        checked += 1
    assert checked > 100
    # batched, with each item's lengths masked
    attn = torch.rand(2, 5, 9)
    mask = mas.mask_from_lens(attn, torch.tensor([5, 3]), torch.tensor([9, 6]))
    path = mas.maximum_path(attn, mask)
    assert path[1, 3:].sum() == 0 and path[1, :, 6:].sum() == 0 and path[1].sum() == 6 and path[0].sum() == 9


def test_phoneme_pipeline_reports_what_it_cannot_map():
    [(phon, tokens)] = phonemes.encode(["The bath, calmly!"])
    assert "ˈ" in phon and "," in phon.split()  # stress marks, punctuation as its own word
    assert tokens.ids[0] == tokens.ids[-1] == phonemes.PAD and not tokens.unknown
    odd = phonemes.tokenize("ðə §x§")
    assert odd.unknown == ["§"] and len(odd.ids) == len("ðə x") + 2
    with pytest.raises(TtsrigError, match="phonemises to nothing"):
        phonemes.encode(["♪"])


def test_config_fits_a_12_gb_card_and_every_value_is_overridable(pieces):
    found = styletts2_pieces.find(pieces)
    config = styletts2_pieces.make_config(found)
    assert (config["batch_size"], config["max_len"]) == (2, 100)
    assert config["loss_params"]["joint_epoch"] > config["epochs"]  # SLM adversarial off by default
    assert config["model_params"]["slm"]["model"] == str(pieces / "wavlm-base-plus")
    changed = styletts2_pieces.make_config(found, ["batch_size=4", "loss_params.lambda_slm=0",
                                                   "model_params.dropout=0.1"], slm_adversarial=True)
    assert (changed["batch_size"], changed["loss_params"]["lambda_slm"], changed["model_params"]["dropout"]) == (4, 0, 0.1)
    assert changed["loss_params"]["joint_epoch"] == 0
    for bad, message in (("nope=1", "no such setting"), ("batch_size", "section.key=value"),
                         ("max_len=40", "below 80 frames"), ("epochs.x=1", "not a section")):
        with pytest.raises(TtsrigError, match=message):
            styletts2_pieces.make_config(found, [bad])


def test_missing_pieces_offline_say_what_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv("TTSRIG_OFFLINE", "1")
    with pytest.raises(TtsrigError) as err:
        styletts2_pieces.find(tmp_path, need_wavlm=False)
    message = str(err.value)
    for layout, _url in styletts2_pieces.PIECES.values():
        assert layout in message
    assert "--pretrained-dir" in message


def test_an_untrusted_legacy_pretrain_is_refused(pieces, dataset, tmp_path):
    out = train(dataset, tmp_path / "run", pieces, "--set", *FAST)
    assert out.returncode == 2
    assert "refused to unpickle" in out.stderr and "epochs_2nd_00020.pth" in out.stderr
    assert "python -m patches trust add" in out.stderr and "Traceback" not in out.stderr
    assert not list((tmp_path / "run").glob("epoch_*"))


# -- training ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def run_two_epochs(pieces, dataset, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    run = tmp_path_factory.mktemp("run") / "two"
    out = train(dataset, run, pieces, "--trust-checkpoint", "--epochs", "2", "--set", *FAST)
    return run, out


def test_training_steps_have_every_enabled_loss_finite(run_two_epochs):
    run, out = run_two_epochs
    assert out.returncode == 0, out.stderr[-3000:]
    rows = log_rows(run)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    enabled = ("mel", "gen", "slm", "mono", "s2s", "F0", "norm", "dur", "ce", "sty", "diff", "disc")
    for row in rows:
        for term in enabled:
            value = float(row[term])
            assert np.isfinite(value) and value != 0.0, (term, value)
    assert (run / "epoch_2nd_00001.pth").is_file() and (run / "epoch_2nd_00002.state.safetensors").is_file()


def test_unusable_clips_are_skipped_and_counted(run_two_epochs, dataset, pieces):
    data = st.Data(dataset, log=lambda m: None)
    assert len(data.items) == len(SENTENCES)
    assert [len(v) for v in data.skipped.values()] == [1, 1]
    assert any("phonemises to nothing" in k for k in data.skipped) and any("crop" in k for k in data.skipped)


def test_the_checkpoint_reloads_and_synthesises(run_two_epochs, dataset):
    from trainers import styletts2_model
    from voices import styletts2 as engine

    run, _ = run_two_epochs
    saved = torch.load(run / "epoch_2nd_00002.pth", weights_only=True)  # torch's safe default loads it
    assert {"decoder", "text_encoder", "predictor", "style_encoder", "diffusion", "bert"} <= set(saved["net"])
    voice = engine.load(run / "epoch_2nd_00002.pth", run / "config.yml")
    for key in ("decoder", "predictor"):  # what was trained is what was loaded
        for name, value in voice.model[key].state_dict().items():
            assert torch.equal(value, styletts2_model.strip_prefix(saved["net"][key])[name])
    wave, rate = sf.read(dataset.parent / "wavs" / "c0.wav", dtype="float32")
    ref = engine.reference_style(voice, wave)
    [(_, tokens)] = phonemes.encode(["A new sentence to say."])
    torch.manual_seed(0)
    audio = engine.synthesize(voice, tokens.ids, ref, diffusion_steps=3)
    assert audio.dtype == np.float32 and np.isfinite(audio).all() and len(audio) > 2400


def test_resume_continues_where_the_run_stopped(run_two_epochs, pieces, dataset, tmp_path):
    straight, _ = run_two_epochs
    run = tmp_path / "resumed"
    first = train(dataset, run, pieces, "--trust-checkpoint", "--epochs", "1", "--set", *FAST)
    assert first.returncode == 0, first.stderr[-3000:]
    again = train(dataset, run, pieces, "--trust-checkpoint", "--epochs", "1")
    assert again.returncode == 2 and "already holds a run" in again.stderr
    written = torch.load(run / "epoch_2nd_00001.pth", weights_only=True)
    (run / "epoch_2nd_00001.pth").unlink()  # as a run stopped between an epoch's two writes by an older ttsrig
    resumed = train(dataset, run, None, "--resume", "--epochs", "2")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "epoch_2nd_00001.pth was missing beside epoch_2nd_00001.state.safetensors" in resumed.stderr
    restored = torch.load(run / "epoch_2nd_00001.pth", weights_only=True)
    assert restored["iters"] == written["iters"] and restored["net"].keys() == written["net"].keys()
    assert all(torch.equal(v, restored["net"][k][n]) for k in written["net"] for n, v in written["net"][k].items())
    assert [r["epoch"] for r in log_rows(run)] == ["1", "2"]
    a = torch.load(straight / "epoch_2nd_00002.pth", weights_only=True)
    b = torch.load(run / "epoch_2nd_00002.pth", weights_only=True)
    assert a["iters"] == b["iters"]
    for key in a["net"]:
        for name, value in a["net"][key].items():
            assert torch.equal(value, b["net"][key][name]), (key, name)


def test_batch_of_one_with_losses_switched_off(pieces, dataset, tmp_path):
    run = tmp_path / "one"
    out = train(dataset, run, pieces, "--trust-checkpoint", "--epochs", "1", "--wavlm", str(tmp_path / "absent"),
                "--set", *FAST, "batch_size=1", "loss_params.lambda_gen=0", "loss_params.lambda_slm=0",
                "loss_params.lambda_diff=0", "loss_params.lambda_sty=0")
    assert out.returncode == 0, out.stderr[-3000:]
    [row] = log_rows(run)
    assert row["iters"] == str(len(SENTENCES))  # one clip per step
    for off in ("gen", "slm", "disc", "diff", "sty"):
        assert float(row[off]) == 0.0
    for on in ("mel", "mono", "s2s", "F0", "norm", "dur", "ce"):
        assert np.isfinite(float(row[on])) and float(row[on]) != 0.0


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(run_two_epochs, dataset, tmp_path):
    import shutil

    import yaml

    straight, _ = run_two_epochs
    run = tmp_path / "nan"
    shutil.copytree(straight, run)
    good = (run / "epoch_2nd_00002.pth").read_bytes()
    config = yaml.safe_load((run / "config.yml").read_text())
    config["epochs"] = 3
    trainer = st.Trainer(config, dataset, run, progress=False, log=lambda m: None)
    trainer.resume()
    trainer.stft_loss.forward = lambda x, y: torch.tensor(float("nan"))
    with pytest.raises(TtsrigError, match="the mel loss became nan at epoch 3.*epoch_2nd_00002.state.safetensors"):
        trainer.run()
    assert (run / "epoch_2nd_00002.pth").read_bytes() == good and not (run / "epoch_2nd_00003.pth").exists()

    def out_of_memory(batch):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    trainer.step = out_of_memory
    with pytest.raises(TtsrigError, match="out of memory.*one clip per pass: lower --set max_len \\(now 80\\)"):
        trainer.run()
    assert (run / "epoch_2nd_00002.pth").read_bytes() == good


def trainer_from(run_two_epochs, dataset, out: Path, notes: list | None = None, **changes) -> st.Trainer:
    """A Trainer with the two-epoch run's config (its pieces, max_len 80), `changes` applied at the top level."""
    import yaml

    straight, _ = run_two_epochs
    config = {**yaml.safe_load((straight / "config.yml").read_text()), **changes}
    out.mkdir(exist_ok=True)
    log = notes.append if notes is not None else (lambda message: None)
    return st.Trainer(config, dataset, out, trust=True, progress=False, log=log)


def test_a_batch_smaller_than_the_processes_is_refused_before_anything_loads(tmp_path):
    from trainers import distributed

    with pytest.raises(TtsrigError, match=r"batch_size 2 is one batch shared by the 3 processes, each of which "
                                          r"needs a clip of it: --set batch_size=3 or more"):
        st.Trainer({"batch_size": 2}, tmp_path / "no-manifest.jsonl", tmp_path / "run", world=distributed.World(0, 3))


def test_running_out_of_memory_halves_the_pass_and_keeps_the_batch(run_two_epochs, dataset, tmp_path, monkeypatch):
    """A batch of two clips fails as CUDA would (simulated: no GPU here): the same batch is tried again in passes
    of one clip, whose gradients make one step (the optimisers still see both clips); 1 clip per pass is
    recorded in the state, and a trainer resumed from it (the failure gone) keeps it."""
    notes: list[str] = []
    trainer = trainer_from(run_two_epochs, dataset, tmp_path / "run", notes, epochs=1)
    longest = max(trainer.data.load(i)[1].shape[-1] for i in range(len(trainer.data.items)))
    monkeypatch.setenv(batch_fit.SIMULATE_VARIABLE, str(longest))  # any one clip passes, any two padded fail
    trainer.set_modes()
    pair = trainer.data.batches(2, trainer.seed, 0)[0]
    losses = trainer.fitted_step(pair)
    assert losses is not None and all(np.isfinite(v) for v in losses.values())
    assert trainer.iters == 1 and trainer.batch_size == 2  # one step over the pair
    assert trainer.pass_clips == 1 and trainer.pass_changes == [{"iters": 0, "pass_clips": 1}]
    assert any("CUDA ran out of memory at step 1: now 1 clips per pass (the batch stays 2 clips" in n for n in notes)
    for key in ("decoder", "msd"):  # one optimiser step each, not one per pass
        assert {int(state["step"]) for state in trainer.optimizers[key].state.values()} == {1}
    trainer.save("epoch_2nd_00001")
    monkeypatch.delenv(batch_fit.SIMULATE_VARIABLE)
    resumed = trainer_from(run_two_epochs, dataset, tmp_path / "run", epochs=2)
    resumed.resume()
    assert resumed.pass_clips == 1 and resumed.pass_changes == trainer.pass_changes


def test_a_state_changed_by_hand_is_one_line_on_resume(run_two_epochs, dataset, tmp_path):
    """One case here (a trainer takes 15 s to build); test_f5_trainer.py tries more on the same guard."""
    import shutil

    from patches.checkpoints import load_checkpoint, save_safetensors

    straight, _ = run_two_epochs
    run = tmp_path / "run"
    shutil.copytree(straight, run)
    path = run / "epoch_2nd_00002.state.safetensors"
    state = load_checkpoint(path)
    state["passes"] = {"pass_clips": -3, "changes": []}
    save_safetensors(state, path)
    trainer = trainer_from(run_two_epochs, dataset, run, epochs=3)
    with pytest.raises(TtsrigError) as refused:
        trainer.resume()
    message = str(refused.value)
    assert message.startswith(f"cannot resume from {path}: it is not a state this trainer wrote")
    assert "passes.pass_clips is -3, not a whole number of 0 or more" in message and f"Move it out of {run}" in message and "\n" not in message


def test_on_a_gpu_the_passes_come_from_its_free_memory(run_two_epochs, dataset, tmp_path, monkeypatch):
    """The trainer hands batch_fit its own parameters (WavLM counted as frozen), precision, batch and max_len; a
    card's answers are stood in (no GPU here). --pass-clips wins."""
    trainer = trainer_from(run_two_epochs, dataset, tmp_path / "run", epochs=1)
    params = sum(p.numel() for key in trainer.model for p in trainer.model[key].parameters())
    frozen = sum(p.numel() for p in trainer.wl.wavlm.parameters())
    model = batch_fit.STYLETTS2_MEMORY
    fixed = params * model.bytes_per_param + frozen * batch_fit.FROZEN_BYTES_PER_PARAM
    one_clip = int(trainer.config["max_len"]) * model.bytes_per_frame_unit["fp32"]
    # free memory for the fixed part and one and a half clips, after the headroom: one clip per pass
    free = int((fixed + 1.5 * one_clip + batch_fit.HEADROOM_BYTES) / batch_fit.HEADROOM_SHARE)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (free, 2 * free))
    monkeypatch.setattr(st.precision, "card", lambda *a: ((6, 1), "Tesla P40"))
    trainer.device = "cuda"
    fit = trainer.fit_passes()
    assert fit.pass_clips == 1 and "Tesla P40" in fit.why and "fp32" in fit.why
    trainer.configured_pass_clips = 2
    assert trainer.fit_passes().pass_clips == 2


def test_a_discriminator_rehearsal_is_replayed_exactly_and_changes_nothing_else(run_two_epochs, dataset, tmp_path):
    """With several passes the discriminators' forward runs without gradients and the generator's forward of the
    same pass replays it from the same random state: the same crops and the same audio (up to rounding), while the
    batch-norm statistics and the recorded style deviations change once, not twice."""
    from trainers import run_state

    trainer = trainer_from(run_two_epochs, dataset, tmp_path / "run", epochs=1)
    trainer.set_modes()
    part = trainer.data.collate(trainer.data.batches(2, trainer.seed, 0)[0], trainer.rng)
    crop = trainer.crop_frames(part["mel_input_length"].tolist())
    norms = {name: buffer.clone() for key in trainer.model for name, buffer in trainer.model[key].named_buffers()
             if "running_" in name}
    assert norms, "the text aligner's batch norm: what the rehearsal must put back"
    trainer.running_std = [0.5]
    state = run_state.rng_state(trainer.rng)
    with trainer.rehearsal():
        rehearsed = trainer._forward(part, True, crop)
    assert not rehearsed.decoded.y_rec.requires_grad
    assert trainer.running_std == [0.5]
    for key in trainer.model:
        for name, buffer in trainer.model[key].named_buffers():
            if name in norms:
                assert torch.equal(buffer, norms[name]), (key, name)
    run_state.set_rng_state(state, trainer.rng)
    replayed = trainer._forward(part, True, crop)
    assert replayed.decoded.y_rec.requires_grad
    assert torch.equal(replayed.crops.wav, rehearsed.crops.wav) and torch.equal(replayed.crops.gt, rehearsed.crops.gt)
    # the same audio up to rounding: without gradients torch may pick other kernels (measured: 2.5e-6 apart)
    assert torch.allclose(replayed.decoded.y_rec.detach(), rehearsed.decoded.y_rec, rtol=0, atol=1e-4)
    assert len(trainer.running_std) == 2


def test_pass_clips_train_uneven_passes_into_one_step_per_batch(pieces, dataset, tmp_path):
    """--pass-clips 2 on batches of 3 (passes of 2 and 1 clips, weighted 2/3 and 1/3): one step per batch, every
    enabled loss finite, and the setting is refused under torchrun, where each process takes its share."""
    run = tmp_path / "passes"
    out = train(dataset, run, pieces, "--trust-checkpoint", "--epochs", "1", "--pass-clips", "2",
                "--set", *FAST, "batch_size=3")
    assert out.returncode == 0, out.stderr[-3000:]
    [row] = log_rows(run)
    batches = -(-len(SENTENCES) // 3)
    assert int(row["iters"]) + int(row["skipped"]) == batches
    for term in ("mel", "gen", "mono", "s2s", "dur", "ce", "disc"):
        assert np.isfinite(float(row[term])) and float(row[term]) != 0.0, term
    state = load_checkpoint(next(run.glob("*.state.safetensors")))
    assert state["passes"] == {"pass_clips": 2, "changes": []}
    from trainers import distributed

    with pytest.raises(TtsrigError, match="--pass-clips is for one process"):
        st.Trainer({"batch_size": 4}, tmp_path / "no-manifest.jsonl", tmp_path / "run2", world=distributed.World(0, 2),
                   pass_clips=1)


def test_a_loss_scaler_takes_the_same_steps_slm_adversarial_included(run_two_epochs, dataset, tmp_path):
    """fp16's path on the CPU: one GradScaler shared by the discriminator, generator and SLM adversarial
    updates. In float32 a power-of-two scale is exact, so two steps must equal two without it, bit for bit:
    the scaling, the unscaling before the SLM step's gradient clipping, and the steps are all in their places."""
    import yaml

    straight, _ = run_two_epochs
    loss_params = yaml.safe_load((straight / "config.yml").read_text())["loss_params"]
    trained = {}
    for name in ("plain", "scaled"):
        # the recipe's SLM adversarial training from the first step; a fresh trainer re-seeds every generator
        trainer = trainer_from(run_two_epochs, dataset, tmp_path / name, epochs=1,
                               loss_params={**loss_params, "joint_epoch": 0})
        assert trainer.slmadv is not None
        if name == "scaled":
            trainer.scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 12)
        trainer.set_modes()
        for indices in trainer.data.batches(2, trainer.seed, 0)[:2]:
            trainer.step([trainer.data.collate(indices, trainer.rng)])
        if name == "scaled":  # an update for the discriminators, the generator and each SLM adversarial update
            assert trainer.scaler.state_dict()["_growth_tracker"] >= 2 * trainer.iters > 0
        trained[name] = {key: {n: v.clone() for n, v in trainer.model[key].state_dict().items()}
                         for key in trainer.model}
    for key, weights in trained["plain"].items():
        for name, value in weights.items():
            assert torch.equal(value, trained["scaled"][key][name]), (key, name)


def test_the_package_inference_class_loads_the_checkpoint(run_two_epochs, monkeypatch):
    """styletts2.tts.StyleTTS2.load_model, the package's own loader, reads a checkpoint of this trainer.
    Its module needs langchain and gruut and downloads nltk data at import, none of which is in the locks:
    those imports are stubbed, and its URLs point at the local pieces (it re-downloads the pitch model
    whatever the config says, and fetches PL-BERT by URL)."""
    import types

    import nltk
    import yaml

    run, _ = run_two_epochs
    config = yaml.safe_load((run / "config.yml").read_text())
    splitter = types.ModuleType("langchain.text_splitter")
    splitter.RecursiveCharacterTextSplitter = object
    monkeypatch.setitem(sys.modules, "langchain", types.ModuleType("langchain"))
    monkeypatch.setitem(sys.modules, "langchain.text_splitter", splitter)
    gruut = types.ModuleType("gruut")
    gruut.sentences = lambda *a, **k: []
    monkeypatch.setitem(sys.modules, "gruut", gruut)
    monkeypatch.setattr(nltk, "download", lambda *a, **k: True)
    from styletts2 import tts
    from trainers import styletts2_model

    styletts2_model.install_cpu_fixes()
    local = {tts.F0_CHECKPOINT_URL: config["F0_path"], tts.BERT_CONFIG_URL: config["pieces"]["plbert_config"],
             tts.BERT_CHECKPOINT_URL: config["pieces"]["plbert"]}
    monkeypatch.setattr(tts, "cached_path", lambda url: local[url])
    engine = tts.StyleTTS2.__new__(tts.StyleTTS2)
    engine.device = "cpu"
    model = engine.load_model(model_path=str(run / "epoch_2nd_00002.pth"), config_path=str(run / "config.yml"))
    saved = torch.load(run / "epoch_2nd_00002.pth", weights_only=True)["net"]
    for key in ("decoder", "text_encoder", "predictor", "bert"):
        for name, value in model[key].state_dict().items():
            assert torch.equal(value, saved[key][name]), (key, name)


# -- paths of the wrong kind: one line, exit 2, nothing written (refused before any model is built) --

def one_line_exit_2(code: int, capsys) -> str:
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_an_out_that_is_a_file_is_one_line(tmp_path, capsys):
    file = tmp_path / "notes.txt"
    file.write_text("mine")
    err = one_line_exit_2(st.main([str(tmp_path / "m.jsonl"), "--out", str(file), "--device", "cpu"]), capsys)
    assert f"--out {file} is a file, not a folder" in err and file.read_text() == "mine"


@pytest.mark.parametrize("case, content, expected", [
    ("not YAML", b"model_params: [\n", "is not valid YAML"),
    ("a list", b"- 1\n- 2\n", "is list, not a mapping"),
    ("not UTF-8", "epochs: 3 # caf\u00e9\n".encode("latin-1"), "is not UTF-8 text"),
    ("empty", b"", "is empty"),
    ("no sections", b"epochs: 3\n", "has no model_params or loss_params section"),
    ("a folder", None, "is a folder, not a file"),
])
def test_resume_with_a_broken_config_yml_names_it(tmp_path, capsys, case, content, expected):
    run = tmp_path / "run"
    run.mkdir()
    config = run / "config.yml"
    if content is None:
        config.mkdir()
    else:
        config.write_bytes(content)
    err = one_line_exit_2(st.main([str(tmp_path / "m.jsonl"), "--out", str(run), "--resume", "--device", "cpu"]),
                          capsys)
    assert f"the run's config {config}" in err and expected in err and "another --out" in err
    assert sorted(p.name for p in run.iterdir()) == ["config.yml"]
    if content is not None:
        assert config.read_bytes() == content


@pytest.mark.parametrize("remove", ["loss_params.lambda_mel", "loss_params.joint_epoch", "slmadv_params",
                                    "model_params.style_dim", "model_params.diffusion.dist"])
def test_resume_with_a_config_lacking_a_deeper_setting_is_one_line(pieces, dataset, tmp_path, capsys, remove):
    """A hand-edited config.yml without a setting the trainer or the model reads stops before training, in one
    line naming what is missing, instead of a KeyError or AttributeError from deep inside."""
    run = tmp_path / "run"
    run.mkdir()
    config = styletts2_pieces.make_config(styletts2_pieces.find(pieces))
    *parents, last = remove.split(".")
    node = config
    for key in parents:
        node = node[key]
    del node[last]
    styletts2_pieces.save_config(config, run / "config.yml")
    before = (run / "config.yml").read_bytes()
    err = one_line_exit_2(st.main([str(dataset), "--out", str(run), "--resume", "--device", "cpu", "--quiet"]),
                          capsys)
    if remove.startswith("model_params"):
        assert "model_params lacks or mistypes a setting" in err and last in err
    else:
        assert f"the config lacks {remove}" in err and "restore the config.yml" in err
    assert (run / "config.yml").read_bytes() == before


@pytest.mark.parametrize("setting, expected", [("epochs", "write it as section.key=value"),
                                               ("epochs=[1", "the value is not valid YAML")])
def test_resume_with_a_malformed_set_is_one_line(pieces, tmp_path, capsys, setting, expected):
    run = tmp_path / "run"
    run.mkdir()
    config = styletts2_pieces.make_config(styletts2_pieces.find(pieces))
    styletts2_pieces.save_config(config, run / "config.yml")
    before = (run / "config.yml").read_bytes()
    err = one_line_exit_2(st.main([str(tmp_path / "m.jsonl"), "--out", str(run), "--resume", "--device", "cpu",
                                   "--set", setting]), capsys)
    assert expected in err and (run / "config.yml").read_bytes() == before
