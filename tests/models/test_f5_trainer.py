"""The minimal F5-TTS trainer with a tiny DiT on synthetic speech the tests make."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from envcheck import run_lock
from envcheck.errors import TtsrigError
from patches import f5_core
from tests.models import synth
from trainers import f5, f5_model, prepare
from trainers.f5 import Config, Trainer

ROOT = Path(__file__).resolve().parents[2]
TINY = {"dim": 64, "depth": 2, "heads": 2, "dim_head": 32, "ff_mult": 2, "text_dim": 32, "conv_layers": 1,
        "text_mask_padding": True}
LINES = ["the rig speaks in a calm and even voice", "a bath and a path along the grass",
         "north and south the thought was caught", "happy city days are very pretty",
         "far away the car stood near the star", "a good foot and a good book"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("voice")
    synth.transcribed(root / "in", LINES)
    summary = prepare.prepare(root / "in", root / "set", prepare.Settings(mels=("f5",)), None, "cpu",
                              progress=False)
    assert summary["clips"] == len(LINES), summary["rejected"]
    return root / "set" / "manifest.jsonl"


def config(dataset: Path, out: Path, **changes) -> Config:
    base = Config(manifest=str(dataset), out=str(out), pretrained=None, model_config=dict(TINY), epochs=2,
                  lr=2e-3, warmup_steps=2, frames_per_batch=400, max_samples=4, num_workers=0, device="cpu")
    return replace(base, **changes)


def trainer(cfg: Config) -> Trainer:
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    return Trainer(cfg, progress=False)


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in f5_model.inference_state(model).items()}


def test_loss_falls_when_overfitting_a_fixed_batch(dataset, tmp_path):
    t = trainer(config(dataset, tmp_path / "run", lr=3e-3))
    mel, text, lens = f5.collate([t.data[i] for i in range(3)])
    losses = [t.train_step(mel, text, lens, total_steps=200) for _ in range(80)]
    first, last = sum(losses[:8]) / 8, sum(losses[-8:]) / 8
    assert last < 0.6 * first, (first, last)


def test_two_epochs_equal_one_epoch_resume_one_epoch(dataset, tmp_path):
    straight = trainer(config(dataset, tmp_path / "a"))
    straight.run()
    first = trainer(config(dataset, tmp_path / "b", epochs=1))
    first.run()
    resumed = trainer(config(dataset, tmp_path / "b"))
    resumed.resume()
    assert resumed.epoch == 1 and resumed.step == first.step
    resumed.run()
    assert resumed.step == straight.step and resumed.epoch == 2
    a, b = weights(straight.model), weights(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    sa, sb = straight.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)
    wa, wb = load_file(tmp_path / "a/epoch_0002.safetensors"), load_file(tmp_path / "b/epoch_0002.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_per_epoch_checkpoints_log_and_pruning(dataset, tmp_path):
    out = tmp_path / "run"
    t = trainer(config(dataset, out, epochs=4, keep=2))
    history = t.run()
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert sorted(p.name for p in out.glob("epoch_*.safetensors") if ".state." not in p.name) == [
        f"epoch_{i:04d}.safetensors" for i in range(1, 5)]
    assert sorted(p.name for p in out.glob("*.state.safetensors")) == ["epoch_0003.state.safetensors",
                                                                      "epoch_0004.state.safetensors"]
    log = (out / "train-log.tsv").read_text().splitlines()
    assert log[0].startswith("epoch\tstep\tmean_loss") and len(log) == 5
    assert json.loads((out / "run.json").read_text())["num_workers"] == 0
    assert not list(out.glob(".*tmp"))  # atomic writes leave nothing behind
    # constant LR after warmup by default; --decay lowers it
    assert history[-1]["lr"] == pytest.approx(2e-3)
    assert f5.lr_at(1000, replace(t.cfg, decay=True), 1000) == pytest.approx(2e-3 * 0.1)


def test_the_inference_checkpoint_carries_its_architecture(dataset, tmp_path):
    t = trainer(config(dataset, tmp_path / "run", epochs=1))
    t.run()
    assert t.arch != f5.default_arch()
    assert f5_model.recorded_arch(str(tmp_path / "run/epoch_0001.safetensors")) == (t.arch, None)


def published(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The layout of F5TTS_v1_Base/model_1250000.safetensors: EMA-only weights, step, initted, old mel keys."""
    ckpt = {f"ema_model.{k}": v.clone() for k, v in f5_model.inference_state(model).items()}
    ckpt.update({"step": torch.tensor(1_250_000), "initted": torch.tensor(True),
                 "ema_model.mel_spec.mel_stft.mel_scale.fb": torch.zeros(513, 100),
                 "ema_model.mel_spec.mel_stft.spectrogram.window": torch.ones(1024)})
    return ckpt


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_the_published_format_loads_every_weight(tmp_path, suffix):
    torch.manual_seed(1)
    source, _ = f5.build_model(TINY, f5.default_vocab())
    with torch.no_grad():  # like a trained model: no weight left at any initial value (zeros, ones)
        for param in source.parameters():
            param.add_(torch.randn_like(param))
    path = tmp_path / f"model_1250000{suffix}"
    if suffix == ".pt":
        torch.save({"ema_model_state_dict": published(source)}, path)
    else:
        save_file(published(source), path)
    torch.manual_seed(2)
    fresh, _ = f5.build_model(TINY, f5.default_vocab())
    before = weights(fresh)
    assert f5.load_pretrained(fresh, str(path)) == 1_250_000
    after, want = weights(fresh), weights(source)
    assert set(after) == set(want)
    assert all(torch.equal(after[k], want[k]) for k in want)  # every weight arrived...
    params = [k for k, _ in fresh.named_parameters()]
    assert len(params) > 40 and not any(torch.equal(before[k], after[k]) for k in params)  # none left at init


