"""A batch that fits the card (trainers.batch_fit): the pass size from the recorded cards' memory, the split of
a batch into passes, gradient accumulation equal to the whole batch, and halving after running out of memory
(simulated: no GPU here) with the batches kept and --resume exact."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from envcheck import gpu_table
from envcheck.errors import TtsrigError
from tests.models.test_f5_trainer import cli_args, config, dataset, tiny_json, trainer, weights  # noqa: F401 (fixtures)
from patches.checkpoints import load_checkpoint
from trainers import batch_fit, f5

RECORDED = Path(__file__).resolve().parents[1] / "gpus" / "nvml"
F5_BASE = {"params": 337_100_000, "dim": 1024, "depth": 22}  # F5TTS_v1_Base (tests/bench/results/f5-gpu-*.json)
# What each recorded card gets for F5TTS_v1_Base at the default 3200-frame batch: the whole batch in one pass,
# passes with gradients summed, or a refusal (weights, gradients and AdamW state alone do not fit).
EXPECTED = {"a100": "whole", "h100": "whole", "rtx-4090": "whole", "rtx-5090": "whole", "rtx-3060": "whole",
            "tesla-t4": "whole", "tesla-p40": "whole", "tesla-p100": "whole", "gtx-1080-ti": "split",
            "rtx-2080": "split", "gtx-1650": "refused", "gtx-970": "refused"}


def recorded_card(stem: str) -> tuple[str, tuple[int, int], int]:
    path = next(RECORDED.glob(f"{stem}--*.txt"))
    name, major, minor, _total, free, _uuid = path.read_text().splitlines()[1].split("|")
    return name, (int(major), int(minor)), int(free)


@pytest.mark.parametrize("stem", sorted(EXPECTED))
def test_each_recorded_card_gets_a_pass_that_fits_its_free_memory(stem):
    name, capability, free = recorded_card(stem)
    dtype = gpu_table.load().precision(capability, name).dtype
    decide = lambda: batch_fit.f5_pass_frames(free_bytes=free, card=name, precision=dtype, ema=False,  # noqa: E731
                                              batch_frames=3200, **F5_BASE)
    if EXPECTED[stem] == "refused":
        with pytest.raises(TtsrigError, match=rf"needs about 5\.5 GiB .* {name} has .* GiB free.*--device cpu"):
            decide()
        return
    fit = decide()
    assert (fit.pass_frames == 0) == (EXPECTED[stem] == "whole"), fit
    frames = fit.pass_frames or 3200
    model = batch_fit.F5_MEMORY
    peak = F5_BASE["params"] * model.bytes_per_param + frames * model.bytes_per_frame_unit[dtype] * 1024 * 22
    assert peak <= free * batch_fit.HEADROOM_SHARE - batch_fit.HEADROOM_BYTES
    assert name in fit.why and dtype in fit.why and ("estimated" in fit.why) == (dtype not in model.measured)


def test_the_memory_model_is_the_measured_one():
    """The constants reproduce the two recorded H200 measurements they come from."""
    model = batch_fit.F5_MEMORY
    results = Path(__file__).resolve().parents[1] / "bench" / "results"
    for name in model.source.replace(",", " ").split():
        run = json.loads((results / Path(name).name).read_text())
        assert run["dtype"] == "torch.bfloat16" and run["params_m"] == pytest.approx(F5_BASE["params"] / 1e6, abs=0.1)
        peak = (F5_BASE["params"] * model.bytes_per_param
                + run["frames"] * model.bytes_per_frame_unit["bf16"] * F5_BASE["dim"] * F5_BASE["depth"])
        assert peak / batch_fit.GIB == pytest.approx(run["peak_allocated_gib"], abs=0.01)


# StyleTTS2 at its default config (batch 2, max_len 100; the full-size LibriTTS modules, 191.5 M parameters, and
# WavLM base plus frozen beside them): clips per pass from each recorded card's free memory (0: the whole batch).
ST2_FULL = {"params": 191_500_000, "frozen_params": 94_400_000}
ST2_EXPECTED = {"a100": 0, "h100": 0, "rtx-4090": 0, "rtx-5090": 0, "rtx-3060": 0, "tesla-t4": 0, "rtx-2080": 0,
                "tesla-p40": 0, "tesla-p100": 0, "gtx-1080-ti": 1, "gtx-1650": "refused", "gtx-970": "refused"}


@pytest.mark.parametrize("stem", sorted(ST2_EXPECTED))
def test_each_recorded_card_gets_styletts2_passes_that_fit_its_free_memory(stem):
    name, capability, free = recorded_card(stem)
    dtype = gpu_table.load().precision(capability, name).dtype
    decide = lambda: batch_fit.styletts2_pass_clips(free_bytes=free, card=name, precision=dtype,  # noqa: E731
                                                    batch_clips=2, max_len=100, **ST2_FULL)
    if ST2_EXPECTED[stem] == "refused":
        with pytest.raises(TtsrigError, match=rf"StyleTTS2 fine-tuning 192 M parameters needs about 3\.2 GiB .* "
                                              rf"{name} has .* GiB free.*--device cpu"):
            decide()
        return
    fit = decide()
    assert fit.pass_clips == ST2_EXPECTED[stem], fit
    model = batch_fit.STYLETTS2_MEMORY
    peak = (ST2_FULL["params"] * model.bytes_per_param + ST2_FULL["frozen_params"] * batch_fit.FROZEN_BYTES_PER_PARAM
            + (fit.pass_clips or 2) * 100 * model.bytes_per_frame_unit[dtype])
    assert peak <= free * batch_fit.HEADROOM_SHARE - batch_fit.HEADROOM_BYTES or fit.pass_clips == 1
    assert name in fit.why and dtype in fit.why and ("estimated" in fit.why) == (dtype not in model.measured)


def test_the_styletts2_memory_model_reproduces_its_measurement():
    """The one recorded full-size StyleTTS2 step (float32: the bench steps without autocast) is what the model
    says for its parameters, batch and max_len; the fixed part is the counted one (16 bytes per parameter, 4 per
    frozen WavLM weight)."""
    model = batch_fit.STYLETTS2_MEMORY
    run = json.loads((Path(__file__).resolve().parents[1] / "bench" / model.source.split("tests/bench/")[1])
                     .read_text())["gpu_full_size"]
    assert run["params_m"] == pytest.approx(ST2_FULL["params"] / 1e6) and model.measured == ("fp32",)
    peak = (ST2_FULL["params"] * 16 + ST2_FULL["frozen_params"] * 4
            + run["batch_size"] * run["max_len"] * model.bytes_per_frame_unit["fp32"])
    assert peak / batch_fit.GIB == pytest.approx(run["peak_allocated_gib"], abs=0.01)
    assert model.bytes_per_frame_unit["bf16"] == model.bytes_per_frame_unit["fp32"] / 2


@pytest.mark.parametrize("lengths, budget, expected", [
    ([100, 120, 130, 150], 0, [(0, 4)]),
    ([100, 120, 130, 150], 600, [(0, 4)]),
    ([100, 120, 130, 150], 300, [(0, 2), (2, 4)]),
    ([100, 120, 130, 150], 260, [(0, 2), (2, 3), (3, 4)]),
    ([100, 120, 500], 300, [(0, 2), (2, 3)]),  # a clip longer than the budget is a pass of its own
    ([100, 120, 130], 1, [(0, 1), (1, 2), (2, 3)]),
])
def test_a_batch_splits_in_order_into_passes_within_the_budget(lengths, budget, expected):
    ranges = batch_fit.pieces(lengths, budget)
    assert ranges == expected
    for start, stop in ranges:
        assert not budget or stop - start == 1 or max(lengths[start:stop]) * (stop - start) <= budget


def test_halving_ends_at_one_clip_per_pass():
    lengths = [100, 120, 130, 150]
    sizes, size = [], 0
    while (size := batch_fit.halved(size, lengths)) is not None:
        sizes.append(size)
    assert sizes == [300, 150] and batch_fit.pieces(lengths, 150) == [(0, 1), (1, 2), (2, 3), (3, 4)]


class FrameMeanLoss(torch.nn.Module):
    """A deterministic model with the CFM's interface and kind of loss (a mean over the valid frames of the
    batch), so the passes' weighted sum can be compared with the whole batch exactly."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(100, 100)

    def forward(self, mel, text, lens):
        valid = torch.arange(mel.shape[1])[None, :] < lens[:, None]
        error = (self.proj(mel) - mel.flip(-1)) ** 2
        return error[valid].mean() + 0 * text.sum(), None, None


