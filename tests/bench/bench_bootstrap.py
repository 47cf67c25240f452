"""Benchmark: bin/bootstrap against the seed's manual recipe (run on demand, not by bin/test).

    python tests/bench/bench_bootstrap.py [--tier pre-v2] [--skip-recipe] [--compile-tradeoff] [--out FILE]

Measures, on this machine:
  1. bootstrap into a fresh venv with a warm uv cache (a first, cache-warming run is not timed);
  2. bootstrap re-run on that complete environment (target: under 10 s);
  3. the seed notes' three-step recipe into a fresh venv with a warm pip cache: install f5-tts,
     force-reinstall the pins with --no-deps, uninstall the forbidden packages (target: bootstrap
     takes at most 0.2x its time);
  4. with --compile-tradeoff, for each `bin/bootstrap --compile` choice (all, used, none): the fresh bootstrap
     and then the first import of what ttsrig's commands import (bootstrap's warm-up program) in that new
     venv, natively and (in a second new venv) under qemu-x86_64 -cpu phenom, plus the import once the .pyc
     files exist: what each choice saves at install time and what it costs at the first command;
  5. with --envcheck, in the fresh default venv of step 1: `envcheck --json` twice (the first run stores the
     bytecode its checks compile; the second starts from it: target under 15 s), and the same in a fresh
     default pre-v2 venv under `--emulate phenom`.
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


def bootstrap(venv: Path, tier: str, *extra: str) -> float:
    return timed([str(ROOT / "bin/bootstrap"), "--tier", tier, "--venv", str(venv), "--python", sys.executable,
                  *extra])


def first_import(venv: Path, emulate: str | None = None) -> float:
    """Seconds to import what ttsrig's commands import, writing .pyc files as a user's first command does."""
    sys.path.insert(0, str(ROOT))
    from envcheck import warm_up
    from envcheck.isolated import qemu_command

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
    prefix = qemu_command(emulate) if emulate else []
    return timed([*prefix, str(venv / "bin/python"), "-c", warm_up.program()], env)


def compile_tradeoff(work: Path, tier: str) -> dict:
    figures = {}
    for choice in ("all", "used", "none"):
        native, emulated = work / f"{choice}-native", work / f"{choice}-emulated"
        row = {"bootstrap_s": round(bootstrap(native, tier, "--compile", choice), 1)}
        row["first_import_s"] = round(first_import(native), 1)
        row["later_import_s"] = round(first_import(native), 1)
        shutil.rmtree(native)
        bootstrap(emulated, tier, "--compile", choice)
        row["first_import_phenom_s"] = round(first_import(emulated, "phenom"), 1)
        row["later_import_phenom_s"] = round(first_import(emulated, "phenom"), 1)
        shutil.rmtree(emulated)
        figures[choice] = row
        print(choice, row, flush=True)
    return figures


def envcheck_twice(venv: Path, *args: str) -> dict:
    """The first and the second `envcheck --json` of a venv just bootstrapped with the default --compile none."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
    runs = []
    for _ in range(2):
        start = time.monotonic()
        out = subprocess.run([str(venv / "bin/envcheck"), "--json", *args], capture_output=True, text=True,
                             cwd="/tmp", env=env)
        runs.append({"wall_s": round(time.monotonic() - start, 1), "ok": json.loads(out.stdout)["ok"],
                     "note": json.loads(out.stdout).get("bytecode")})
    return {"first": runs[0], "second": runs[1]}


def recipe(venv: Path) -> float:
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull}
    env.pop("PIP_FIND_LINKS", None)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    return sum(timed([str(venv / "bin/python"), "-m", "pip", *step], env) for step in RECIPE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tier", default="pre-v2")
    parser.add_argument("--skip-recipe", action="store_true")
    parser.add_argument("--compile-tradeoff", action="store_true", help="also measure each --compile choice")
    parser.add_argument("--envcheck", action="store_true", help="also time envcheck twice after the fresh bootstrap "
                        "(natively, and in a pre-v2 venv under qemu -cpu phenom)")
    parser.add_argument("--out")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ttsrig-bench-"))
    results: dict = {"machine": platform.node(), "cpus": os.cpu_count(), "tier": args.tier,
                     "date": time.strftime("%Y-%m-%d")}
    try:
        bootstrap(work / "warm", args.tier)  # fills uv's cache; not timed
        shutil.rmtree(work / "warm")
        results["load_average_before"] = os.getloadavg()[0]
        results["bootstrap_fresh_warm_cache_s"] = round(bootstrap(work / "a", args.tier), 1)
        results["bootstrap_rerun_complete_s"] = round(bootstrap(work / "a", args.tier), 2)
        if args.envcheck:
            results["envcheck_after_default_bootstrap"] = envcheck_twice(work / "a")
        shutil.rmtree(work / "a")
        if args.envcheck:
            bootstrap(work / "phenom", "pre-v2")
            results["envcheck_phenom_after_default_bootstrap"] = envcheck_twice(work / "phenom", "--emulate", "phenom")
            shutil.rmtree(work / "phenom")
        if not args.skip_recipe:
            recipe(work / "warm-recipe")  # fills pip's cache; not timed
            shutil.rmtree(work / "warm-recipe")
            results["seed_recipe_warm_cache_s"] = round(recipe(work / "b"), 1)
            results["bootstrap_over_recipe"] = round(
                results["bootstrap_fresh_warm_cache_s"] / results["seed_recipe_warm_cache_s"], 3)
        if args.compile_tradeoff:
            results["compile"] = compile_tradeoff(work, args.tier)
        results["load_average_after"] = os.getloadavg()[0]
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
