"""A batch that fits the card: how much of a training batch one forward pass may hold on this GPU, and what a
trainer does when CUDA runs out of memory anyway.

The documented batch stays what the optimiser sees (F5: `--frames-per-batch` mel frames, the same batches in
the same order on every card). When the card cannot hold it at once, the batch is split into passes whose
gradients are summed before the one optimiser step (gradient accumulation), each pass's loss weighted by its
share of the batch's frames. The pass size comes from the card's free memory, the precision and a memory
model measured on a real card (`F5_MEMORY`); when a pass still runs out of memory it is halved and the same
batch is tried again. The run records each change, and a resumed run reuses the recorded size.

`TTSRIG_SIMULATE_OOM_ABOVE=FRAMES` (tests only, like envcheck.crashpoint) makes any pass of more padded frames
raise CUDA's out-of-memory error, on any device, so the halving is tested where no GPU is.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from envcheck.errors import TtsrigError

GIB = 1024 ** 3
SIMULATE_VARIABLE = "TTSRIG_SIMULATE_OOM_ABOVE"


@dataclass(frozen=True)
class MemoryModel:
    """Peak CUDA memory of one training step: a part that grows with the parameters (weights, gradients, the
    AdamW moments, the autocast copies: `bytes_per_param`), and one that grows with the padded frames of the
    pass times the model's width and depth (the activations kept for backward: `bytes_per_frame_unit`, per
    frame x dim x depth, per precision). `source` names the measurement."""
    bytes_per_param: float
    bytes_per_frame_unit: dict[str, float]
    measured: tuple[str, ...]  # the precisions measured on a card; the others are estimates
    source: str


# From tests/bench/results/f5-gpu-3200.json and f5-gpu-6400.json (F5TTS_v1_Base, 337.1 M parameters, dim 1024,
# depth 22, bf16 autocast, AdamW, H200): peak allocated 9.32 GiB at 3200 frames and 13.14 GiB at 6400, i.e.
# 5.50 GiB at no frames (17.5 bytes per parameter) and 1.22 MiB per frame (56.9 bytes per frame x dim x depth).
# fp16 keeps the same activations as bf16; fp32 keeps them at twice the width (an estimate until a card measures
# it: the out-of-memory halving covers it).
_F5_FIXED_GIB, _F5_PER_FRAME_GIB = 5.50, (13.14 - 9.32) / 3200
_F5_BASE = {"params": 337.1e6, "dim": 1024, "depth": 22}
F5_MEMORY = MemoryModel(
    bytes_per_param=_F5_FIXED_GIB * GIB / _F5_BASE["params"],
    bytes_per_frame_unit={"bf16": _F5_PER_FRAME_GIB * GIB / (_F5_BASE["dim"] * _F5_BASE["depth"]),
                          "fp16": _F5_PER_FRAME_GIB * GIB / (_F5_BASE["dim"] * _F5_BASE["depth"]),
                          "fp32": 2 * _F5_PER_FRAME_GIB * GIB / (_F5_BASE["dim"] * _F5_BASE["depth"])},
    measured=("bf16",),
    source="tests/bench/results/f5-gpu-3200.json, f5-gpu-6400.json")
EMA_BYTES_PER_PARAM = 4  # --ema keeps a float32 copy of every weight

# From tests/bench/results/styletts2-gpu.json (the full-size LibriTTS StyleTTS2, 191.5 M parameters in its modules
# and WavLM base plus, 94.4 M, frozen beside them; batch 2, max_len 100; float32: the bench's steps ran without
# autocast; AdamW; H200): peak allocated 9.57 GiB. One measurement, so the fixed part is counted, not fitted
# (16 bytes per parameter of the modules: weights, gradients, two AdamW moments; 4 per frozen WavLM weight),
# and the rest is the clips' activations, per clip and frame of max_len: 32.6 MiB. bf16 and fp16 keep them at
# half the width (an estimate until a card measures it: the out-of-memory halving covers it).
FROZEN_BYTES_PER_PARAM, _ST2_BYTES_PER_PARAM = 4, 16
_ST2_BENCH = {"params": 191.5e6, "frozen": 94.4e6, "clips": 2, "max_len": 100, "peak_gib": 9.57}
_ST2_PER_FRAME = (_ST2_BENCH["peak_gib"] * GIB - _ST2_BYTES_PER_PARAM * _ST2_BENCH["params"]
                  - FROZEN_BYTES_PER_PARAM * _ST2_BENCH["frozen"]) / (_ST2_BENCH["clips"] * _ST2_BENCH["max_len"])
STYLETTS2_MEMORY = MemoryModel(
    bytes_per_param=_ST2_BYTES_PER_PARAM,
    bytes_per_frame_unit={"fp32": _ST2_PER_FRAME, "bf16": _ST2_PER_FRAME / 2, "fp16": _ST2_PER_FRAME / 2},
    measured=("fp32",), source="tests/bench/results/styletts2-gpu.json")
# What the peak leaves to others: CUDA's context and the caching allocator's fragmentation.
HEADROOM_SHARE, HEADROOM_BYTES = 0.9, int(0.5 * GIB)


@dataclass(frozen=True)
class Fit:
    pass_frames: int  # padded frames per forward pass; 0: the whole batch in one pass
    why: str  # one line for the log and run.json


def usable_after(fixed: float, *, free_bytes: int, card: str, what: str, held: str) -> float:
    """The bytes left for a batch's activations once `fixed` (weights, gradients, optimiser state) is held;
    refused in one line when nothing is left."""
    usable = free_bytes * HEADROOM_SHARE - HEADROOM_BYTES
    if fixed >= usable:
        raise TtsrigError(
            f"{what} needs about {fixed / GIB:.1f} GiB for {held} before any batch; {card} has "
            f"{free_bytes / GIB:.1f} GiB free, of which about {max(0.0, usable) / GIB:.1f} GiB is usable. Free the "
            "card (nvidia-smi lists what holds it), use a card with more memory, or --device cpu.")
    return usable - fixed


def on_card(card: str, free_bytes: int, precision: str, model: MemoryModel) -> str:
    """The tail of a fit's line: the card, its free memory and the precision, said to be an estimate where the
    memory model was not measured in it."""
    estimate = "" if precision in model.measured else f" (estimated: not yet measured on a card in {precision})"
    return f"{card}, {free_bytes / GIB:.1f} GiB free, {precision}{estimate}"


def f5_pass_frames(*, free_bytes: int, card: str, params: int, dim: int, depth: int, precision: str,
                   ema: bool, batch_frames: int, model: MemoryModel = F5_MEMORY) -> Fit:
    """The pass size for an F5 batch of `batch_frames` on a card with `free_bytes` free; refused in one line
    when the weights, gradients and optimiser state alone do not fit."""
    fixed = params * (model.bytes_per_param + (EMA_BYTES_PER_PARAM if ema else 0))
    room = usable_after(fixed, free_bytes=free_bytes, card=card,
                        what=f"F5 fine-tuning a model of {params / 1e6:.0f} M parameters",
                        held=f"its weights, gradients and AdamW state{' and EMA' if ema else ''}")
    per_frame = model.bytes_per_frame_unit[precision] * dim * depth
    fits = int(room // per_frame)
    where = on_card(card, free_bytes, precision, model)
    if fits >= batch_frames:
        return Fit(0, f"the whole batch ({batch_frames} frames) in one pass: {where}")
    fits = max(1, fits)
    passes = -(-batch_frames // fits)
    return Fit(fits, f"{fits} frames per pass, about {passes} passes per batch of {batch_frames} frames, gradients "
                     f"accumulated: {where}")


@dataclass(frozen=True)
class ClipFit:
    pass_clips: int  # clips per forward pass; 0: the whole batch in one pass
    why: str


def styletts2_pass_clips(*, free_bytes: int, card: str, params: int, frozen_params: int, precision: str,
                         batch_clips: int, max_len: int, model: MemoryModel = STYLETTS2_MEMORY) -> ClipFit:
    """The clips per pass for a StyleTTS2 batch of `batch_clips` crops of up to `max_len` frames; at least one
    (when even one is estimated not to fit, running out of memory names max_len); refused in one line when the
    weights, gradients and optimiser state alone do not fit."""
    fixed = params * model.bytes_per_param + frozen_params * FROZEN_BYTES_PER_PARAM
    room = usable_after(fixed, free_bytes=free_bytes, card=card,
                        what=f"StyleTTS2 fine-tuning {params / 1e6:.0f} M parameters",
                        held="their weights, gradients and AdamW state and the frozen WavLM")
    fits = int(room // (model.bytes_per_frame_unit[precision] * max_len))
    where = on_card(card, free_bytes, precision, model)
    if fits >= batch_clips:
        return ClipFit(0, f"the whole batch ({batch_clips} clips) in one pass: {where}")
    fits = max(1, fits)
    return ClipFit(fits, f"{fits} clip{'s' if fits > 1 else ''} per pass, {-(-batch_clips // fits)} passes per batch "
                         f"of {batch_clips} clips, gradients accumulated: {where}")


def pieces(lengths: list[int], pass_frames: int) -> list[tuple[int, int]]:
    """[start, stop) ranges over a batch's clips (in the batch's order) whose padded size (clips x the longest)
    is at most `pass_frames` each; a clip longer than that is a pass of its own. 0: one piece."""
    if not pass_frames:
        return [(0, len(lengths))]
    ranges, start, longest = [], 0, 0
    for i, frames in enumerate(lengths):
        longest_with = max(longest, frames)
        if i > start and longest_with * (i - start + 1) > pass_frames:
            ranges.append((start, i))
            start, longest_with = i, frames
        longest = longest_with
    ranges.append((start, len(lengths)))
    return ranges


def halved(pass_frames: int, lengths: list[int]) -> int | None:
    """The next pass size after running out of memory with `pass_frames` on a batch of `lengths`, or None
    when every pass already holds one clip (nothing smaller is possible)."""
    current = pass_frames or max(lengths) * len(lengths)
    if all(b - a == 1 for a, b in pieces(lengths, current)):
        return None
    return max(1, current // 2)


def check_simulated(padded_frames: int) -> None:
    """Tests only: CUDA's out-of-memory error for a pass over the ceiling TTSRIG_SIMULATE_OOM_ABOVE names."""
    ceiling = os.environ.get(SIMULATE_VARIABLE)
    if ceiling and padded_frames > int(ceiling):
        raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (simulated by {SIMULATE_VARIABLE}={ceiling}: a pass of "
                                          f"{padded_frames} padded frames)")