def test_passes_sum_to_the_whole_batchs_gradient_and_loss(dataset, tmp_path):  # noqa: F811
    data = trainer(config(dataset, tmp_path / "data")).data
    mel, text, lens = f5.collate([data[i] for i in range(4)])
    results = []
    for pass_frames in (0, int(lens.max()) * 2, 1):
        t = trainer(config(dataset, tmp_path / f"run{pass_frames}", frames_per_batch=10_000, max_samples=8))
        torch.manual_seed(0)
        t.model = FrameMeanLoss()
        t.optimizer = torch.optim.SGD(t.model.parameters(), lr=0.1)
        t.pass_frames = pass_frames
        loss = t.train_step(mel, text, lens, total_steps=10)
        results.append((loss, t.model.proj.weight.detach().clone()))
    (whole_loss, whole), *split = results
    assert len(batch_fit.pieces(lens.tolist(), int(lens.max()) * 2)) == 2
    for loss, weight in split:
        assert loss == pytest.approx(whole_loss, rel=1e-5)
        assert torch.allclose(weight, whole, atol=1e-6)


def test_running_out_of_memory_halves_the_pass_keeps_the_batches_and_resumes_exactly(dataset, tmp_path,  # noqa: F811
                                                                                     monkeypatch, capsys):
    """Passes over 500 padded frames fail as CUDA would: the run halves the pass size, records it, takes the
    same optimiser steps as a run that never ran out, and a run resumed from its first epoch (the failure
    gone) splits its batches the same way and ends with the same weights."""
    settings = dict(frames_per_batch=1200, max_samples=6, epochs=2)
    plain = trainer(config(dataset, tmp_path / "plain", **settings))
    plain.run()
    monkeypatch.setenv(batch_fit.SIMULATE_VARIABLE, "500")
    small = trainer(config(dataset, tmp_path / "small", **settings))
    small.run()
    err = capsys.readouterr().err
    assert "CUDA ran out of memory at step 1: now" in err and "the batch stays 1200 frames" in err
    assert small.step == plain.step and small.pass_changes and small.pass_changes[0]["step"] == 0
    assert all(a * b <= 500 or b == 1 for a, b in passes_of(small))
    state = load_checkpoint(tmp_path / "small" / "epoch_0002.state.safetensors")
    assert state["passes"] == {"pass_frames": small.pass_frames, "changes": small.pass_changes}

    first = trainer(config(dataset, tmp_path / "resumed", **{**settings, "epochs": 1}))
    first.run()
    monkeypatch.delenv(batch_fit.SIMULATE_VARIABLE)
    resumed = trainer(config(dataset, tmp_path / "resumed", **settings))
    resumed.resume()
    assert resumed.pass_frames == first.pass_frames == small.pass_frames
    resumed.run()
    a, b = weights(small.model), weights(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)


