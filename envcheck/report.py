"""`envcheck`: does this venv work on this CPU? One report, sections in the order a user debugs.

CPU and tier -> Python and venv -> lock conformance -> patches -> import probes -> smoke checks -> GPU ->
disk. Probes and smoke checks run in interpreters of their own (envcheck.together: the CPU ones share one, and
any of them that does not end well runs again alone), so a SIGILL or SIGFPE becomes a row that names the package
and the fix instead of killing the report.
The patch section is the venv's own answer too: `python -m patches status --json`, run by the venv's
interpreter in isolated mode (envcheck imports nothing from `patches`).
With `emulate`, the CPU probe and every check run under `qemu-x86_64 -cpu MODEL`.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from envcheck import gpu as gpu_probe
from envcheck import gpu_table, isolated, knowledge, locks, probes, tiers, together, wheels
from envcheck.errors import TtsrigError
from envcheck.isolated import CRASHED, EMULATION_SLOWDOWN, FAILED, OK, Check, Verdict
from envcheck.venv import STATE_NAME, python_version, read_state, site_packages

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("cpu", "python", "lock", "patches", "imports", "smoke", "gpu", "disk")
TITLES = {"cpu": "CPU and tier", "python": "Python and venv", "lock": "Lock conformance", "patches": "Patches",
          "imports": "Import probes", "smoke": "Smoke checks", "gpu": "GPU", "disk": "Disk"}
# One full F5TTS_v1_Base training checkpoint: 336 M parameters x (model + EMA + two AdamW moments) in float32.
CHECKPOINT_GB = 5.4
# The venv's own answer about its patches: -I ignores PYTHONPATH and the current folder, so the code that
# answers is the ttsrig installed in the venv (its editable install), not whatever checkout runs envcheck.
PATCH_QUERY = ("python", "-I", "-m", "patches", "status", "--json")


@dataclass
class Row:
    section: str
    name: str
    status: str
    detail: str
    seconds: float = 0.0
    signal: str | None = None
    needed: bool = True  # a row that is informational never makes the report fail

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Report:
    venv: Path
    python: str
    emulate: str | None
    cpu: dict = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    patches: dict[str, str] = field(default_factory=dict)  # patch name -> the state the venv reported

    @property
    def ok(self) -> bool:
        return all(r.status == OK for r in self.rows if r.needed)

    bytecode: str | None = None  # bytecode_note(venv) when the report started

    def to_json(self) -> dict:
        return {"ok": self.ok, "venv": str(self.venv), "python": self.python, "emulate": self.emulate,
                "tier": self.cpu.get("tier"), "cpu": self.cpu, "bytecode": self.bytecode,
                "checks": [r.to_json() for r in self.rows]}


# -- finding the venv -----------------------------------------------------------------------------

def resolve_venv(venv: str | None) -> Path:
    if venv:
        path = Path(venv).expanduser().absolute()
    elif sys.prefix != sys.base_prefix:
        path = Path(sys.prefix)  # .venv/bin/envcheck: the venv it runs in
    else:
        path = ROOT / ".venv"
    try:
        usable = (path / "pyvenv.cfg").exists() and (path / "bin" / "python").exists()
    except PermissionError:
        raise TtsrigError(f"cannot look into the venv {path}: permission denied (it belongs to another user, or a "
                          "folder above it is private). Run envcheck as its owner, or have them make it readable "
                          f"(chmod -R a+rX {path}).") from None
    if not usable:
        raise TtsrigError(f"{path} is not a venv. Build one with bin/bootstrap, or point envcheck at one: "
                          "--venv PATH. (Before installing, `envcheck probe` and `envcheck scan FILE` work "
                          "without a venv.)")
    return path


def check_env() -> dict[str, str]:
    # The checkout first, so `patches.checkpoints` is the one this report belongs to. The checks store the
    # bytecode of what they import in the venv (an empty PYTHONDONTWRITEBYTECODE overrides one the caller
    # set): after bootstrap's default --compile none, the first report compiles torch and the rest once, and
    # every later one starts from the stored bytecode (80 s against 13 s on two cores: tests/bench/).
    return {"PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": ""}


# A module every report's checks import, whose stored bytecode tells whether a first report still has to
# compile them (it is among the largest: numpy and the rest come with it).
BYTECODE_SENTINEL = ("torch", "__init__.py")


def bytecode_note(venv: Path) -> str | None:
    """What this report will cost beyond its checks, in one line, or None: the bytecode of the modules the
    checks import is stored in the venv already (or the venv has no torch to check)."""
    site = site_packages(venv)
    package, module = BYTECODE_SENTINEL
    if not (site / package / module).is_file():
        return None
    version = "".join((python_version(venv) or "").split(".")[:2])
    cached = site / package / "__pycache__" / f"{module[:-3]}.cpython-{version}.pyc"
    if cached.is_file():
        return None
    if not os.access(site / package, os.W_OK) or not os.access(site, os.W_OK):
        return (f"the venv {venv} is read-only for you, so the modules the checks import are compiled again on "
                f"every run (slower). Its owner can store them once: {venv}/bin/python -m compileall -q -j 0 {site}")
    return ("first check of this venv: the checks compile the modules they import and store the bytecode in the "
            "venv (once; later reports start from it)")


# -- sections -------------------------------------------------------------------------------------

def cpu_rows(report: Report) -> list[Row]:
    # avx2 (from CPUID, so the emulated CPU's under --emulate) says whether the hook turns NNPACK off.
    code = ("import json; from envcheck.probe import cpu_has_avx2, probe; "
            "cpu = probe().to_json(); cpu['avx2'] = cpu_has_avx2(); print(json.dumps(cpu))")
    timeout = 60.0 * (EMULATION_SLOWDOWN if report.emulate else 1)
    verdict = isolated.run_check(Check("probe", code, timeout), report.python, emulate=report.emulate,
                                 env=check_env())
    if verdict.status != OK:
        return [Row("cpu", "cpu tier", verdict.status, f"the probe did not run: {verdict.detail}",
                    verdict.seconds, verdict.signal)]
    report.cpu = json.loads(verdict.detail)
    cpu = report.cpu
    where = f"qemu-x86_64 -cpu {report.emulate}" if report.emulate else "this machine"
    detail = (f"{cpu['tier']}: {cpu['microarch']} ({cpu['level']}), {cpu['model_name']} [{where}]")
    if cpu.get("missing_for_next_tier"):
        detail += f"; lacks {', '.join(cpu['missing_for_next_tier'])} for {cpu['next_tier']}"
    return [Row("cpu", "cpu tier", OK, detail, round(verdict.seconds, 2))]


def python_problem(version: str, state: dict, venv: Path) -> str | None:
    """Why the venv's Python does not fit ttsrig's locks, or None: it must be a supported one, and the one of
    the lock the venv's record names (requirements/py3.X/<tier>.txt)."""
    rebuild = (f"build another venv with a supported one: bin/bootstrap --venv NEW --python python3.X "
               f"(3.X = {locks.supported_range()})")
    try:
        minor = locks.major_minor(version)
    except TtsrigError:
        return f"pyvenv.cfg names no Python version; {rebuild}"
    if minor not in locks.SUPPORTED_PYTHONS:
        return f"ttsrig's locks are for CPython {locks.supported_range()}: {rebuild}"
    recorded = re.search(r"(?:^|/)py(\d+\.\d+)/", str(state.get("lock") or ""))
    if recorded and locks.major_minor(recorded[1]) != minor:
        return (f"the venv's record names {state['lock']}, a lock for CPython {recorded[1]}: the venv "
                f"was changed after bin/bootstrap built it: remove {venv} and run bin/bootstrap --venv {venv} again")
    return None


