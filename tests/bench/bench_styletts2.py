"""Benchmark: StyleTTS2 fine-tune step time (run on demand, not by bin/test).

    python tests/bench/bench_styletts2.py [--steps 4] [--out FILE]

CPU: the reduced model of the tests (tests/models/tiny_styletts2.py), batch 2, max_len 80, every loss on
(SLM adversarial off, as the default config), 4 synthetic clips; the median step time is recorded so that
regressions show. With a CUDA GPU, the same for the full-size LibriTTS architecture (random weights) at
the default config (batch 2, max_len 100), with peak GPU memory: the default must fit a 12 GB card.
Run it with the host tier venv's python and PYTHONPATH set to the checkout.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _record  # tests/bench/_record.py, beside this script

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.models import synth, tiny_styletts2  # noqa: E402
from trainers import prepare, styletts2_pieces  # noqa: E402
from trainers import styletts2 as st  # noqa: E402

TEXTS = ["The rig speaks in a calm and even voice.", "A bath and a path along the grass.",
         "North and south the thought was caught.", "Happy city days are very pretty."]


def measure(config: dict, manifest: Path, out: Path, device: str, steps: int) -> dict:
    trainer = st.Trainer(config, manifest, out, device=device, trust=True, progress=False, log=lambda m: None)
    trainer.set_modes()
    times = []
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for i in range(steps + 1):
        batch = trainer.data.collate(trainer.data.batches(int(config["batch_size"]), 0, i)[0], trainer.rng)
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.monotonic()
        trainer.step([batch])  # one pass, float32: no autocast here
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.monotonic() - start)
    result = {"device": device, "batch_size": config["batch_size"], "max_len": config["max_len"],
              "step_s_median": round(statistics.median(times[1:]), 3), "first_step_s": round(times[0], 3),
              "params_m": round(sum(p.numel() for k in trainer.model for p in trainer.model[k].parameters()) / 1e6, 1)}
    if device == "cuda":
        result["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--out", type=Path, default=ROOT / "tests/bench/results/styletts2.json")
    parser.add_argument("--prepared", type=Path, help="a trainers.prepare output folder with StyleTTS2 mels to use "
                        "instead of synthesising the clips (for a machine without espeak-ng)")
    parser.add_argument("--skip-cpu", action="store_true", help="measure only the GPU part")
    args = parser.parse_args()
    results = {"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        prepared = args.prepared or tmp / "set"
        if not args.prepared:
            synth.transcribed(tmp / "in", TEXTS)
            prepare.prepare(tmp / "in", prepared, prepare.Settings(mels=("styletts2",)), None, "cpu", progress=False)
        if not args.skip_cpu:
            pieces = styletts2_pieces.find(tiny_styletts2.make(tmp / "pretrained"))
            config = styletts2_pieces.make_config(pieces, ["max_len=80"])
            (tmp / "run").mkdir()
            results["cpu_reduced"] = measure(config, prepared / "manifest.jsonl", tmp / "run", "cpu", args.steps)
        if torch.cuda.is_available():
            full = styletts2_pieces.find(tiny_styletts2.make(tmp / "full", sizes=tiny_styletts2.full_size()))
            (tmp / "run-gpu").mkdir()
            results["gpu_full_size"] = measure(styletts2_pieces.make_config(full), prepared / "manifest.jsonl",
                                               tmp / "run-gpu", "cuda", args.steps)
            results["gpu_full_size"]["gpu"] = torch.cuda.get_device_name(0)
    return _record.write(args.out, results)


if __name__ == "__main__":
    sys.exit(main())