def test_another_architecture_is_refused(tmp_path):
    torch.manual_seed(1)
    other, _ = f5.build_model({**TINY, "dim": 96}, f5.default_vocab())
    save_file(published(other), tmp_path / "other.safetensors")
    model, _ = f5.build_model(TINY, f5.default_vocab())
    with pytest.raises(TtsrigError, match="another architecture.*shapes differ"):
        f5.load_pretrained(model, str(tmp_path / "other.safetensors"))
    deeper, _ = f5.build_model({**TINY, "depth": 3}, f5.default_vocab())
    save_file(published(deeper), tmp_path / "deeper.safetensors")
    with pytest.raises(TtsrigError, match="1?[0-9]+ unexpected"):
        f5.load_pretrained(model, str(tmp_path / "deeper.safetensors"))


@pytest.mark.parametrize("ema", [False, True])
def test_checkpoints_load_in_upstream_inference(dataset, tmp_path, ema):
    t = trainer(config(dataset, tmp_path / "run", epochs=1, ema=ema))
    t.run()
    f5_core.install()
    from f5_tts.infer.utils_infer import load_checkpoint as upstream_load

    fresh, _ = f5.build_model(TINY, f5.default_vocab())
    upstream_load(fresh, str(tmp_path / "run/epoch_0001.safetensors"), "cpu", dtype=torch.float32, use_ema=True)
    trained = weights(t.ema.ema_model if ema else t.model)
    loaded = weights(fresh)
    assert all(torch.equal(loaded[k], trained[k]) for k in trained)
    # and this trainer reads its own output as a pretrain
    again, _ = f5.build_model(TINY, f5.default_vocab())
    assert f5.load_pretrained(again, str(tmp_path / "run/epoch_0001.safetensors")) == t.step


BLOCKED = "import sys\nfor name in ('datasets', 'accelerate', 'wandb', 'pandas', 'pyarrow'):\n    sys.modules[name] = None\n"


def run_cli(*args: str, prelude: str = "", **popen) -> subprocess.CompletedProcess:
    code = prelude + "import sys\nfrom trainers.f5 import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, **popen)