def venv_rows(report: Report, state: dict) -> list[Row]:
    rows = []
    version = python_version(report.venv) or "?"
    problem = python_problem(version, state, report.venv)
    rows.append(Row("python", "python", FAILED if problem else OK,
                    f"CPython {version} in {report.venv}" + (f"; {problem}" if problem else "")))
    if not state:
        rows.append(Row("python", "built by bin/bootstrap", FAILED,
                        f"{report.venv} has no {STATE_NAME}: it was not built by bin/bootstrap. "
                        f"Run bin/bootstrap --venv {report.venv}"))
        return rows
    if not state.get("complete"):
        rows.append(Row("python", "built by bin/bootstrap", FAILED,
                        "an install was interrupted: run bin/bootstrap again to finish it"))
    else:
        rows.append(Row("python", "built by bin/bootstrap", OK,
                        f"tier {state.get('tier')} from {state.get('lock')}, {state.get('installed_at', '')}"))
    rows.append(wheels_row(report))
    cpu_tier, venv_tier = report.cpu.get("tier"), state.get("tier")
    if cpu_tier and venv_tier in tiers.TIER_NAMES:
        order = tiers.TIER_NAMES.index
        if order(venv_tier) > order(cpu_tier):
            rows.append(Row("python", "venv tier fits the CPU", FAILED,
                            f"this venv was built for {venv_tier}, this CPU is {cpu_tier}: its wheels may die with "
                            f"SIGILL. Build one for this CPU: bin/bootstrap --venv {report.venv} --tier {cpu_tier}"))
        else:
            note = "" if venv_tier == cpu_tier else f" (below the CPU's {cpu_tier}: runs, with older wheels)"
            rows.append(Row("python", "venv tier fits the CPU", OK, f"venv {venv_tier}, CPU {cpu_tier}{note}"))
    return rows


