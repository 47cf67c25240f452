"""Benchmark: bin/bootstrap against the seed's manual recipe (run on demand, not by bin/test).

    python tests/bench/bench_bootstrap.py [--tier pre-v2] [--skip-recipe] [--out FILE]

Measures, on this machine:
  1. bootstrap into a fresh venv with a warm uv cache (a first, cache-warming run is not timed);
  2. bootstrap re-run on that complete environment (target: under 10 s);
  3. the seed notes' three-step recipe into a fresh venv with a warm pip cache: install f5-tts,
     force-reinstall the pins with --no-deps, uninstall the forbidden packages (target: bootstrap
     takes at most half its time).
Writes the figures as JSON (default: tests/bench/results/bootstrap-<tier>.json).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RECIPE = [
    ["install", "--prefer-binary", "f5-tts"],
    ["install", "--prefer-binary", "--force-reinstall", "--no-deps", "torch==2.7.0", "torchaudio==2.7.0",
     "transformers==4.57.3", "numpy<2"],
    ["uninstall", "-y", "datasets", "pyarrow", "pyarrow-hotfix", "pandas", "torchcodec"],
]


def timed(cmd: list[str], env: dict | None = None) -> float:
    start = time.monotonic()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.monotonic() - start


def bootstrap(venv: Path, tier: str) -> float:
    return timed([str(ROOT / "bin/bootstrap"), "--tier", tier, "--venv", str(venv), "--python", sys.executable])


def recipe(venv: Path) -> float:
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull}
    env.pop("PIP_FIND_LINKS", None)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    return sum(timed([str(venv / "bin/python"), "-m", "pip", *step], env) for step in RECIPE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tier", default="pre-v2")
    parser.add_argument("--skip-recipe", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ttsrig-bench-"))
    results: dict = {"machine": platform.node(), "cpus": os.cpu_count(), "tier": args.tier,
                     "date": time.strftime("%Y-%m-%d")}
    try:
        bootstrap(work / "warm", args.tier)  # fills uv's cache; not timed
        shutil.rmtree(work / "warm")
        results["bootstrap_fresh_warm_cache_s"] = round(bootstrap(work / "a", args.tier), 1)
        results["bootstrap_rerun_complete_s"] = round(bootstrap(work / "a", args.tier), 2)
        shutil.rmtree(work / "a")
        if not args.skip_recipe:
            recipe(work / "warm-recipe")  # fills pip's cache; not timed
            shutil.rmtree(work / "warm-recipe")
            results["seed_recipe_warm_cache_s"] = round(recipe(work / "b"), 1)
            results["bootstrap_over_recipe"] = round(
                results["bootstrap_fresh_warm_cache_s"] / results["seed_recipe_warm_cache_s"], 3)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = Path(args.out or ROOT / "tests/bench/results" / f"bootstrap-{args.tier}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(out)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