def cli_args(dataset: Path, out: Path, tiny_json: Path, *extra: str) -> list[str]:
    return [str(dataset), "--out", str(out), "--pretrained", "none", "--model-config", str(tiny_json),
            "--frames-per-batch", "400", "--num-workers", "0", "--quiet", "--lr", "1e-3", *extra]


@pytest.fixture
def tiny_json(tmp_path) -> Path:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY))
    return path


def test_trains_with_datasets_accelerate_wandb_and_pandas_unimportable(dataset, tmp_path, tiny_json):
    out = run_cli(*cli_args(dataset, tmp_path / "run", tiny_json, "--epochs", "1"), prelude=BLOCKED)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "run/epoch_0001.safetensors").is_file()


def test_a_second_run_into_a_folder_in_training_is_refused_new_or_resumed(dataset, tmp_path, tiny_json):
    """Before the first checkpoint a folder holds no run yet, so only the lock tells a second start (or a
    --resume while the first still trains) that the checkpoints there are being written."""
    out_dir = tmp_path / "run"
    out_dir.mkdir()
    with run_lock.held("train", out_dir, str):  # what a training run holds
        for extra in ((), ("--resume",)):
            second = run_cli(*cli_args(dataset, out_dir, tiny_json, "--epochs", "1", *extra))
            assert second.returncode == 2, second.stderr[-2000:]
            assert f"another training run (process {os.getpid()}) is writing into --out {out_dir} now" in second.stderr
    assert out_dir.is_dir() and not any(out_dir.iterdir())  # nothing written, and the folder (not its) is kept


def test_ctrl_c_saves_and_resume_continues(dataset, tmp_path, tiny_json):
    out_dir = tmp_path / "run"
    args = cli_args(dataset, out_dir, tiny_json, "--epochs", "100000")
    code = "import sys\nfrom trainers.f5 import main\nsys.exit(main(sys.argv[1:]))\n"
    proc = subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out_dir / "epoch_0002.safetensors").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert "interrupted: saved" in err and (out_dir / "interrupted.state.safetensors").is_file()
    again = run_cli(*cli_args(dataset, out_dir, tiny_json, "--epochs", "1"))
    assert again.returncode == 2 and "already holds a run" in again.stderr
    resumed = run_cli(*cli_args(dataset, out_dir, tiny_json, "--epochs", "3", "--resume"))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    log = (out_dir / "train-log.tsv").read_text().splitlines()
    assert log[-1].startswith("3\t") or int(log[-1].split("\t")[0]) >= 3