# What the venv's interpreter is now (not what pyvenv.cfg says it was), and the glibc it runs on.
RUNNING_PYTHON = "import os, platform; print(platform.python_version(), os.confstr('CS_GNU_LIBC_VERSION') or '')"


def wheels_row(report: Report) -> Row:
    """The installed wheels' tags (CPython ABI, manylinux glibc) against the interpreter and glibc that run them:
    a distribution upgrade that swaps the venv's Python or a copy to an older system shows here, not as an
    ImportError deep in a training run."""
    name = "wheels fit Python+glibc"
    verdict = isolated.run_check(Check("running python", RUNNING_PYTHON, 60.0), report.python, env=check_env())
    if verdict.status != OK:
        return Row("python", name, verdict.status, f"the venv's interpreter {report.python} does not run "
                   f"({verdict.detail}): its Python was removed or replaced. Rebuild: remove {report.venv} and "
                   f"run bin/bootstrap --venv {report.venv}", verdict.seconds, verdict.signal)
    version, _, libc = verdict.detail.partition(" ")
    target = wheels.Target(locks.major_minor(version), wheels.parse_glibc(libc))
    installed = wheels.installed_tags(site_packages(report.venv))
    wrong = wheels.misfits(installed, target)
    where = f"CPython {version}, {'glibc ' + libc.split()[-1] if target.glibc else 'no glibc'}"
    if wrong:
        return Row("python", name, FAILED,
                   f"{where}: {len(wrong)} installed wheel(s) do not run here: {'; '.join(wrong[:4])}"
                   f"{' ...' if len(wrong) > 4 else ''}. The venv's Python or system changed after the install: "
                   f"remove {report.venv} and run bin/bootstrap --venv {report.venv}")
    newest = wheels.newest_glibc_needed(installed, target)
    needs = f"; the newest glibc asked for is {newest[0][0]}.{newest[0][1]} ({newest[1]})" if newest else ""
    return Row("python", name, OK, f"{where}: all {len(installed)} installed wheels fit{needs}")


def recorded_layers(state: dict, lock_name: str, python: str) -> dict[str, Path | None]:
    """The layers the venv's record lists (bin/bootstrap --with): name -> its lock, or None for a built one."""
    names = state.get("layers") if isinstance(state.get("layers"), dict) else {}
    return {name: locks.layer_path(name, lock_name, python) for name in names if name in locks.LAYERS}


def built_layer_rows(venv: Path, state: dict, layers: dict[str, Path | None]) -> list[Row]:
    """A built layer (whisper.cpp on pre-v2): its programs in the venv's bin/."""
    from envcheck import whispercpp_build

    rows = []
    for name in (n for n, path in layers.items() if path is None):
        record = state["layers"][name] if isinstance(state["layers"][name], dict) else {}
        missing = [p for p in whispercpp_build.PROGRAMS if not (venv / "bin" / p).is_file()]
        detail = (f"whisper.cpp {record.get('whisper.cpp', '?')} ({record.get('build', '?')} build): "
                  f"{', '.join(whispercpp_build.PROGRAMS)} in {venv / 'bin'}")
        rows.append(Row("lock", f"{name} layer", FAILED if missing else OK,
                        f"{', '.join(missing)} missing from {venv / 'bin'}: re-run bin/bootstrap --with {name}"
                        if missing else detail))
    return rows


