"""Benchmark for a lent GPU (the `device` tool; never in CI): does the batch trainers/batch_fit.py picks fit
and train on a card of 6, 8 and 12 GiB, in fp32 and bf16? One short prepared run.

    PYTHONPATH=. .venv/bin/python tests/bench/bench_batch_fit_gpu.py [--caps 6 8 12] [--steps 6] [--out FILE]

For each memory cap and precision, in its own process: the GPU's memory is capped with
torch.cuda.set_per_process_memory_fraction (and the free memory the trainer asks for is what the cap leaves),
the full-size F5TTS_v1_Base (random weights) is built by trainers.f5.Trainer on synthetic clips (random mels of
400 frames, the default 3200-frame batch), and its first steps run through Trainer.fitted_step, the path a
real run takes: the pass size batch_fit chose, any halving after running out of memory, the step time and the
peak memory. It also prints the probe (`envcheck probe --json`'s GPU view). Results:
tests/bench/results/batch-fit-gpu.json; fp32 and fp16 memory figures there replace batch_fit's estimates.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _record  # tests/bench/_record.py, beside this script

ROOT = Path(__file__).resolve().parents[2]
GIB = 1024 ** 3


def one(cap_gib: float, amp: str, steps: int) -> dict:
    """One (cap, precision) run, in this process."""
    sys.path.insert(0, str(ROOT))
    import torch

    from trainers import f5
    from trainers.mels import F5_MELS

    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, cap_gib * GIB / total))
    real_info = torch.cuda.mem_get_info
    # What the trainer sizes from: the memory the cap leaves, not the card's.
    torch.cuda.mem_get_info = lambda device=None: (
        min(real_info()[0], int(cap_gib * GIB) - torch.cuda.memory_reserved()), int(cap_gib * GIB))

    class Synthetic:  # stands in for MelClips: random mels and token ids, no files
        def __init__(self, manifest_path, vocab):
            generator = torch.Generator().manual_seed(0)
            self.items = [(torch.randn(400, F5_MELS, generator=generator),
                           torch.randint(1, len(vocab), (60,), generator=generator)) for _ in range(64)]
            self.frames = [400] * len(self.items)

        def __len__(self):
            return len(self.items)

        def __getitem__(self, index):
            return self.items[index]

    f5.MelClips = Synthetic
    with tempfile.TemporaryDirectory() as out:
        cfg = f5.Config(manifest="synthetic", out=out, pretrained=None, epochs=1, amp=amp, device="cuda",
                        num_workers=0)
        row = {"cap_gib": cap_gib, "amp": amp}
        try:
            trainer = f5.Trainer(cfg, progress=False)
        except Exception as exc:  # the weights alone do not fit: batch_fit's refusal, recorded
            return {**row, "ok": False, "refused": str(exc)}
        row.update(fit=trainer.fit.why, pass_frames_fitted=trainer.pass_frames,
                   precision=str(trainer.dtype))
        batches = f5.frame_batches(trainer.data.frames, cfg.frames_per_batch, cfg.max_samples, cfg.seed, 0)[:steps]
        times = []
        torch.cuda.reset_peak_memory_stats()
        try:
            for batch in batches:
                mel, text, lens = f5.collate([trainer.data[i] for i in batch])
                torch.cuda.synchronize()
                started = time.monotonic()
                loss = trainer.fitted_step(mel, text, lens, total_steps=100)
                torch.cuda.synchronize()
                times.append(time.monotonic() - started)
        except Exception as exc:
            return {**row, "ok": False, "error": f"{type(exc).__name__}: {str(exc)[:300]}",
                    "pass_changes": trainer.pass_changes}
        return {**row, "ok": True, "loss": loss, "pass_frames_final": trainer.pass_frames,
                "pass_changes": trainer.pass_changes, "step_s_median": sorted(times)[len(times) // 2],
                "first_step_s": times[0], "peak_allocated_gib": round(torch.cuda.max_memory_allocated() / GIB, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--caps", type=float, nargs="+", default=[6, 8, 12])
    parser.add_argument("--amps", nargs="+", default=["off", "bf16"])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--one", nargs=2, metavar=("CAP", "AMP"), help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(ROOT / "tests/bench/results/batch-fit-gpu.json"))
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(float(args.one[0]), args.one[1], args.steps)))
        return 0
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    has_cuda = subprocess.run([sys.executable, "-c", "import torch, sys; sys.exit(not torch.cuda.is_available())"])
    if has_cuda.returncode:
        print("no CUDA device: this benchmark needs a GPU (the device tool lends one)", file=sys.stderr)
        return 2
    probe = subprocess.run([sys.executable, "-m", "envcheck", "probe", "--json"], capture_output=True, text=True,
                           env=env, cwd=ROOT)
    rows = []
    for cap in args.caps:
        for amp in args.amps:
            done = subprocess.run([sys.executable, __file__, "--one", str(cap), amp, "--steps", str(args.steps)],
                                  capture_output=True, text=True, env=env, timeout=900)
            lines = done.stdout.strip().splitlines()
            rows.append(json.loads(lines[-1]) if done.returncode == 0 and lines else
                        {"cap_gib": cap, "amp": amp, "ok": False, "error": done.stderr.strip()[-500:]})
            print(json.dumps(rows[-1]), file=sys.stderr)
    gpu = json.loads(probe.stdout).get("gpu") if probe.returncode == 0 else probe.stderr.strip()[-300:]
    return _record.write(Path(args.out), {"date": time.strftime("%Y-%m-%d"), "probe_gpu": gpu, "rows": rows})


if __name__ == "__main__":
    raise SystemExit(main())