def test_a_run_killed_between_an_epochs_two_writes_resumes_to_the_same_weights(dataset, tmp_path, tiny_json):
    """The weights are written first and the resume state, the pair's record, second: killed in between,
    --resume redoes that epoch from the state before and writes the same weights."""
    straight = run_cli(*cli_args(dataset, tmp_path / "straight", tiny_json, "--epochs", "2"))
    assert straight.returncode == 0, straight.stderr[-2000:]
    out = tmp_path / "crashed"
    assert run_cli(*cli_args(dataset, out, tiny_json, "--epochs", "1")).returncode == 0
    killed = run_cli(*cli_args(dataset, out, tiny_json, "--epochs", "2", "--resume"),
                     env={**os.environ, "TTSRIG_CRASH_AT": "train:between-weights-and-state"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert (out / "epoch_0002.safetensors").is_file() and not (out / "epoch_0002.state.safetensors").exists()
    resumed = run_cli(*cli_args(dataset, out, tiny_json, "--epochs", "2", "--resume"))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = load_file(tmp_path / "straight/epoch_0002.safetensors"), load_file(out / "epoch_0002.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (out / "epoch_0002.state.safetensors").is_file()


def test_a_state_whose_weights_are_missing_gets_them_back_on_resume(dataset, tmp_path, tiny_json):
    out = tmp_path / "run"
    assert run_cli(*cli_args(dataset, out, tiny_json, "--epochs", "1")).returncode == 0
    written = (out / "epoch_0001.safetensors").read_bytes()
    (out / "epoch_0001.safetensors").unlink()  # as a run of an older ttsrig killed between its writes left it
    resumed = run_cli(*cli_args(dataset, out, tiny_json, "--epochs", "1", "--resume"))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "epoch_0001.safetensors was missing beside epoch_0001.state.safetensors" in resumed.stderr
    assert (out / "epoch_0001.safetensors").read_bytes() == written


@pytest.mark.parametrize("change, named", [
    (lambda state: state["passes"].update(pass_frames="lots"), "passes.pass_frames is 'lots'"),
    (lambda state: state["passes"].update(pass_frames=float("inf")), "passes.pass_frames is inf"),
    (lambda state: state.update(history=7), "TypeError"),
    (lambda state: state.pop("batch_in_epoch"), "KeyError: 'batch_in_epoch'"),
])
def test_a_state_changed_by_hand_is_one_line_on_resume(dataset, tmp_path, change, named):
    from patches.checkpoints import load_checkpoint, save_safetensors

    cfg = config(dataset, tmp_path / "run", epochs=1)
    trainer(cfg).run()
    [path] = (tmp_path / "run").glob("*.state.safetensors")
    state = load_checkpoint(path)
    change(state)
    save_safetensors(state, path)
    with pytest.raises(TtsrigError) as refused:
        trainer(replace(cfg, epochs=2)).resume()
    message = str(refused.value)
    assert message.startswith(f"cannot resume from {path}: it is not a state this trainer wrote") and named in message
    assert f"Move it out of {tmp_path / 'run'}" in message and "\n" not in message


def edited_manifest(dataset: Path, tmp_path: Path, change) -> Path:
    lines = [json.loads(line) for line in dataset.read_text().splitlines()]
    for line in lines:
        for key in ("audio", "mel_f5"):
            line[key] = str(dataset.parent / line[key])
    change(lines)
    path = tmp_path / "manifest.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


def test_bad_data_fails_clearly(dataset, tmp_path):
    def run(change) -> str:
        path = edited_manifest(dataset, tmp_path, change)
        with pytest.raises(TtsrigError) as err:
            trainer(config(path, tmp_path / "run")).run()
        return str(err.value)

    assert "outside the vocab" in run(lambda ls: ls[0].update(text="naïve ☃ text")) and "☃" in run(
        lambda ls: ls[0].update(text="snow ☃"))
    assert "empty text" in run(lambda ls: ls[1].update(text="  "))
    save_file({"mel": torch.zeros(80, 50)}, tmp_path / "80.safetensors")
    assert "needs [100, frames]" in run(lambda ls: [x.update(mel_f5=str(tmp_path / "80.safetensors")) for x in ls])
    assert "missing or corrupt" in run(lambda ls: [x.update(mel_f5=str(tmp_path / "none.safetensors")) for x in ls])
    bad = tmp_path / "broken.jsonl"
    bad.write_text(dataset.read_text() + "{oops\n")
    with pytest.raises(TtsrigError, match=rf"broken.jsonl:{len(LINES) + 1} is not JSON"):
        trainer(config(bad, tmp_path / "run2"))


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(dataset, tmp_path, monkeypatch):
    t = trainer(config(dataset, tmp_path / "run", epochs=1))
    t.run()
    good = (tmp_path / "run/epoch_0001.safetensors").read_bytes()
    t2 = trainer(config(dataset, tmp_path / "run", epochs=3))
    t2.resume()
    real = t2.model.forward
    monkeypatch.setattr(t2.model, "forward", lambda *a, **k: (real(*a, **k)[0] * float("nan"), None, None))
    with pytest.raises(TtsrigError, match="loss became nan.*epoch 2.*epoch_0001.state.safetensors"):
        t2.run()
    assert (tmp_path / "run/epoch_0001.safetensors").read_bytes() == good
    assert not (tmp_path / "run/epoch_0002.safetensors").exists()


def test_full_disk_leaves_no_half_checkpoint(dataset, tmp_path, monkeypatch):
    t = trainer(config(dataset, tmp_path / "run", epochs=1))
    import errno

    def full(path, data, mode=None):
        raise OSError(errno.ENOSPC, "No space left on device")

    from trainers import run_state

    monkeypatch.setattr(run_state, "write_atomic", full)
    with pytest.raises(TtsrigError, match="disk full"):
        t.run()
    assert not list((tmp_path / "run").glob("epoch_*"))


def test_defaults_are_the_published_base_model_and_its_vocab():
    arch = f5.default_arch()
    assert (arch["dim"], arch["depth"], arch["heads"], arch["text_dim"], arch["conv_layers"]) == (1024, 22, 16, 512, 4)
    vocab = Path(f5.default_vocab()).read_text(encoding="utf-8").split("\n")
    assert vocab[0] == " " and len([v for v in vocab if v]) >= 2500
    cfg = Config(manifest="m", out="o")
    assert (cfg.lr, cfg.decay, cfg.ema, cfg.pretrained) == (1e-5, False, False, f5.PRETRAINED)


def test_offline_pretrained_says_what_to_do(tmp_path):
    # its own interpreter: huggingface_hub reads HF_HUB_OFFLINE once, at import
    code = ("from trainers import f5_model\nfrom envcheck.errors import TtsrigError\n"
            "try:\n    f5_model.resolve_pretrained(f5_model.PRETRAINED)\nexcept TtsrigError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert "not in the Hugging Face cache" in out.stdout and "--pretrained PATH" in out.stdout, out.stderr


def test_cuda_out_of_memory_with_one_clip_per_pass_names_what_to_change(dataset, tmp_path, monkeypatch):
    t = trainer(config(dataset, tmp_path / "run", epochs=1))

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(t, "train_step", out_of_memory)
    with pytest.raises(TtsrigError, match=r"one clip: this card cannot train on clips this long at fp32.*"
                                          r"--max-seconds"):
        t.run()
    assert not list((tmp_path / "run").glob("epoch_*"))


# -- paths of the wrong kind: one line, exit 2, nothing made (refused before any model is built) ----

def one_line_exit_2(code: int, capsys) -> str:
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("case", ["file", "under a file"])
def test_an_out_that_is_a_file_or_under_one_is_one_line(tmp_path, capsys, case):
    file = tmp_path / "notes.txt"
    file.write_text("mine")
    out = file if case == "file" else file / "run"
    err = one_line_exit_2(f5.main([str(tmp_path / "manifest.jsonl"), "--out", str(out)]), capsys)
    assert f"--out {out}" in err and ("choose a folder" if case == "file" else "Choose a folder") in err
    assert file.read_text() == "mine"


def test_a_run_that_fails_to_start_leaves_no_out_folder(tmp_path, capsys):
    out = tmp_path / "runs" / "new"
    err = one_line_exit_2(f5.main([str(tmp_path / "absent.jsonl"), "--out", str(out)]), capsys)
    assert "absent.jsonl does not exist" in err
    assert not (tmp_path / "runs").exists()


def test_resume_into_a_missing_out_says_there_is_nothing_to_resume(tmp_path, capsys):
    out = tmp_path / "never-made"
    err = one_line_exit_2(f5.main([str(tmp_path / "m.jsonl"), "--out", str(out), "--resume"]), capsys)
    assert f"nothing to resume: --out {out} does not exist" in err and not out.exists()


@pytest.mark.parametrize("case", ["folder", "latin-1"])
def test_a_model_config_that_is_a_folder_or_not_utf8_is_one_line(tmp_path, capsys, case):
    config = tmp_path / "arch"
    if case == "folder":
        config.mkdir()
    else:
        config.write_bytes('{"dim": 64} # caf\u00e9'.encode("latin-1"))
    err = one_line_exit_2(f5.main([str(tmp_path / "m.jsonl"), "--out", str(tmp_path / "run"),
                                   "--model-config", str(config)]), capsys)
    assert f"--model-config {config}" in err and "leave --model-config out" in err
    assert ("is a folder, not a file" if case == "folder" else "is not UTF-8 text") in err