def layer_checks(state: dict, venv: Path, emulate: str | None) -> list[tuple[str, Check]]:
    """The ASR layer at work when the record lists it: faster-whisper transcribing a tiny random Whisper, or the
    built whisper-cli transcribing as ttsrig runs it (under --emulate, the binary runs under qemu)."""
    from envcheck import evidence

    record = (state.get("layers") if isinstance(state.get("layers"), dict) else {}).get("asr")
    if not isinstance(record, dict):
        return []
    if "lock" in record:
        check = next(c for c in evidence.ASR_CHECKS if c.name == "faster-whisper transcribe int8")
        return [("smoke", dataclasses.replace(check, name="ASR layer: faster-whisper transcribes",
                                              package="faster-whisper"))]
    check = evidence.whisper_cpp_checks(str(venv / "bin" / "whisper-cli"), emulate)[1]
    return [("smoke", dataclasses.replace(check, name="ASR layer: whisper-cli transcribes"))]


def lock_rows(report: Report, state: dict) -> list[Row]:
    venv_tier = state.get("tier") if state.get("tier") in tiers.TIER_NAMES else report.cpu.get("tier")
    if venv_tier not in tiers.TIER_NAMES:
        return [Row("lock", "lock conformance", FAILED, "no tier known for this venv; run bin/bootstrap")]
    table = tiers.load()
    python = python_version(report.venv) or "?"
    # The lock the record names when it is one of ttsrig's (a GPU lock is not its tier's), else the tier's.
    recorded = Path(str(state.get("lock") or "")).stem
    try:
        lock = locks.lock_path(recorded if recorded in locks.lock_names() else venv_tier, python)
        layers = recorded_layers(state, lock.stem, python)
    except TtsrigError as exc:
        return [Row("lock", "lock conformance", FAILED, f"no lock to compare with: {exc}")]
    pins = {**locks.parse_lock(lock), **locks.parse_lock(locks.REQUIREMENTS / "nodeps.txt")}
    for layer_lock in layers.values():
        if layer_lock:
            pins.update(locks.parse_lock(layer_lock))
    forbidden = {**table.tier(venv_tier).forbidden}
    if report.cpu.get("tier") in tiers.TIER_NAMES:
        forbidden.update(table.tier(report.cpu["tier"]).forbidden)
    have = locks.installed(site_packages(report.venv))
    result = locks.conformance(pins, have, list(forbidden), {"pip", "ttsrig"})
    rows = []
    if result.mismatched or result.missing:
        parts = [f"{n} {have[n]} (lock {want})" for n, (want, _) in sorted(result.mismatched.items())]
        parts += [f"{n} missing" for n in result.missing]
        rows.append(Row("lock", "versions equal the lock", FAILED,
                        f"{'; '.join(parts[:12])}{' ...' if len(parts) > 12 else ''}. "
                        f"Re-run bin/bootstrap --venv {report.venv} to restore {locks.display(lock)}"))
    else:
        with_layers = "".join(f" + {locks.display(path)}" for path in layers.values() if path)
        rows.append(Row("lock", "versions equal the lock", OK,
                        f"{len(pins)} packages equal {locks.display(lock)} + nodeps.txt{with_layers}"))
    rows += built_layer_rows(report.venv, state, layers)
    if result.forbidden_present:
        why = "; ".join(f"{n}: {forbidden.get(n, '')}" for n in result.forbidden_present)
        rows.append(Row("lock", "forbidden packages absent", FAILED,
                        f"present: {why}. bin/bootstrap removes them (or: uv pip uninstall them)"))
    else:
        rows.append(Row("lock", "forbidden packages absent", OK,
                        ", ".join(sorted(forbidden)) + " absent" if forbidden else "this tier forbids nothing"))
    rows.append(Row("lock", "extra packages", OK,
                    ", ".join(f"{n} {have[n]}" for n in result.extra) if result.extra else "none", needed=False))
    return rows


def ask_patches(report: Report) -> tuple[list[dict] | None, Verdict]:
    """`python -m patches status --json` in the venv, run like every check: under --emulate the emulated CPU
    decides what the start-up hook does about NNPACK. The patches as the venv reports them, or None."""
    tier = report.cpu.get("tier")
    program = PATCH_QUERY + (("--tier", tier) if tier else ())  # without a tier: the venv's recorded one
    timeout = 60.0 * (EMULATION_SLOWDOWN if report.emulate else 1)
    verdict = isolated.run_check(Check("patches status", "", timeout, program), report.python,
                                 emulate=report.emulate)
    return (patches_in(verdict.output) if verdict.status in (OK, FAILED) else None), verdict


