"""Benchmark: the F5 trainer on 1 and on 2 gloo processes (torchrun) on this machine's CPU, run on demand.

    PYTHONPATH=. .venv/bin/python tests/bench/bench_distributed.py [--epochs 3] [--out FILE]

The same run (a tiny DiT, synthetic espeak-ng clips as tests/models/test_f5_trainer.py makes them, passes of 200
frames in batches of 800, so each batch has passes for both ranks) with `python -m trainers.f5` and with
`torchrun --standalone --nproc_per_node=2`, each process given an equal share of the cores
(OMP_NUM_THREADS), and the one process once more with one thread (a tiny model's operations are too small for
two threads to pay: without this row the scaling looks better than it is); optimiser steps per second from
train-log.tsv (the epochs' own seconds, start-up excluded), and the scaling efficiency: steps per second with
2 processes over 2 x the faster single-process figure. On a lent GPU machine, the
single-GPU step time with torchrun against without it is the figure to add (the overhead must be small).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import _record  # tests/bench/_record.py, beside this script

ROOT = Path(__file__).resolve().parents[2]
PASS = ["--pass-frames", "200", "--frames-per-batch", "800", "--max-samples", "4"]


def steps_per_second(out: Path) -> float:
    rows = [line.split("\t") for line in (out / "train-log.tsv").read_text().splitlines()[1:]]
    steps, seconds = int(rows[-1][1]), sum(float(r[4]) for r in rows)
    return steps / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "tests/bench/results/distributed-gloo.json"))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.models import synth
    from tests.models.test_f5_trainer import LINES, TINY
    from trainers import prepare

    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="ttsrig-bench-ddp-") as tmp:
        root = Path(tmp)
        synth.transcribed(root / "in", LINES * 4)
        prepare.prepare(root / "in", root / "set", prepare.Settings(mels=("f5",)), None, "cpu", progress=False)
        (root / "tiny.json").write_text(json.dumps(TINY))
        common = [str(root / "set" / "manifest.jsonl"), "--pretrained", "none", "--model-config",
                  str(root / "tiny.json"), "--num-workers", "0", "--quiet", "--epochs", str(args.epochs), *PASS]
        results = {}
        for label, processes, threads in ((f"1 process, {cores} threads", 1, cores), ("1 process, 1 thread", 1, 1),
                                          (f"2 gloo processes, {max(1, cores // 2)} thread(s) each", 2,
                                           max(1, cores // 2))):
            out = root / f"run{len(results)}"
            launcher = ([sys.executable, "-m", "trainers.f5"] if processes == 1 else
                        [str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc_per_node=2",
                         "-m", "trainers.f5"])
            env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads)}
            subprocess.run([*launcher, *common, "--out", str(out)], check=True, cwd=ROOT, env=env,
                           capture_output=True)
            results[label] = round(steps_per_second(out), 2)
    *single, double = results.values()
    return _record.write(Path(args.out), {
        "date": datetime.date.today().isoformat(), "cores": cores, "model": "tiny DiT (tests' TINY)",
        "steps_per_second": results, "scaling_efficiency": round(double / (2 * max(single)), 2)})


if __name__ == "__main__":
    raise SystemExit(main())
