"""Benchmark (needs a CUDA GPU): step time and peak GPU memory of the full F5TTS_v1_Base (random weights)
in trainers/f5.py's training step at the default batch (3200 frames, bf16/fp16 autocast), run on demand.

    python tests/bench/bench_f5_gpu.py [--frames 3200] [--steps 20] [--out FILE]

Run it with the venv's python (PYTHONPATH=the checkout). The default batch must fit a 12 GB card: the
figure to compare is peak_allocated_gib (plus ~0.5 GiB of CUDA context).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import _record  # tests/bench/_record.py, beside this script

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from trainers import f5, precision  # noqa: E402,F401
from trainers.mels import F5_MELS  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=f5.Config.frames_per_batch)
    parser.add_argument("--clip-frames", type=int, default=400, help="frames per clip (~4.3 s)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "tests/bench/results/f5-gpu.json")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: this benchmark needs a GPU", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    model, vocab = f5.build_model(f5.default_arch(), f5.default_vocab())
    model.cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    dtype = precision.autocast_dtype("auto", "cuda")
    batch = max(1, args.frames // args.clip_frames)
    mel = torch.randn(batch, args.clip_frames, F5_MELS, device="cuda")
    text = torch.randint(0, len(vocab), (batch, args.clip_frames // 6), device="cuda")
    lens = torch.full((batch,), args.clip_frames, device="cuda")
    times = []
    for step in range(args.steps):
        torch.cuda.synchronize()
        start = time.monotonic()
        with torch.autocast("cuda", dtype=dtype):
            loss, _, _ = model(mel, text=text, lens=lens)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        torch.cuda.synchronize()
        times.append(time.monotonic() - start)
    result = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "dtype": str(dtype),
              "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1), "batch_clips": batch,
              "frames": batch * args.clip_frames, "step_s_median": round(sorted(times[3:])[len(times[3:]) // 2], 4),
              "peak_allocated_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
              "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2)}
    return _record.write(args.out, result)


if __name__ == "__main__":
    sys.exit(main())
