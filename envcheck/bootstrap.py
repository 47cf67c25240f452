"""bin/bootstrap: one command from a clean checkout to a verified venv for this CPU.

Steps: create the venv and install archspec and uv -> probe the CPU (CPUID needs
archspec) -> pick requirements/<tier>.txt -> install the lock (hash-checked, --no-deps) -> install the --no-deps packages and
build the Cython extension against the pinned numpy -> remove what the tier
forbids -> install ttsrig itself -> apply patches -> verify -> summary.

Standard library only: it runs with the system's Python before the venv exists.
A state file in the venv records the lock it was built from, so a re-run on a
complete environment only verifies, a changed lock is applied, and a run that
was killed half-way is completed by the next one.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path

from envcheck import locks
from envcheck import tiers as tiers_mod
from envcheck.atomic import write_json_atomic
from envcheck.errors import TtsrigError

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements"
STATE_NAME = "ttsrig-state.json"
SUPPORTED_PYTHON = (3, 11)
MIN_FREE_GB = 8.0  # a torch venv is 5-7 GB; leave room for uv's temporary files
PROJECT_DIST = "ttsrig"

# What an installer's failure output means, and what the user should do next.
FAILURE_HINTS = (
    (("hash mismatch", "hashes do not match", "do not match the hashes", "Hash mismatch"),
     "a downloaded file does not match the hash in {lock}: the lock was edited by hand or is corrupt. "
     "Restore it with `git checkout -- {lock}` or regenerate it with bin/lock."),
    (("No space left on device",),
     "the disk is full. Free space where the venv and the cache live ({venv}, ~/.cache), then re-run "
     "bin/bootstrap: it continues where it stopped."),
    (("Failed to fetch", "dns error", "Connection refused", "Network is unreachable",
      "Temporary failure in name resolution", "connect error", "NewConnectionError", "timed out"),
     "the package index could not be reached (no network?). Connect and re-run bin/bootstrap: it "
     "continues where it stopped; with a warm cache, `--offline` installs without the network."),
    (("command 'gcc' failed", "gcc: not found", "error: command 'cc'", "No such file or directory: 'gcc'",
      "unable to execute 'gcc'"),
     "building the monotonic-align extension needs a C compiler: install one (Debian/Ubuntu: "
     "`sudo apt-get install build-essential python3.11-dev`) and re-run bin/bootstrap."),
)


@dataclass
class Plan:
    tier: str
    probed_tier: str | None
    lock: Path
    nodeps: Path
    venv: Path
    python: str
    installer: str
    offline: bool
    lock_digest: str
    warnings: list[str] = field(default_factory=list)
    cpu: str = "unknown"
    pins: dict[str, locks.Pin] = field(default_factory=dict)  # the tier lock and nodeps.txt together
    cpuid_read: bool = False  # did the probe read CPUID (it needs archspec, which the venv brings)?

    @property
    def venv_python(self) -> Path:
        return self.venv / "bin" / "python"

    def describe(self) -> str:
        tier = self.tier if self.tier == self.probed_tier else f"{self.tier} (probed: {self.probed_tier or 'unknown'})"
        steps = [
            f"create the venv {self.venv} with {self.python} (if missing)",
            f"pip install --require-hashes --no-deps -r {rel(REQUIREMENTS / 'bootstrap.txt')}",
            f"{self.installer} install --require-hashes --no-deps -r {rel(self.lock)}",
            f"{self.installer} install --require-hashes --no-deps --no-build-isolation -r {rel(self.nodeps)}"
            " (builds monotonic-align against the pinned numpy)",
            f"remove what tier {self.tier} forbids: {', '.join(forbidden(self.tier)) or 'nothing'}",
            f"install ttsrig itself (editable) so `{self.venv}/bin/envcheck` exists",
            "apply patches (python -m patches apply), if the patches tool is present",
            "verify: installed versions equal the lock; CPU probe",
        ]
        lines = [f"cpu:  {self.cpu}", f"tier: {tier}", f"lock: {rel(self.lock)}", "plan:"]
        lines += [f"  {i}. {s}" for i, s in enumerate(steps, 1)]
        return "\n".join([*(f"warning: {w}" for w in self.warnings), *lines])


def rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def forbidden(tier: str) -> list[str]:
    return sorted(tiers_mod.load().tier(tier).forbidden)


def log(message: str) -> None:
    print(f"bootstrap: {message}", file=sys.stderr, flush=True)


def digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(path.read_bytes())
    return h.hexdigest()


def site_packages(venv: Path) -> Path:
    return venv / "lib" / f"python{SUPPORTED_PYTHON[0]}.{SUPPORTED_PYTHON[1]}" / "site-packages"


# --- checks before any work ------------------------------------------------


def check_python(python: str) -> str:
    """Resolve --python and make sure it is CPython 3.11 with a working venv module."""
    exe = shutil.which(python) or python
    if not Path(exe).exists():
        raise TtsrigError(f"Python interpreter {python!r} not found. ttsrig needs CPython 3.11: install it "
                          "(Debian/Ubuntu: `sudo apt-get install python3.11 python3.11-venv`, or pyenv) "
                          "and pass --python /path/to/python3.11.")
    probe = ("import sys, platform; print(platform.python_implementation(), *sys.version_info[:2]);"
             "import venv, ensurepip")
    out = subprocess.run([exe, "-c", probe], capture_output=True, text=True)
    first = (out.stdout.split("\n")[0] or "").split()
    if len(first) == 3 and (first[0], int(first[1]), int(first[2])) != ("CPython", *SUPPORTED_PYTHON):
        raise TtsrigError(f"{exe} is {first[0]} {first[1]}.{first[2]}; ttsrig's locks are for CPython 3.11 "
                          "only. Install Python 3.11 and pass --python /path/to/python3.11.")
    if out.returncode != 0:
        if "ensurepip" in out.stderr or "venv" in out.stderr:
            raise TtsrigError(f"{exe} has no working `venv` module. Install it (Debian/Ubuntu: "
                              "`sudo apt-get install python3.11-venv`) and re-run bin/bootstrap.")
        raise TtsrigError(f"{exe} does not run: {out.stderr.strip().splitlines()[-1:] or out.returncode}")
    return exe


def check_disk(venv: Path) -> None:
    target = venv if venv.exists() else venv.parent
    while not target.exists():
        target = target.parent
    free_gb = shutil.disk_usage(target).free / 1e9
    if free_gb < MIN_FREE_GB and not (venv / STATE_NAME).exists():
        raise TtsrigError(f"only {free_gb:.1f} GB free at {target}; a ttsrig venv needs about "
                          f"{MIN_FREE_GB:.0f} GB (torch with its CUDA libraries). Free some space or "
                          "choose another place with --venv PATH.")


def is_system_prefix(venv: Path) -> bool:
    """True if `venv` is a Python installation's own prefix rather than a virtual environment."""
    prefixes = {Path(p).resolve() for p in (sys.base_prefix, sysconfig.get_paths()["data"], "/usr", "/usr/local")}
    return venv.resolve() in prefixes and not (venv / "pyvenv.cfg").exists()


