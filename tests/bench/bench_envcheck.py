"""Benchmark: the full envcheck report (run on demand, not by bin/test).

    python tests/bench/bench_envcheck.py [--venv DIR] [--emulate-venv DIR] [--runs 3] [--out FILE]

Measures, on this machine:
  1. `envcheck --json` on a venv of the host's tier, --runs times (target: under 15 s);
  2. `envcheck --emulate phenom --json` on a pre-v2 venv, once (recorded; no target);
  3. with --after-default-bootstrap, instead of 1 and 2: a fresh bin/bootstrap with its default --compile none
     (warm cache) and the first and second report after it, natively and in a fresh pre-v2 venv under
     -cpu phenom (bench_bootstrap.py --envcheck measures the same beside the seed recipe).
Both venvs are built with bin/bootstrap first if needed (default: .cache/test-venvs/<tier>, as the tests).
Writes the wall times and each check's seconds as JSON (default: tests/bench/results/envcheck.json).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import _record  # tests/bench/_record.py, beside this script

ROOT = Path(__file__).resolve().parents[2]
VENVS = Path(os.environ.get("TTSRIG_TEST_VENVS", ROOT / ".cache" / "test-venvs"))


def ensure(venv: Path, tier: str | None) -> None:
    cmd = [str(ROOT / "bin/bootstrap"), "--venv", str(venv), "--python", sys.executable]
    subprocess.run(cmd + (["--tier", tier] if tier else []), check=True, stdout=subprocess.DEVNULL)


def report(venv: Path, *args: str) -> tuple[float, dict]:
    start = time.monotonic()
    out = subprocess.run([str(venv / "bin/envcheck"), "--json", *args], capture_output=True, text=True, cwd="/tmp")
    seconds = time.monotonic() - start
    data = json.loads(out.stdout)
    return seconds, {"wall_s": round(seconds, 2), "ok": data["ok"], "tier": data["tier"],
                     "checks_s": {c["name"]: c["seconds"] for c in data["checks"] if c["seconds"]}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--venv", type=Path, help="a venv of the host tier")
    parser.add_argument("--emulate-venv", type=Path, help="a pre-v2 venv for the emulated run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-emulated", action="store_true")
    parser.add_argument("--after-default-bootstrap", action="store_true",
                        help="time a fresh default bootstrap and the first and second report after it")
    parser.add_argument("--out", type=Path, default=ROOT / "tests/bench/results/envcheck.json")
    args = parser.parse_args()

    if args.after_default_bootstrap:
        default = args.out == ROOT / "tests/bench/results/envcheck.json"
        return after_default_bootstrap(ROOT / "tests/bench/results/envcheck-after-bootstrap.json" if default else args.out)
    host_tier = json.loads(subprocess.run([sys.executable, "-m", "envcheck", "probe", "--json"], cwd=ROOT,
                                          capture_output=True, text=True, check=True).stdout)["tier"]
    venv = args.venv or VENVS / host_tier
    ensure(venv, None if args.venv else host_tier)
    report(venv)  # warm the page cache; not counted
    host = [report(venv)[1] for _ in range(args.runs)]
    result = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "host_tier": host_tier, "target_s": 15,
              "host": {"runs": host, "median_wall_s": sorted(r["wall_s"] for r in host)[len(host) // 2]}}
    if not args.skip_emulated:
        pre = args.emulate_venv or VENVS / "pre-v2"
        ensure(pre, "pre-v2")
        result["emulated_phenom"] = report(pre, "--emulate", "phenom")[1]
    return _record.write(args.out, result)


def after_default_bootstrap(out: Path) -> int:
    """The bootstrap and the two reports a user runs first, from one run (bench_bootstrap's own steps)."""
    import shutil
    import tempfile

    import bench_bootstrap

    host_tier = json.loads(subprocess.run([sys.executable, "-m", "envcheck", "probe", "--json"], cwd=ROOT,
                                          capture_output=True, text=True, check=True).stdout)["tier"]
    work = Path(tempfile.mkdtemp(prefix="ttsrig-bench-"))
    try:
        result: dict = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                        "host_tier": host_tier, "target_s": 15}
        for name, tier, args in (("host", host_tier, ()), ("emulated_phenom", "pre-v2", ("--emulate", "phenom"))):
            bench_bootstrap.bootstrap(work / "warm", tier)  # fills uv's cache; not timed
            shutil.rmtree(work / "warm")
            seconds = bench_bootstrap.bootstrap(work / tier, tier)
            result[name] = {"bootstrap_s": round(seconds, 1), **bench_bootstrap.envcheck_twice(work / tier, *args)}
            shutil.rmtree(work / tier)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _record.write(out, result)


if __name__ == "__main__":
    sys.exit(main())