def passes_of(t: f5.Trainer) -> list[tuple[int, int]]:
    """(clips, longest clip) of every pass of the trainer's first epoch at its pass size."""
    out = []
    for batch in f5.frame_batches(t.data.frames, t.cfg.frames_per_batch, t.cfg.max_samples, t.cfg.seed, 0):
        lengths = [t.data[i][0].shape[0] for i in batch]
        out += [(max(lengths[a:b]), b - a) for a, b in batch_fit.pieces(lengths, t.pass_frames)]
    return out


def test_one_clip_per_pass_still_out_of_memory_is_one_line_naming_the_fix(dataset, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv(batch_fit.SIMULATE_VARIABLE, "10")
    t = trainer(config(dataset, tmp_path / "run", epochs=1, frames_per_batch=1200, max_samples=6))
    with pytest.raises(TtsrigError, match=r"CUDA ran out of memory .*one clip.*--max-seconds.*--device cpu"):
        t.run()
    assert not list((tmp_path / "run").glob("epoch_*"))


def test_pass_frames_on_the_command_line_is_used_and_recorded(dataset, tmp_path, tiny_json):  # noqa: F811
    out = tmp_path / "run"
    assert f5.main(cli_args(dataset, out, tiny_json, "--epochs", "1", "--pass-frames", "300")) == 0
    assert "300 frames per pass (--pass-frames)" in json.loads((out / "run.json").read_text())["passes"]
    assert load_checkpoint(out / "epoch_0001.state.safetensors")["passes"] == {"pass_frames": 300, "changes": []}


def test_f5_with_a_loss_scaler_takes_the_same_steps(dataset, tmp_path):  # noqa: F811
    """fp16's path on the CPU (float32 compute, a power-of-two scale: exact), split into passes: the same weights
    as without the scaler, and the scaler's state saved for --resume."""
    runs = {}
    for name in ("plain", "scaled"):
        t = trainer(config(dataset, tmp_path / name, epochs=1, frames_per_batch=1200, max_samples=6, pass_frames=400))
        if name == "scaled":
            t.scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 12)
        t.run()
        runs[name] = weights(t.model)
    assert t.scaler.state_dict()["_growth_tracker"] == t.step  # one scaler update per optimiser step
    assert load_checkpoint(tmp_path / "scaled" / "epoch_0001.state.safetensors")["scaler"]["scale"] == 2.0 ** 12
    assert all(torch.equal(runs["plain"][k], runs["scaled"][k]) for k in runs["plain"])