def patches_in(output: str) -> list[dict] | None:
    """The patch list of a `patches status --json` answer; None for anything else."""
    try:
        patches = json.loads(output)["patches"]
    except (ValueError, TypeError, KeyError):
        return None
    fields = {"name", "state", "detail", "ok"}
    whole = isinstance(patches, list) and all(isinstance(p, dict) and fields <= p.keys() for p in patches)
    return patches if whole else None


def patch_rows(report: Report) -> list[Row]:
    patches, verdict = ask_patches(report)
    if patches is None:
        return [Row("patches", "patches status", FAILED if verdict.status == OK else verdict.status,
                    f"`python -m patches status --json` gave no answer in the venv: {verdict.detail}. "
                    f"Re-run bin/bootstrap --venv {report.venv} (it installs ttsrig into the venv and applies "
                    "the patches)", verdict.seconds, verdict.signal)]
    rows = []
    for patch in patches:
        name, state, detail, good = patch["name"], patch["state"], patch["detail"], patch["ok"]
        report.patches[name] = state
        hint = "" if good or "python -m patches" in detail else \
            f"; run {report.venv}/bin/python -m patches apply"
        rows.append(Row("patches", name, OK if good else FAILED, f"{state}: {detail}{hint}"))
    return rows


def has_nvidia_driver() -> bool:
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


def card_rows(site: Path, view: gpu_probe.GpuView) -> list[Row]:
    """Each GPU this process sees against the venv's torch, without running it: kernels for its compute
    capability (the wheel's recorded arch list, envcheck/data/gpus.json) and a driver new enough for its CUDA."""
    if view.source is None and not [p for p in view.problems if not p.startswith("no ")]:
        return []  # no driver: the CUDA device row says so
    if not view.gpus:
        why = "; ".join(line.split(":", 1)[1].strip() for line in gpu_probe.summary(view))
        return [Row("gpu", "GPUs", OK if view.source else FAILED, why, needed=view.source is not None)]
    torch = locks.installed(site).get("torch")
    build = gpu_table.load().build(torch) if torch else None
    rows = []
    for card in view.gpus:
        name = f"GPU {card.index} kernels"
        if build is None:
            rows.append(Row("gpu", name, FAILED, f"{card.name} ({card.sm}): torch {torch or 'is not installed'} is not "
                            "in envcheck/data/gpus.json, so its kernels are unknown; run bin/bootstrap"))
        elif not build.runs_on(card.capability):
            rows.append(Row("gpu", name, FAILED, f"{card.name} ({card.sm}): torch {torch} has kernels for "
                            f"{' '.join(build.arch)} only: run bin/bootstrap (it picks the lock for this card), or "
                            "use --device cpu"))
        elif view.driver and not build.driver_ok(view.driver):
            rows.append(Row("gpu", name, FAILED, f"{card.name}: driver {view.driver} is older than {build.min_driver}, "
                            f"which torch {torch} (CUDA {build.cuda}) needs: update the NVIDIA driver"))
        else:
            rows.append(Row("gpu", name, OK, f"{card.name} ({card.sm}): torch {torch} (CUDA {build.cuda}) has "
                            f"kernels for it; driver {view.driver or 'unknown'}"))
    return rows


def disk_rows(checkpoints: Path) -> list[Row]:
    probe_at = checkpoints
    while not probe_at.exists() and probe_at != probe_at.parent:
        probe_at = probe_at.parent
    free_gb = shutil.disk_usage(probe_at).free / 1e9
    enough = free_gb >= CHECKPOINT_GB
    detail = (f"{free_gb:.1f} GB free at {checkpoints}" +
              ("" if enough else f": one full F5 training checkpoint takes about {CHECKPOINT_GB} GB. Free space "
               "or write checkpoints elsewhere (--checkpoints DIR here, --out in the trainers)"))
    return [Row("disk", "space for checkpoints", OK if enough else FAILED, detail)]


# -- probes and their verdicts --------------------------------------------------------------------

