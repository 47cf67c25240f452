"""bin/bootstrap: one command from a clean checkout to a verified venv for this CPU.

Steps: pick the Python (--python, else the newest supported CPython on PATH; --python-install: uv's
baseline-level CPython 3.11, see envcheck.managed_python) -> create the venv and
install archspec and uv -> probe the CPU (CPUID needs archspec) -> pick requirements/py3.X/<tier>.txt for
that Python and tier -> install the lock (hash-checked, --no-deps) -> install the --no-deps packages and
build the Cython extension against the pinned numpy -> remove what the tier
forbids -> install ttsrig itself -> apply patches -> verify -> summary.

Standard library only, and runs on any Python 3.8 or newer (bin/bootstrap starts it with whatever python3
it finds); the venv itself is built with a supported Python (envcheck.locks.SUPPORTED_PYTHONS).
A state file in the venv records the lock it was built from, so a re-run on a
complete environment only verifies, a changed lock is applied, and a run that
was killed half-way is completed by the next one. The same record marks the venv
as bootstrap's own: a folder without it is never changed, rebuilt or deleted.

Offline runs need no index: the installer's own wheels (uv, archspec) are kept in
a wheel cache once downloaded, the rest comes from uv's cache, or everything from
a wheelhouse folder the user copied (--wheelhouse); hashes are checked either way.

The steps live in their own modules: bootstrap_python (which Python builds the venv), bootstrap_venv (the
venv folder and bootstrap's record in it), bootstrap_wheels (the locks read against the commit, this system's
glibc against their wheels, the wheel cache and the wheelhouse), bootstrap_install (running the installers,
the patches, the check against the lock), bootstrap_summary (what is printed at the end); bootstrap_plan holds
the Plan they all read, bootstrap_common the checkout's paths and the log line. This module probes the CPU and
the GPU, makes the plan, and runs the steps in order. A step's function is called through its module
(bootstrap_venv.ensure_venv), so a test that replaces it there replaces it for every caller.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from envcheck import bootstrap_common as common
from envcheck import (bootstrap_install, bootstrap_layers, bootstrap_python, bootstrap_summary, bootstrap_venv,
                      bootstrap_wheels, gpu, gpu_choice, locks, managed_python, python_command, run_lock, wheels)
from envcheck import tiers as tiers_mod
from envcheck.bootstrap_common import log, rel
from envcheck.bootstrap_plan import COMPILE_CHOICES, DEFAULT_COMPILE, Plan
from envcheck.bootstrap_python import Interpreter
from envcheck.bootstrap_wheels import WHEELHOUSE_ENV
from envcheck.digests import file_sha256
from envcheck.errors import TtsrigError


def probe_cpu(venv: Path, python: str) -> dict:
    """The probe's JSON, run in the venv's Python when it has archspec (CPUID), else here.

    A venv whose Python is broken is probed with `python` instead: the venv is rebuilt later.
    """
    candidate = venv / "bin" / "python"
    env = {**os.environ, "PYTHONPATH": str(common.ROOT)}
    error = "the CPU probe failed"
    for exe in [*([str(candidate)] if candidate.is_file() else []), python]:
        try:
            out = subprocess.run(python_command.module(exe, "envcheck", "probe", "--json"), capture_output=True,
                                 text=True, env=env)
            if out.returncode == 0:
                return json.loads(out.stdout)
        except (OSError, ValueError):
            continue
        error = re.sub(r"^envcheck: ", "", out.stderr.strip()) or error
    raise TtsrigError(error)


def make_plan(args: argparse.Namespace, python: Interpreter) -> Plan:
    table = tiers_mod.load()
    venv = bootstrap_venv.resolve_venv(args.venv)
    bootstrap_venv.check_venv_location(venv)
    bootstrap_python.refuse_another_python(venv, python)
    cpu = probe_cpu(venv, python.path)
    probed, warnings = cpu["tier"], list(cpu["warnings"])
    tier = args.tier or probed
    if args.tier and probed and table.rank(args.tier) > table.rank(probed):
        warnings.append(f"--tier {args.tier} is above this CPU's tier ({probed}): its wheels may die with "
                        "SIGILL here. Use it only to build an environment for another machine.")
    cards = gpu_choice.from_option(args.gpu, probe_gpu())
    choice = gpu_choice.choose(tier, python.version, cards, common.REQUIREMENTS)
    lock = choice.path
    nodeps = common.REQUIREMENTS / "nodeps.txt"
    layers = bootstrap_layers.plan(args.with_layers, args.without_layers,
                                   bootstrap_venv.load_state(venv).get("layers"), lock.stem, tier, probed,
                                   ".".join(map(str, python.version)))
    layer_locks = [layer.lock for layer in layers if layer.lock]
    # Parsing refuses unhashed or hand-edited pins before anything is touched.
    parsed = bootstrap_wheels.read_locks([common.REQUIREMENTS / "bootstrap.txt", lock, nodeps, *layer_locks])
    pins = {**parsed[lock], **parsed[nodeps]}
    for layer_lock in layer_locks:
        pins.update(parsed[layer_lock])  # the same versions as the tier's where both pin a package
    wheelhouse = Path(args.wheelhouse).expanduser().absolute() if args.wheelhouse else None
    if args.offline and args.installer == "pip" and not wheelhouse:
        raise TtsrigError("--installer pip --offline has nothing to install from: pip cannot install from its "
                          "cache without an index. Use the default installer (uv), or pass --wheelhouse DIR.")
    plan = Plan(tier, probed, lock, nodeps, venv, python.path, args.installer, args.offline,
                file_sha256(lock, nodeps, common.REQUIREMENTS / "bootstrap.txt", *layer_locks), warnings,
                f"{cpu['model_name']} ({cpu['microarch']}, {cpu['level']})", pins,
                bool(cpu["sources"].get("cpuid", {}).get("ok")), wheelhouse,
                python_version=".".join(map(str, python.version)), compile=args.compile,
                gpu_class=choice.gpu_class, gpu_why=choice.why, gpu_lines=gpu.summary(cards), layers=layers)
    if wheelhouse:
        bootstrap_wheels.check_wheelhouse(plan)
    return plan


def probe_gpu() -> gpu.GpuView:
    """The NVIDIA GPUs this machine has (NVML, nvidia-smi or /proc; none without a driver): a seam for tests."""
    return gpu.probe()


def plan_after_cpuid(args: argparse.Namespace, python: Interpreter, first: Plan) -> Plan:
    """Re-plan from a probe that reads CPUID: create the venv and install archspec into it first.

    Before the venv exists the probe has only /proc/cpuinfo and glibc; CPUID is the view that
    sees what the CPU itself reports (and the only one that follows qemu's emulated CPU).
    """
    bootstrap_venv.check_disk(first.venv)
    bootstrap_venv.ensure_venv(first)
    bootstrap_install.ensure_bootstrap_tools(first)
    return make_plan(args, python)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bin/bootstrap", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tier", choices=tiers_mod.TIER_NAMES, help="override the probed tier")
    parser.add_argument("--gpu", default="auto", metavar="auto|none|sm_XY",
                        help="the GPU the lock is chosen for: auto (probe the NVIDIA GPUs; default), none (the CPU "
                             "only), or a compute capability such as sm_61 (a P40) for a machine whose driver cannot "
                             "be asked")
    parser.add_argument("--venv", default=str(common.ROOT / ".venv"), help="where to build the venv (default: .venv)")
    parser.add_argument("--python", default=None,
                        help=f"the CPython ({locks.supported_range()}) to build the venv with (default: the newest "
                             "on PATH, or the one an existing venv was built with)")
    parser.add_argument("--python-install", action="store_true",
                        help=f"build the venv with CPython {locks.python_name(managed_python.MINOR)} for the "
                             "baseline x86-64 level, installed by uv into "
                             f"{managed_python.default_python_dir()} (${managed_python.PYTHON_DIR_ENV}) if missing; "
                             "for machines without a supported Python")
    parser.add_argument("--python-downloads", metavar="DIR",
                        default=str(managed_python.default_downloads_dir()),
                        help="offline --python-install: the folder holding the CPython archive copied from a "
                             f"connected machine (default: ${managed_python.DOWNLOADS_ENV} or "
                             f"{managed_python.default_downloads_dir()})")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
    parser.add_argument("--compile", choices=COMPILE_CHOICES, default=DEFAULT_COMPILE,
                        help="which .pyc files bootstrap writes: none (default: each module is compiled on its "
                             "first import, so the first command takes longer, once), all (every installed "
                             "module, now), used (what ttsrig's commands import, by one warm-up import after the "
                             "patches)")
    parser.add_argument("--with", dest="with_layers", action="append", default=[], choices=bootstrap_layers.NAMES,
                        help="add an optional layer, kept by later runs: asr (faster-whisper from a hash-pinned lock "
                             "on v2 and v3 CPUs; whisper.cpp built from hash-pinned source on pre-v2), which "
                             "trainers.prepare and the audition screen find without further flags")
    parser.add_argument("--without", dest="without_layers", action="append", default=[],
                        choices=bootstrap_layers.NAMES, help="remove a layer an earlier run added")
    parser.add_argument("--installer", choices=("uv", "pip"), default="uv",
                        help="uv (default, fast) or pip (the fallback)")
    parser.add_argument("--offline", action="store_true",
                        help="install without the network: from uv's cache and the wheel cache (or --wheelhouse)")
    parser.add_argument("--wheelhouse", default=os.environ.get(WHEELHOUSE_ENV) or None, metavar="DIR",
                        help=f"install every package from the files in DIR, never the index (default: "
                             f"${WHEELHOUSE_ENV}); hashes are still checked")
    return parser


def build(args: argparse.Namespace, python: Interpreter, plan: Plan, started: float) -> int:
    """Everything that changes the venv, in order; main holds the venv's lock around it."""
    if not plan.cpuid_read:
        plan = plan_after_cpuid(args, python, plan)
    for warning in plan.warnings:
        log(f"warning: {warning}")
    bootstrap_venv.check_disk(plan.venv)
    state = bootstrap_venv.load_state(plan.venv)
    current = (state.get("complete") and state.get("lock_digest") == plan.lock_digest
               and state.get("tier") == plan.tier and state.get("lock") == rel(plan.lock)
               and state.get("layers", {}) == plan.layer_records())
    for layer in plan.layers:
        if layer.kept:
            log(f"keeping the {layer.name} layer an earlier run installed (--without {layer.name} removes it)")
    changed: list[str] = []
    result = bootstrap_install.verify(plan)
    if current and result.ok and plan.venv_python.exists():
        log("environment is complete and matches the lock; verifying only")
    else:
        if state.get("installing") or (state.get("lock_digest") and not state.get("complete")):
            log("continuing an installation that did not finish")
        elif state.get("gpu_class", plan.gpu_class) != plan.gpu_class:
            log(f"the GPU changed since the last run ({state['gpu_class']}, now {plan.gpu_class}); applying "
                f"{rel(plan.lock)}")
        elif state.get("lock_digest") and state.get("lock_digest") != plan.lock_digest:
            log("the lock changed since the last run; applying it")
        for layer in plan.layers:  # a build's tools and source, before anything in the venv changes
            bootstrap_layers.check_before_install(layer, plan.wheel_cache, plan.offline)
        changed = bootstrap_install.install(plan, state)
        result = bootstrap_install.verify(plan)
    # The patches edit files inside packages, never which packages are installed.
    patches = bootstrap_install.apply_patches(plan)
    # After the patches, so the patched modules' bytecode is the one written.
    bytecode = bootstrap_summary.bytecode_note(plan) if changed else ""
    print(bootstrap_summary.summary(plan, result, changed, patches, time.monotonic() - started, bytecode))
    return 0 if result.ok else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.monotonic()
    try:
        if args.python_install and args.dry_run and not managed_python.installed_python(
                managed_python.default_python_dir()):
            print(bootstrap_python.planned_python_install(args))
            print("dry run: nothing was changed")
            return 0
        if args.python_install:
            python = bootstrap_python.managed_interpreter(args)
        else:
            python = bootstrap_python.choose_python(args.python, bootstrap_venv.resolve_venv(args.venv))
        plan = make_plan(args, python)
        bootstrap_wheels.check_glibc(plan, wheels.host_glibc())
        if args.dry_run:
            print(plan.describe())
            print("dry run: nothing was changed")
            return 0
        with run_lock.held("bootstrap", plan.venv, lambda pid: (
                f"another bin/bootstrap (process {pid}) is working on {plan.venv} now; let it finish (or "
                "stop it), then re-run bin/bootstrap if you still need to. Nothing was changed.")):
            return build(args, python, plan, started)
    except TtsrigError as exc:
        print(f"bootstrap: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a failure no check above foresaw: still one line, and the run is resumable
        print(f"bootstrap: {exc}. Fix the cause and re-run bin/bootstrap: it continues where it stopped.",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bootstrap: interrupted; re-run bin/bootstrap to continue where it stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