# --- probing ---------------------------------------------------------------


def probe_cpu(venv: Path, python: str) -> dict:
    """The probe's JSON, run in the venv's Python when it has archspec (CPUID), else here."""
    candidate = venv / "bin" / "python"
    exe = str(candidate) if candidate.exists() else python
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([exe, "-m", "envcheck", "probe", "--json"], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise TtsrigError(out.stderr.strip().removeprefix("envcheck: ") or "the CPU probe failed")
    return json.loads(out.stdout)


def make_plan(args: argparse.Namespace, python: str) -> Plan:
    table = tiers_mod.load()
    venv = Path(args.venv).absolute()
    cpu = probe_cpu(venv, python)
    probed, warnings = cpu["tier"], list(cpu["warnings"])
    tier = args.tier or probed
    if args.tier and probed and table.rank(args.tier) > table.rank(probed):
        warnings.append(f"--tier {args.tier} is above this CPU's tier ({probed}): its wheels may die with "
                        "SIGILL here. Use it only to build an environment for another machine.")
    lock = REQUIREMENTS / table.tier(tier).lock
    nodeps = REQUIREMENTS / "nodeps.txt"
    # Parsing refuses unhashed or hand-edited pins before anything is touched.
    locks.parse_lock(REQUIREMENTS / "bootstrap.txt")
    pins = {**locks.parse_lock(lock), **locks.parse_lock(nodeps)}
    return Plan(tier, probed, lock, nodeps, venv, python, args.installer, args.offline,
                digest(lock, nodeps, REQUIREMENTS / "bootstrap.txt"), warnings,
                f"{cpu['model_name']} ({cpu['microarch']}, {cpu['level']})", pins,
                bool(cpu["sources"].get("cpuid", {}).get("ok")))


def plan_after_cpuid(args: argparse.Namespace, python: str, first: Plan) -> Plan:
    """Re-plan from a probe that reads CPUID: create the venv and install archspec into it first.

    Before the venv exists the probe has only /proc/cpuinfo and glibc; CPUID is the view that
    sees what the CPU itself reports (and the only one that follows qemu's emulated CPU).
    """
    check_disk(first.venv)
    ensure_venv(first)
    ensure_bootstrap_tools(first)
    return make_plan(args, python)


# --- running installers ----------------------------------------------------


def run(cmd: list[str], plan: Plan, what: str) -> None:
    """Run an installer step, streaming its output; turn a failure into a clear message."""
    log(what)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "VIRTUAL_ENV"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_CONFIG_FILE"] = os.devnull  # machine-local indexes and constraints must not change the lock
    env["VIRTUAL_ENV"] = str(plan.venv)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            bufsize=1)
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stderr.write(line)
        tail = (tail + [line])[-200:]
    if proc.wait() != 0:
        output = "".join(tail)
        for needles, hint in FAILURE_HINTS:
            if any(n in output for n in needles):
                raise TtsrigError(f"{what} failed: " + hint.format(lock=rel(plan.lock), venv=plan.venv))
        raise TtsrigError(f"{what} failed (exit {proc.returncode}); its output is above. Re-run bin/bootstrap "
                          "to continue: finished steps are not repeated.")