def explain(verdict: Verdict, package: str, report: Report, hook_state: str) -> str:
    """A crash's detail in the user's terms: which package, why, and what to do."""
    if verdict.status != CRASHED:
        return verdict.detail
    version = locks.installed(site_packages(report.venv)).get(locks.canonical(package), "?") if package else "?"
    tier = report.cpu.get("tier", "?")
    rebuild = f"bin/bootstrap --venv {report.venv} --tier {tier}"
    if verdict.signal == "SIGILL":
        for entry in knowledge.known_for(package, version, tier):
            if entry.needs:
                return (f"killed by SIGILL: {package} {version} needs tier {entry.needs}, this CPU is {tier} "
                        f"({entry.why}). Build the venv for this CPU: {rebuild} (or: {entry.fix})")
        return (f"killed by SIGILL: an instruction this CPU lacks. {package} {version}, or a compiled package it "
                f"imports, was built for a higher x86-64 level than this CPU's ({tier}). Build the venv for this "
                f"CPU: {rebuild}")
    if verdict.signal == "SIGFPE":
        switched_off = [k for k in ("TTSRIG_SITE", "TTSRIG_ONEDNN_FIX") if os.environ.get(k) == "0"]
        off = f", but {'/'.join(switched_off)}=0 in this environment switches it off" if switched_off else ""
        return ("killed by SIGFPE: the known oneDNN arithmetic fault of torch on old AMD CPUs. The sitecustomize "
                f"patch turns oneDNN off there (its status here: {hook_state}{off}); apply it: "
                f"{report.venv}/bin/python -m patches apply")
    return verdict.detail


def run_probes(report: Report, checks: list[tuple[str, Check]], jobs: int | None) -> list[Row]:
    if report.emulate:
        checks = [(s, dataclasses.replace(c, timeout=c.timeout * EMULATION_SLOWDOWN)) for s, c in checks]
    verdicts = together.run_all([c for _, c in checks], report.python, emulate=report.emulate, env=check_env(),
                                jobs=jobs)
    hook_state = report.patches.get("sitecustomize", "unknown")
    return [Row(section, v.name, v.status, explain(v, check.package, report, hook_state), round(v.seconds, 2),
                v.signal) for (section, check), v in zip(checks, verdicts)]


def build(venv: str | None = None, *, emulate: str | None = None, checkpoints: Path | None = None,
          only: list[str] | None = None, jobs: int | None = None,
          say: Callable[[str], None] = lambda line: None) -> Report:
    """The report of one venv; `say` hears, before the checks start, what this run will cost beyond them."""
    path = resolve_venv(venv)
    if emulate:
        isolated.qemu_command(emulate)  # says how to install qemu-user when it is missing
    report = Report(path, str(path / "bin" / "python"), emulate, bytecode=bytecode_note(path))
    if report.bytecode:
        say(report.bytecode)
    state = read_state(path) or {}  # unreadable: reported as not built by bin/bootstrap
    report.rows += cpu_rows(report)
    report.rows += venv_rows(report, state)
    report.rows += lock_rows(report, state)
    report.rows += patch_rows(report)
    checks = [("imports", c) for c in probes.IMPORTS] + [("smoke", c) for c in probes.SMOKE]
    gpu = not emulate and has_nvidia_driver()
    if gpu:
        checks += [("gpu", c) for c in probes.GPU]
    checks += layer_checks(state, path, emulate)
    if only:
        checks = [(s, c) for s, c in checks if c.name in only]
    report.rows += run_probes(report, checks, jobs)
    if not emulate:
        report.rows += card_rows(site_packages(path), gpu_probe.probe())
    if not gpu:
        why = "not checked under emulation" if emulate else "no NVIDIA driver found: CPU only"
        report.rows.append(Row("gpu", "CUDA device", OK, why, needed=False))
    report.rows += disk_rows(checkpoints or ROOT / "runs")
    report.rows.sort(key=lambda r: SECTIONS.index(r.section))
    return report


# -- output ---------------------------------------------------------------------------------------

MARK = {OK: "ok", CRASHED: "CRASHED", FAILED: "FAILED", isolated.TIMED_OUT: "TIMED OUT"}


def render(report: Report) -> str:
    lines = []
    section = None
    for row in report.rows:
        if row.section != section:
            section = row.section
            lines.append(f"\n{TITLES[section]}")
        took = f" ({row.seconds:.1f} s)" if row.seconds >= 0.05 and row.section in ("imports", "smoke", "gpu") else ""
        lines.append(f"  {MARK.get(row.status, row.status):9s} {row.name:26s} {row.detail}{took}")
    bad = [r for r in report.rows if r.needed and r.status != OK]
    verdict = ("everything needed works" if not bad else
               f"{len(bad)} problem(s): " + ", ".join(r.name for r in bad))
    lines.append(f"\nenvcheck: {verdict}" + (f" (under qemu-x86_64 -cpu {report.emulate})" if report.emulate else ""))
    return "\n".join(lines).lstrip("\n")