def installer_cmd(plan: Plan, *args: str) -> list[str]:
    if plan.installer == "uv":
        uv = plan.venv / "bin" / "uv"
        # --compile-bytecode: uv skips it by default (pip does it); without .pyc files every import of
        # torch, transformers and f5_tts recompiles them, twice as slow (four times under emulation).
        cmd = [str(uv), "pip", "install", "--python", str(plan.venv_python), "--no-config", "--compile-bytecode"]
        if plan.offline:
            cmd.append("--offline")
    else:
        cmd = [str(plan.venv_python), "-m", "pip", "install", "--no-input"]
        if plan.offline:
            cmd.append("--no-index")
    return cmd + list(args)


def uninstall_cmd(plan: Plan, names: list[str]) -> list[str]:
    if plan.installer == "uv":
        return [str(plan.venv / "bin" / "uv"), "pip", "uninstall", "--python", str(plan.venv_python), *names]
    return [str(plan.venv_python), "-m", "pip", "uninstall", "-y", *names]


# --- the steps -------------------------------------------------------------


def load_state(venv: Path) -> dict:
    path = venv / STATE_NAME
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        log(f"{path} is unreadable; treating the venv as incomplete")
        return {}


def ensure_venv(plan: Plan) -> None:
    venv = plan.venv
    if is_system_prefix(venv):
        raise TtsrigError(f"{venv} is a Python installation, not a virtual environment; bin/bootstrap never "
                          "installs into the system's site-packages. Choose another --venv.")
    if (venv / "pyvenv.cfg").exists():
        ok = plan.venv_python.exists() and subprocess.run(
            [str(plan.venv_python), "-c", "import sys; sys.exit(sys.version_info[:2] != (3, 11))"]).returncode == 0
        if ok:
            return
        log(f"{venv} is a broken or non-3.11 venv; recreating it")
        if not (venv / STATE_NAME).exists() and any(site_packages(venv).glob("*.dist-info")):
            raise TtsrigError(f"{venv} is a venv that ttsrig did not create and its Python does not work. "
                              "Move it away or choose another --venv.")
        shutil.rmtree(venv)
    elif venv.exists() and any(venv.iterdir()):
        raise TtsrigError(f"{venv} exists and is not a virtual environment. Move it away or choose another --venv.")
    log(f"creating {venv}")
    subprocess.run([plan.python, "-m", "venv", str(venv)], check=True)


def ensure_bootstrap_tools(plan: Plan) -> None:
    pins = locks.parse_lock(REQUIREMENTS / "bootstrap.txt")
    have = locks.installed(site_packages(plan.venv))
    if all(have.get(n) == p.version for n, p in pins.items()):
        return
    cmd = [str(plan.venv_python), "-m", "pip", "install", "--no-input", "--require-hashes", "--no-deps",
           "-r", str(REQUIREMENTS / "bootstrap.txt")]
    if plan.offline:
        cmd.append("--no-index")
    run(cmd, plan, "installing the installer (uv) and the CPU reader (archspec)")


def verify(plan: Plan) -> locks.Conformance:
    have = locks.installed(site_packages(plan.venv))
    allowed = {"pip", PROJECT_DIST}
    return locks.conformance(plan.pins, have, forbidden(plan.tier), allowed)


def install(plan: Plan, state: dict) -> list[str]:
    """Bring the venv to the plan. Returns what was done."""
    done: list[str] = []
    ensure_venv(plan)
    ensure_bootstrap_tools(plan)
    previous_pins = set(state.get("packages", []))
    write_json_atomic(plan.venv / STATE_NAME, {**state, "complete": False, "installing": plan.lock_digest})

    run(installer_cmd(plan, "--require-hashes", "--no-deps", "-r", str(plan.lock)), plan,
        f"installing {rel(plan.lock)}")
    done.append(f"installed {rel(plan.lock)}")
    run(installer_cmd(plan, "--require-hashes", "--no-deps", "--no-build-isolation", "-r", str(plan.nodeps)),
        plan, f"installing {rel(plan.nodeps)} (building monotonic-align against the pinned numpy)")
    done.append(f"installed {rel(plan.nodeps)}")

    have = locks.installed(site_packages(plan.venv))
    # Remove what the tier forbids, and what an earlier lock installed that this one dropped.
    dropped = sorted(n for n in previous_pins if n not in plan.pins and n in have)
    remove = sorted({locks.canonical(f) for f in forbidden(plan.tier)} & set(have)) + dropped
    if remove:
        run(uninstall_cmd(plan, remove), plan, f"removing {', '.join(remove)}")
        done.append(f"removed {', '.join(remove)}")

    run(installer_cmd(plan, "--no-deps", "--no-build-isolation", "-e", str(ROOT)), plan,
        "installing ttsrig itself (editable)")
    write_json_atomic(plan.venv / STATE_NAME, {
        "complete": True, "tier": plan.tier, "lock": rel(plan.lock), "lock_digest": plan.lock_digest,
        "packages": sorted(plan.pins), "installed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    return done


def apply_patches(plan: Plan) -> str:
    """Run the patches tool in the venv, where it exists (it comes with the patches work)."""
    if not (ROOT / "patches" / "__main__.py").exists():
        return "none yet (the patches tool is not part of this checkout)"
    out = subprocess.run([str(plan.venv_python), "-m", "patches", "apply", "--tier", plan.tier],
                         capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    sys.stderr.write(out.stdout + out.stderr)
    if out.returncode != 0:
        raise TtsrigError("applying the patches failed; see the message above. The environment is installed; "
                          "fix the cause and re-run bin/bootstrap.")
    return "; ".join(line.split(" (")[0] for line in out.stdout.splitlines()) or "applied"


def summary(plan: Plan, result: locks.Conformance, changed: list[str], patches: str, seconds: float) -> str:
    lines = [
        f"cpu:       {plan.cpu}",
        f"venv:      {plan.venv}",
        f"tier:      {plan.tier}" + ("" if plan.tier == plan.probed_tier else f" (CPU probed as {plan.probed_tier})"),
        f"lock:      {rel(plan.lock)} + {rel(plan.nodeps)} ({len(plan.pins)} packages)",
        f"changes:   {'; '.join(changed) if changed else 'nothing changed'}",
        f"versions:  {'all equal the lock' if result.ok else 'DIFFER from the lock'}",
    ]
    for name, (want, got) in sorted(result.mismatched.items()):
        lines.append(f"  {name}: locked {want}, installed {got}")
    if result.missing:
        lines.append(f"  missing: {', '.join(result.missing)}")
    if result.forbidden_present:
        lines.append(f"  forbidden on {plan.tier}: {', '.join(result.forbidden_present)}")
    if result.extra:
        lines.append(f"extra:     {', '.join(result.extra)} (not in the lock; left alone)")
    lines.append(f"time:      {seconds:.1f} s")
    lines.append(f"patches:   {patches}")
    lines.append(f"next:      {plan.venv}/bin/envcheck probe")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bin/bootstrap", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tier", choices=tiers_mod.TIER_NAMES, help="override the probed tier")
    parser.add_argument("--venv", default=str(ROOT / ".venv"), help="where to build the venv (default: .venv)")
    parser.add_argument("--python", default=None, help="the CPython 3.11 to build the venv with")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
    parser.add_argument("--installer", choices=("uv", "pip"), default="uv",
                        help="uv (default, fast) or pip (the fallback)")
    parser.add_argument("--offline", action="store_true", help="install from the installer's cache only")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.monotonic()
    try:
        python = check_python(args.python or sys.executable)
        plan = make_plan(args, python)
        if args.dry_run:
            print(plan.describe())
            print("dry run: nothing was changed")
            return 0
        if not plan.cpuid_read:
            plan = plan_after_cpuid(args, python, plan)
        for warning in plan.warnings:
            log(f"warning: {warning}")
        check_disk(plan.venv)
        state = load_state(plan.venv)
        current = (state.get("complete") and state.get("lock_digest") == plan.lock_digest
                   and state.get("tier") == plan.tier)
        changed: list[str] = []
        result = verify(plan)
        if current and result.ok and plan.venv_python.exists():
            log("environment is complete and matches the lock; verifying only")
        else:
            if state.get("installing") or (state and not state.get("complete")):
                log("continuing an installation that did not finish")
            elif state.get("lock_digest") and state.get("lock_digest") != plan.lock_digest:
                log("the lock changed since the last run; applying it")
            changed = install(plan, state)
            result = verify(plan)
        patches = apply_patches(plan)  # patches edit files inside packages, never which packages are installed
        print(summary(plan, result, changed, patches, time.monotonic() - started))
        return 0 if result.ok else 1
    except TtsrigError as exc:
        print(f"bootstrap: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bootstrap: interrupted; re-run bin/bootstrap to continue where it stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
