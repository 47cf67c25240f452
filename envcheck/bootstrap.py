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
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from envcheck import gpu, gpu_choice, locks, managed_python, paths, run_lock, warm_up, wheels
from envcheck import tiers as tiers_mod
from envcheck.atomic import TEMP_SUFFIX
from envcheck.digests import file_sha256
from envcheck.errors import TtsrigError
from envcheck.venv import (PATCH_BACKUP_DIR, PATCH_STATE_NAME, STATE_NAME, read_state, recorded_python,
                           site_packages, state_path, write_state)

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements"
# What `python -m venv`, the installers and the patches put at the top of a venv: a rebuild removes
# only these, so anything else a user keeps in the folder survives.
VENV_ENTRIES = frozenset({"bin", "include", "lib", "lib64", "share", "etc", "pyvenv.cfg",
                          PATCH_BACKUP_DIR, PATCH_STATE_NAME})
WHEELHOUSE_ENV = "TTSRIG_WHEELHOUSE"
# Which bytecode bootstrap compiles: none (each module is compiled on its first import), every installed module
# (the installer's --compile-bytecode), or only what ttsrig's commands import (envcheck.warm_up: one interpreter
# imports it all, which writes its .pyc files). tests/bench/bench_bootstrap.py measures the trade-off
# (tests/bench/README.md): on 2 cores, none makes a fresh bootstrap 8 s instead of 31 s (all) or 36 s (used),
# and the first command's imports take 18 s longer natively, 82 s under qemu -cpu phenom, once.
COMPILE_CHOICES = ("none", "all", "used")
DEFAULT_COMPILE = "none"
WHEEL_CACHE_ENV = "TTSRIG_WHEEL_CACHE"
MIN_FREE_GB = 8.0  # a torch venv is 5-7 GB; leave room for uv's temporary files
PROJECT_DIST = "ttsrig"

HASH_MISMATCH = ("hash mismatch", "hashes do not match", "do not match the hashes", "Hash mismatch")
# The package an installer names when a file does not match its hash (uv, then pip).
MISMATCHED_PIN = (re.compile(r"Hash mismatch for `([A-Za-z0-9._-]+)==([^`\s]+)`"),
                  re.compile(r"^\s+([A-Za-z0-9._-]+)==(\S+) from \S", re.M))
# An installer found no file for a pin: in a wheelhouse it is missing; from the index, the pin is wrong.
NOT_FOUND = ("was not found in the provided package locations", "No matching distribution found",
             "there is no version of")
# What an installer's failure output means, and what the user should do next.
FAILURE_HINTS = (
    (HASH_MISMATCH,
     "a downloaded file does not match the hash in {lock}: the lock was edited by hand or is corrupt. "
     "Restore it with `git checkout -- requirements/` or regenerate it with bin/lock."),
    (("was not found in the cache", "wasn't found in the cache"),
     "offline, and a package of {lock} is not in uv's cache: connect and re-run bin/bootstrap (it "
     "continues where it stopped), or copy every file of the locks into a folder and pass --wheelhouse DIR."),
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
     "`sudo apt-get install build-essential python{python}-dev`) and re-run bin/bootstrap."),
)


def default_wheel_cache() -> Path:
    """Where bootstrap keeps the installer's own wheels so that an offline run finds them."""
    if os.environ.get(WHEEL_CACHE_ENV):
        return Path(os.environ[WHEEL_CACHE_ENV]).expanduser().absolute()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser().absolute() / "ttsrig" / "wheels"


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
    wheelhouse: Path | None = None  # a folder of every file of the locks: install from it, never the index
    wheel_cache: Path = field(default_factory=default_wheel_cache)
    # The version of `python`, e.g. '3.12.1' (make_plan sets it; a Plan made by hand gets this process's).
    python_version: str = field(default_factory=lambda: ".".join(map(str, sys.version_info[:3])))
    compile: str = DEFAULT_COMPILE  # which .pyc files bootstrap writes: COMPILE_CHOICES
    gpu_class: str = gpu_choice.CPU_ONLY  # the GPU class the lock was chosen for (envcheck.gpu_choice)
    gpu_why: str = ""  # why that lock, in one phrase
    gpu_lines: list[str] = field(default_factory=list)  # what the GPU probe saw (envcheck.gpu.summary)

    @property
    def python_minor(self) -> str:
        """'3.12': the Python of the lock and of the venv's lib/python3.X."""
        return locks.python_name(locks.major_minor(self.python_version))

    @property
    def venv_python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def wheel_folders(self) -> list[Path]:
        """Where pip looks for the installer's own wheels (requirements/bootstrap.txt)."""
        return [*([self.wheelhouse] if self.wheelhouse else []), self.wheel_cache]

    def source_args(self) -> list[str]:
        """The installer options that say where packages come from: the index, uv's cache, a wheelhouse."""
        offline = ["--offline" if self.installer == "uv" else "--no-index"] if self.offline else []
        if self.wheelhouse:
            return ["--no-index", "--find-links", str(self.wheelhouse), *(offline if self.installer == "uv" else [])]
        return offline

    def describe(self) -> str:
        tier = self.tier if self.tier == self.probed_tier else f"{self.tier} (probed: {self.probed_tier or 'unknown'})"
        links = " ".join(f"--find-links {folder}" for folder in self.wheel_folders)
        sources = "".join(f" {arg}" for arg in self.source_args())
        fetch = "" if self.offline or self.wheelhouse else f" (downloaded into {self.wheel_cache} once, if missing)"
        steps = [
            f"create the venv {self.venv} with {self.python} (if missing; only a venv holding bootstrap's "
            f"{STATE_NAME} is ever rebuilt, and files bootstrap did not make are left)",
            f"pip install --require-hashes --no-deps --no-index {links} -r {rel(REQUIREMENTS / 'bootstrap.txt')}"
            + fetch,
            f"{self.installer} install{sources} --require-hashes --no-deps -r {rel(self.lock)}",
            f"{self.installer} install{sources} --require-hashes --no-deps --no-build-isolation -r "
            f"{rel(self.nodeps)} (builds monotonic-align against the pinned numpy)",
            f"remove what tier {self.tier} forbids: {', '.join(forbidden(self.tier)) or 'nothing'}",
            f"install ttsrig itself (editable) so `{self.venv}/bin/envcheck` exists",
            "apply patches (python -m patches apply)",
            "verify: installed versions equal the lock; CPU probe",
        ]
        lines = [f"cpu:  {self.cpu}", f"tier: {tier}", *self.gpu_lines,
                 f"python: CPython {self.python_version} ({self.python})",
                 f"lock: {rel(self.lock)} (for GPU class {self.gpu_class}: {self.gpu_why})", "plan:"]
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


# --- checks before any work ------------------------------------------------


# Prints "CPython 3 12 1", then fails if the venv module or ensurepip (which venv needs for pip) is missing.
PYTHON_PROBE = ("import sys, platform; print(platform.python_implementation(), *sys.version_info[:3]);"
                "import venv, ensurepip")
INSTALL_HINT = ("`sudo apt-get install python3 python3-venv` (the python3 of Ubuntu 22.04 and 24.04 and of "
                "Debian 12 and 13 is supported)")


@dataclass(frozen=True)
class Interpreter:
    """What a Python said about itself when asked by PYTHON_PROBE."""

    path: str
    implementation: str = ""
    version: tuple[int, ...] = ()  # empty: it did not run as a Python
    has_venv: bool = False
    error: str = ""  # the last line it wrote to stderr

    @property
    def name(self) -> str:
        """'CPython 3.12.1'."""
        return f"{self.implementation} {'.'.join(map(str, self.version))}"

    @property
    def minor(self) -> tuple[int, int]:
        return locks.major_minor(self.version)

    @property
    def supported(self) -> bool:
        return self.implementation == "CPython" and len(self.version) >= 2 and self.minor in locks.SUPPORTED_PYTHONS


def inspect_python(exe: str) -> Interpreter:
    """Run `exe` with PYTHON_PROBE; a program that does not answer (a pyenv shim of a version that is not
    active, a missing file) comes back without a version."""
    try:
        out = subprocess.run([exe, "-c", PYTHON_PROBE], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Interpreter(exe, error=str(getattr(exc, "strerror", None) or exc))
    lines = out.stderr.strip().splitlines() or [f"exit {out.returncode}"]
    # A traceback ends with its cause; a launcher that found no program (exit 127, pyenv) starts with it.
    error = (lines[0] if out.returncode == 127 else lines[-1]).strip()
    first = (out.stdout.split("\n")[0] or "").split()
    if len(first) not in (3, 4) or not all(part.isdigit() for part in first[1:]):
        return Interpreter(exe, error=error)
    return Interpreter(exe, first[0], tuple(int(part) for part in first[1:]), out.returncode == 0,
                       "" if out.returncode == 0 else error)


def refuse_unusable(found: Interpreter) -> None:
    """One line for a Python the venv cannot be built with: not a supported CPython, no venv, does not run."""
    supported = locks.supported_range()
    if not found.version:
        raise TtsrigError(f"{found.path} does not run as a Python ({found.error}). Pass --python with a CPython "
                          f"{supported} that runs, or install one: {INSTALL_HINT}.")
    if not found.supported:
        raise TtsrigError(f"{found.path} is {found.name}; ttsrig's locks are for CPython {supported}. Pass --python "
                          f"with one of them (e.g. --python python3.12), or install one: {INSTALL_HINT}.")
    if not found.has_venv:
        if "ensurepip" in found.error or "venv" in found.error:
            minor = locks.python_name(found.minor)
            raise TtsrigError(f"{found.path} ({found.name}) has no working `venv` module. Install it (Debian/Ubuntu: "
                              f"`sudo apt-get install python{minor}-venv`) and re-run bin/bootstrap.")
        raise TtsrigError(f"{found.path} ({found.name}) does not run: {found.error}. Pass --python with another "
                          f"CPython {supported}.")


def check_python(python: str) -> Interpreter:
    """--python: the named interpreter, which must be a supported CPython with a working venv module."""
    exe = shutil.which(python) or python
    if not Path(exe).exists():
        raise TtsrigError(f"Python interpreter {python!r} not found. ttsrig builds its venv with CPython "
                          f"{locks.supported_range()}: pass --python with one that exists, leave --python out to "
                          f"use the newest on PATH, or install one: {INSTALL_HINT}.")
    found = inspect_python(exe)
    refuse_unusable(found)
    return found


def python_candidates(prefer: str | None = None) -> list[str]:
    """Names to look for on PATH, best first: the Python a venv was built with (to re-run on it), then each
    supported one, newest first, then python3."""
    newest_first = [f"python{locks.python_name(v)}" for v in reversed(locks.SUPPORTED_PYTHONS)]
    preferred = [f"python{locks.python_name(locks.major_minor(prefer))}"] if prefer else []
    return list(dict.fromkeys([*preferred, *newest_first, "python3"]))


def with_managed_python(names: list[str], prefer: str | None) -> list[str]:
    """The CPython --python-install put in ttsrig's folder counts too: after the Pythons on PATH, or right
    after the preferred name when a venv was built with its version (so a re-run keeps using it)."""
    managed = managed_python.installed_python(managed_python.default_python_dir())
    if managed is None:
        return names
    place = 1 if prefer and locks.major_minor(prefer) == managed_python.MINOR else len(names)
    return list(dict.fromkeys([*names[:place], str(managed), *names[place:]]))


def find_python(prefer: str | None = None) -> Interpreter:
    """The newest supported CPython on PATH that can make a venv (or the Python an existing venv was built
    with, when it is on PATH); one line naming what to install when there is none."""
    usable: list[Interpreter] = []
    others: list[str] = []
    seen: set[str] = set()
    for name in with_managed_python(python_candidates(prefer), prefer):
        exe = shutil.which(name)
        if not exe or os.path.realpath(exe) in seen:
            continue
        seen.add(os.path.realpath(exe))
        found = inspect_python(exe)
        if found.supported:
            usable.append(found)
        elif found.version:
            others.append(f"{name} is {found.name}")
    if not usable:
        found_note = f" ({'; '.join(others)})" if others else ""
        raise TtsrigError(f"no supported Python on PATH: ttsrig builds its venv with CPython "
                          f"{locks.supported_range()}{found_note}. Install one: {INSTALL_HINT}; or pass --python "
                          f"/path/to/python3.X; or run `bin/bootstrap --python-install` to let uv fetch CPython "
                          f"{locks.python_name(managed_python.MINOR)} built for the baseline x86-64 level into "
                          f"{managed_python.default_python_dir()}.")
    ready = [found for found in usable if found.has_venv]
    if not ready:
        refuse_unusable(usable[0])  # names the venv package of the best one
    if ready[0] is not usable[0]:
        log(f"{usable[0].path} ({usable[0].name}) cannot make a venv ({usable[0].error}); using {ready[0].path}")
    return ready[0]


def choose_python(requested: str | None, venv: Path) -> Interpreter:
    """--python if given, else the best Python on PATH for this venv."""
    if requested:
        return check_python(requested)
    return find_python(recorded_python(venv))


def uv_wheel(args: argparse.Namespace) -> Path:
    """The verified uv wheel of requirements/bootstrap.txt, downloaded into the wheel cache (with the Python
    running bootstrap, when it has pip) if it is not on disk yet."""
    lock = REQUIREMENTS / "bootstrap.txt"
    pins = {"uv": locks.parse_lock(lock)["uv"]}
    cache = default_wheel_cache()
    folders = [*([Path(args.wheelhouse).expanduser().absolute()] if args.wheelhouse else []), cache]
    good, bad = verified_wheels(pins, folders)
    if not good and not (args.offline or args.wheelhouse) and has_pip(sys.executable):
        fetch_installer_wheels(sys.executable, cache, run_download)
        good, bad = verified_wheels(pins, folders)
    if good:
        return good["uv"]
    damaged = f" ({', '.join(map(str, bad))} does not match the hash in {rel(lock)}: replace it)" if bad else ""
    how = (f"on a connected machine run `pip download --no-deps --require-hashes -d DIR -r {rel(lock)}` "
                   f"and copy DIR's files into {cache}")
    raise TtsrigError(f"--python-install runs uv from its wheel (uv {pins['uv'].version}, {rel(lock)}), which is "
                      f"not in {' or '.join(map(str, folders))}{damaged}: {how}, then re-run bin/bootstrap "
                      "--python-install.")


def has_pip(python: str) -> bool:
    try:
        return subprocess.run([python, "-m", "pip", "--version"], capture_output=True, timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def run_download(cmd: list[str]) -> None:
    """pip download before any venv exists: its output in the log, a failure in one line."""
    log("downloading the installer's wheels into the wheel cache (kept for offline runs)")
    out = subprocess.run(cmd, capture_output=True, text=True,
                         env={**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    if out.returncode != 0:
        sys.stderr.write(out.stdout + out.stderr)
        last = (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]
        raise TtsrigError(f"downloading uv's wheel failed ({last}): connect and re-run bin/bootstrap "
                          "--python-install, or copy the wheel into the wheel cache as its message above says.")


def managed_interpreter(args: argparse.Namespace) -> Interpreter:
    """--python-install: the baseline CPython 3.11 that uv installs into ttsrig's own folder."""
    if args.python:
        raise TtsrigError("--python and --python-install both choose the Python: pass one of them.")
    if os.uname().machine != "x86_64":
        raise TtsrigError(f"--python-install installs a Linux x86-64 CPython, and this machine is "
                          f"{os.uname().machine}. Install CPython {locks.supported_range()} another way and pass "
                          "--python.")
    folder = managed_python.default_python_dir()
    downloads = Path(args.python_downloads).expanduser().absolute()
    wheelhouse = [Path(args.wheelhouse).expanduser().absolute()] if args.wheelhouse else []
    python = managed_python.installed_python(folder)
    if python is None:
        wheel = uv_wheel(args)
        log(f"installing CPython {locks.python_name(managed_python.MINOR)} for the baseline x86-64 level into "
            f"{folder} (uv, from its verified wheel)")
        python = managed_python.ensure_python(wheel, folder, [downloads, *wheelhouse], args.offline)
    found = inspect_python(str(python))
    refuse_unusable(found)
    return found


def planned_python_install(args: argparse.Namespace) -> str:
    """--dry-run --python-install before the Python exists: what would be installed where (the rest of the
    plan needs that Python, so it is shown once it is installed)."""
    download = managed_python.planned_download(uv_wheel(args))
    return (f"python: --python-install would install {download.key} ({download.filename}, from {download.url} or "
            f"{Path(args.python_downloads).expanduser().absolute()}) into {managed_python.default_python_dir()}, "
            "then plan the venv with it")


def refuse_another_python(venv: Path, python: Interpreter) -> None:
    """A venv keeps the Python it was made with: its lock and its lib/python3.X are that Python's."""
    recorded = recorded_python(venv)
    if recorded and locks.major_minor(recorded) != python.minor:
        was = locks.python_name(locks.major_minor(recorded))
        raise TtsrigError(f"{venv} was built with CPython {recorded}, and this run would use {python.name} "
                          f"({python.path}): a venv keeps its Python. Pass --python python{was}, build the new one "
                          f"elsewhere with --venv PATH, or remove {venv} (bin/bootstrap made it) and re-run.")


def check_glibc(plan: Plan, have: tuple[int, int] | None) -> None:
    """Refuse before anything is built when this system's glibc is older than a pin's wheels need (torch 2.7's
    are manylinux_2_28) and there is no source to build instead: the installer would only say that it found no
    matching distribution, after the venv and the small packages were in place."""
    if have is None:  # not glibc (musl): no manylinux wheel fits, and the installer says so itself
        return
    target = wheels.Target(locks.major_minor(plan.python_version), have)
    too_old = []
    for pin in plan.pins.values():
        found = wheels.fit(wheels.files_for(pin.name, pin.version) or [], target)
        if found.wheel is None and found.sdist is None and found.oldest_glibc and found.oldest_glibc > have:
            too_old.append((found.oldest_glibc, f"{pin.name} {pin.version}"))
    if too_old:
        (major, minor), what = max(too_old)
        more = f" and {len(too_old) - 1} more" if len(too_old) > 1 else ""
        raise TtsrigError(f"this system's glibc {have[0]}.{have[1]} is older than {major}.{minor}, which the wheels "
                          f"of {what}{more} in {locks.display(plan.lock)} need (manylinux_{major}_{minor}): ttsrig "
                          f"runs on distributions with glibc {major}.{minor} or newer (Debian 10, Ubuntu 20.04, "
                          "RHEL 8 and later). Upgrade the system, or run ttsrig in a container of such a distribution")


def check_disk(venv: Path) -> None:
    target = venv if venv.exists() else venv.parent
    while not target.exists():
        target = target.parent
    free_gb = shutil.disk_usage(target).free / 1e9
    if free_gb < MIN_FREE_GB and not state_path(venv).exists():
        raise TtsrigError(f"only {free_gb:.1f} GB free at {target}; a ttsrig venv needs about "
                          f"{MIN_FREE_GB:.0f} GB (torch with its CUDA libraries). Free some space or "
                          "choose another place with --venv PATH.")


def is_system_prefix(venv: Path) -> bool:
    """True if `venv` is a Python installation's own prefix rather than a virtual environment."""
    prefixes = {Path(p).resolve() for p in (sys.base_prefix, sysconfig.get_paths()["data"], "/usr", "/usr/local")}
    return venv.resolve() in prefixes and not (venv / "pyvenv.cfg").exists()


def resolve_venv(venv: str) -> Path:
    """--venv as the folder it really is (a symlink is judged, and built, where it points)."""
    try:
        return Path(venv).expanduser().resolve()
    except (OSError, RuntimeError) as exc:
        raise TtsrigError(f"--venv {venv} cannot be resolved ({exc}). Choose another --venv.") from None


def protected_folders() -> dict[Path, str]:
    """Folders that no venv may be: filling or rebuilding them would lose far more than a venv."""
    named = {Path("/"): "the root folder", ROOT: "the ttsrig checkout"}
    try:
        named[Path.home()] = "your home folder"
    except RuntimeError:  # no home folder known
        pass
    found: dict[Path, str] = {}
    for folder, what in named.items():
        folder = folder.resolve()
        found[folder] = what
        for parent in folder.parents:
            found.setdefault(parent, f"a folder above {what}")
    return found


def check_venv_location(venv: Path) -> None:
    """Refuse, before anything changes, a --venv that bootstrap may not build in.

    Bootstrap builds in a new or empty folder, or in a venv whose ttsrig-state.json says bootstrap made
    it; any other folder holds someone's files (a stray pyvenv.cfg proves nothing).
    """
    if is_system_prefix(venv):
        raise TtsrigError(f"{venv} is a Python installation, not a virtual environment; bin/bootstrap never "
                          "installs into the system's site-packages. Choose another --venv.")
    what = protected_folders().get(venv.resolve())
    if what:
        raise TtsrigError(f"--venv {venv} is {what}; bin/bootstrap builds a venv only in a new or empty folder "
                          "of its own. Choose another --venv (the default is .venv in the checkout).")
    if venv.exists() and not venv.is_dir():
        raise TtsrigError(f"--venv {venv} names a file, not a folder. Choose another --venv (a new or empty "
                          "folder).")
    above = venv.parent
    while not above.exists():
        above = above.parent
    if not above.is_dir():
        raise TtsrigError(f"--venv {venv} cannot be made: {above} is a file, not a folder. Choose another --venv.")
    paths.output_folder(venv, "--venv")  # a read-only disk or a folder this user may not write in
    if not venv.is_dir() or state_path(venv).is_file():
        return
    try:
        entries = [entry.name for entry in venv.iterdir()]
    except OSError as exc:
        raise TtsrigError(f"cannot read --venv {venv}: {exc.strerror}. Choose another --venv.") from None
    if not entries:
        return
    kind = ("holds a virtual environment (pyvenv.cfg) that bin/bootstrap did not make" if "pyvenv.cfg" in entries
            else "exists and is not a virtual environment that bin/bootstrap made")
    raise TtsrigError(f"{venv} {kind}: it is not empty and has no {STATE_NAME}, and bin/bootstrap changes or "
                      f"deletes only venvs it made. Choose another --venv (a new or empty folder), or move or "
                      f"remove {venv} yourself.")


def committed_pins(path: Path, repo: Path | None = None) -> dict[str, locks.Pin] | None:
    """The lock as the checkout's last commit has it, when the file differs from it; None without git."""
    repo = repo or ROOT
    try:
        name = path.resolve().relative_to(repo.resolve()).as_posix()
    except ValueError:
        return None
    if not (repo / ".git").exists() or not shutil.which("git"):
        return None
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    try:
        out = subprocess.run(["git", "-C", str(repo), "show", f"HEAD:{name}"], capture_output=True, env=env,
                             timeout=60)
        text = out.stdout.decode("utf-8")
        if out.returncode != 0 or text == path.read_text(encoding="utf-8"):
            return None
        return locks.parse_lock_text(text, f"HEAD:{name}")
    except (OSError, subprocess.TimeoutExpired, UnicodeDecodeError, TtsrigError):
        return None  # no usable reference: the installer's hash check still stands


def read_locks(paths: list[Path]) -> dict[Path, dict[str, locks.Pin]]:
    """Parse each lock and refuse one whose versions or hashes were edited against the committed copy."""
    found = {}
    for path in paths:
        found[path] = locks.parse_lock(path)
        reference = committed_pins(path)
        if reference:
            locks.refuse_hand_edits(rel(path), found[path], reference)
    return found


# --- wheels for installing without the index -------------------------------


def installable_here(filename: str) -> bool:
    """A file for the only platform of the locks (Linux x86-64, glibc), or for any platform."""
    if not filename.endswith(".whl"):
        return True
    platform = filename[:-4].split("-")[-1]
    return platform == "any" or ("x86_64" in platform and "linux" in platform and "musllinux" not in platform)


def pin_files(pins: dict[str, locks.Pin], folders: list[Path]) -> dict[str, list[Path]]:
    """Each pin's files in the folders, by name and version (their hashes are not read here)."""
    found: dict[str, list[Path]] = {name: [] for name in pins}
    for folder in folders:
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            key = locks.file_pin(entry.name)
            if (key and key[0] in pins and key[1].lower() == pins[key[0]].version.lower()
                    and installable_here(entry.name) and entry.is_file()):
                found[key[0]].append(entry)
    return found


def verified_wheels(pins: dict[str, locks.Pin], folders: list[Path]) -> tuple[dict[str, Path], list[Path]]:
    """Per pin, a file whose sha256 its lock allows; and the files named like one that do not match."""
    good: dict[str, Path] = {}
    bad: list[Path] = []
    for name, files in pin_files(pins, folders).items():
        for path in files:
            if file_sha256(path) in pins[name].hashes:
                good.setdefault(name, path)
            else:
                bad.append(path)
    return good, bad


def download_hint(plan: Plan, *lock_files: Path) -> str:
    needs = " ".join(f"-r {rel(path)}" for path in lock_files)
    return (f"on a connected Linux x86-64 machine with CPython {plan.python_minor} run `pip download --no-deps "
            f"--require-hashes -d DIR {needs}`")


def check_wheelhouse(plan: Plan) -> None:
    """Before anything changes: a wheelhouse must hold a file for every pin of the locks it replaces."""
    house = plan.wheelhouse
    assert house is not None
    if not house.is_dir():
        raise TtsrigError(f"--wheelhouse {house} is not a folder. Pass the folder that holds the locks' files "
                          f"(or unset {WHEELHOUSE_ENV}).")
    installer_lock = REQUIREMENTS / "bootstrap.txt"
    pins = {**locks.parse_lock(installer_lock), **plan.pins}
    found = pin_files(pins, [house])
    missing = sorted(f"{pin.name}=={pin.version}" for name, pin in pins.items() if not found[name])
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise TtsrigError(f"the wheelhouse {house} lacks {len(missing)} of the {len(pins)} files the locks name "
                          f"({shown}): {download_hint(plan, installer_lock, plan.lock, plan.nodeps)}, copy DIR's files into {house} "
                          "and re-run bin/bootstrap.")


def missing_tools_message(plan: Plan, pins: dict[str, locks.Pin], good: dict[str, Path], bad: list[Path]) -> str:
    lock = REQUIREMENTS / "bootstrap.txt"
    wanted = ", ".join(f"{pin.name} {pin.version}" for name, pin in sorted(pins.items()) if name not in good)
    where = " or ".join(str(folder) for folder in plan.wheel_folders)
    why = "offline" if plan.offline else "installing from the wheelhouse only"
    damaged = (f" ({', '.join(str(path) for path in bad)} does not match the hash in {rel(lock)}: replace it)"
               if bad else "")
    return (f"{why}, and the installer's own wheels ({wanted}, from {rel(lock)}) are not in {where}{damaged}: "
            f"{download_hint(plan, lock)}, and copy DIR's files into {plan.wheelhouse or plan.wheel_cache}; or run "
            f"bin/bootstrap once online, which keeps them in {plan.wheel_cache}.")


def fetch_bootstrap_wheels(plan: Plan) -> None:
    """Online: download the installer's wheels (hash-checked) into the wheel cache, for this and offline runs."""
    lock, cache = REQUIREMENTS / "bootstrap.txt", plan.wheel_cache
    fetch_installer_wheels(str(plan.venv_python), cache, lambda cmd: run(
        cmd, plan, f"downloading the installer's wheels into {cache} (kept for offline runs)", (lock,)))


def fetch_installer_wheels(python: str, cache: Path, step: Callable[[list[str]], None]) -> None:
    """`python -m pip download` of requirements/bootstrap.txt (hash-checked) into `cache`, run by `step`."""
    lock = REQUIREMENTS / "bootstrap.txt"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        download = Path(tempfile.mkdtemp(prefix=".download-", dir=cache))
    except OSError as exc:
        raise TtsrigError(f"cannot write the wheel cache {cache}: {exc.strerror}. Set {WHEEL_CACHE_ENV} to a "
                          "writable folder and re-run bin/bootstrap.") from None
    try:
        step([python, "-m", "pip", "download", "--no-input", "--require-hashes", "--no-deps",
              "--only-binary=:all:", "--dest", str(download), "-r", str(lock)])
        for wheel in download.iterdir():
            os.replace(wheel, cache / wheel.name)  # whole, verified files only: a killed download leaves none
    finally:
        shutil.rmtree(download, ignore_errors=True)


# --- probing ---------------------------------------------------------------


def probe_cpu(venv: Path, python: str) -> dict:
    """The probe's JSON, run in the venv's Python when it has archspec (CPUID), else here.

    A venv whose Python is broken is probed with `python` instead: the venv is rebuilt later.
    """
    candidate = venv / "bin" / "python"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    error = "the CPU probe failed"
    for exe in [*([str(candidate)] if candidate.is_file() else []), python]:
        try:
            out = subprocess.run([exe, "-m", "envcheck", "probe", "--json"], capture_output=True, text=True, env=env)
            if out.returncode == 0:
                return json.loads(out.stdout)
        except (OSError, ValueError):
            continue
        error = re.sub(r"^envcheck: ", "", out.stderr.strip()) or error
    raise TtsrigError(error)


def make_plan(args: argparse.Namespace, python: Interpreter) -> Plan:
    table = tiers_mod.load()
    venv = resolve_venv(args.venv)
    check_venv_location(venv)
    refuse_another_python(venv, python)
    cpu = probe_cpu(venv, python.path)
    probed, warnings = cpu["tier"], list(cpu["warnings"])
    tier = args.tier or probed
    if args.tier and probed and table.rank(args.tier) > table.rank(probed):
        warnings.append(f"--tier {args.tier} is above this CPU's tier ({probed}): its wheels may die with "
                        "SIGILL here. Use it only to build an environment for another machine.")
    cards = gpu_choice.from_option(args.gpu, probe_gpu())
    choice = gpu_choice.choose(tier, python.version, cards, REQUIREMENTS)
    lock = choice.path
    nodeps = REQUIREMENTS / "nodeps.txt"
    # Parsing refuses unhashed or hand-edited pins before anything is touched.
    parsed = read_locks([REQUIREMENTS / "bootstrap.txt", lock, nodeps])
    pins = {**parsed[lock], **parsed[nodeps]}
    wheelhouse = Path(args.wheelhouse).expanduser().absolute() if args.wheelhouse else None
    if args.offline and args.installer == "pip" and not wheelhouse:
        raise TtsrigError("--installer pip --offline has nothing to install from: pip cannot install from its "
                          "cache without an index. Use the default installer (uv), or pass --wheelhouse DIR.")
    plan = Plan(tier, probed, lock, nodeps, venv, python.path, args.installer, args.offline,
                file_sha256(lock, nodeps, REQUIREMENTS / "bootstrap.txt"), warnings,
                f"{cpu['model_name']} ({cpu['microarch']}, {cpu['level']})", pins,
                bool(cpu["sources"].get("cpuid", {}).get("ok")), wheelhouse,
                python_version=".".join(map(str, python.version)), compile=args.compile,
                gpu_class=choice.gpu_class, gpu_why=choice.why, gpu_lines=gpu.summary(cards))
    if wheelhouse:
        check_wheelhouse(plan)
    return plan


def probe_gpu() -> gpu.GpuView:
    """The NVIDIA GPUs this machine has (NVML, nvidia-smi or /proc; none without a driver): a seam for tests."""
    return gpu.probe()


def plan_after_cpuid(args: argparse.Namespace, python: Interpreter, first: Plan) -> Plan:
    """Re-plan from a probe that reads CPUID: create the venv and install archspec into it first.

    Before the venv exists the probe has only /proc/cpuinfo and glibc; CPUID is the view that
    sees what the CPU itself reports (and the only one that follows qemu's emulated CPU).
    """
    check_disk(first.venv)
    ensure_venv(first)
    ensure_bootstrap_tools(first)
    return make_plan(args, python)


# --- running installers ----------------------------------------------------


def run(cmd: list[str], plan: Plan, what: str, lock_files: tuple[Path, ...] = ()) -> None:
    """Run an installer step, streaming its output; turn a failure into a clear message."""
    log(what)
    # Machine-local installer settings must not change the lock; where uv keeps its cache does not.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "UV_", "VIRTUAL_ENV")) or k == "UV_CACHE_DIR"}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_CONFIG_FILE"] = os.devnull  # machine-local indexes and constraints must not change the lock
    env["VIRTUAL_ENV"] = str(plan.venv)
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                bufsize=1)
    except OSError as exc:
        raise TtsrigError(f"{what} failed: {cmd[0]} could not be started ({exc.strerror}). Re-run bin/bootstrap: "
                          "it rebuilds what is missing in a venv it made.") from None
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stderr.write(line)
        tail = (tail + [line])[-200:]
    if proc.wait() != 0:
        raise TtsrigError(f"{what} failed" + explain_failure("".join(tail), proc.returncode, plan, lock_files))


def explain_failure(output: str, code: int, plan: Plan, lock_files: tuple[Path, ...]) -> str:
    """What an installer's failure output means, and what to do next."""
    lock_files = lock_files or (plan.lock,)
    if any(needle.lower() in output.lower() for needle in HASH_MISMATCH):
        where = mismatched_pin(output, lock_files)
        if where:
            return f": {where}"
    names = " or ".join(rel(path) for path in lock_files)
    if any(needle in output for needle in NOT_FOUND):
        if plan.wheelhouse or plan.offline:
            return (f": a file of {names} is not in {plan.wheelhouse or 'the cache'}: copy it there "
                    f"({download_hint(plan, *lock_files)}) and re-run bin/bootstrap.")
        return f": {names} names a release the index does not have, so the lock was edited by hand. {locks.RESTORE}"
    for needles, hint in FAILURE_HINTS:
        if any(needle in output for needle in needles):
            return ": " + hint.format(lock=names, venv=plan.venv, python=plan.python_minor)
    return (f" (exit {code}); its output is above. Re-run bin/bootstrap to continue: finished steps are not "
            "repeated.")


def mismatched_pin(output: str, lock_files: tuple[Path, ...]) -> str | None:
    """The lock line of the first package an installer says does not match its hash."""
    for pattern in MISMATCHED_PIN:
        for match in pattern.finditer(output):
            for path in lock_files:
                pin = locks.parse_lock(path).get(locks.canonical(match[1]))
                if pin:
                    return (f"{rel(path)} line {pin.line}: the file of {match[1]}=={match[2]} does not match the "
                            f"lock's hashes for it, so the lock was edited by hand or is corrupt. {locks.RESTORE}")
    return None


def installer_cmd(plan: Plan, *args: str) -> list[str]:
    if plan.installer == "uv":
        uv = plan.venv / "bin" / "uv"
        # uv compiles nothing by default (pip compiles everything): --compile all asks it to.
        cmd = [str(uv), "pip", "install", "--python", str(plan.venv_python), "--no-config"]
        cmd += ["--compile-bytecode"] if plan.compile == "all" else []
    else:
        cmd = [str(plan.venv_python), "-m", "pip", "install", "--no-input"]
        cmd += [] if plan.compile == "all" else ["--no-compile"]
    return cmd + plan.source_args() + list(args)


def uninstall_cmd(plan: Plan, names: list[str]) -> list[str]:
    if plan.installer == "uv":
        return [str(plan.venv / "bin" / "uv"), "pip", "uninstall", "--python", str(plan.venv_python), *names]
    return [str(plan.venv_python), "-m", "pip", "uninstall", "-y", *names]


# --- the steps -------------------------------------------------------------


def load_state(venv: Path) -> dict:
    state = read_state(venv)
    if state is None:
        log(f"{state_path(venv)} is unreadable; treating the venv as incomplete")
        return {}
    return state


def venv_tree_ok(plan: Plan) -> bool:
    """Does the venv's own Python run, as the plan's Python of this very venv, with pip and site-packages?"""
    venv = plan.venv
    if not (venv / "pyvenv.cfg").is_file() or not site_packages(venv).is_dir():
        return False
    code = ("import sys, importlib.util; print(sys.prefix); "
            f"sys.exit(sys.version_info[:2] != {locks.major_minor(plan.python_version)} "
            "or importlib.util.find_spec('pip') is None)")
    try:
        out = subprocess.run([str(plan.venv_python), "-c", code], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and Path(out.stdout.strip()).resolve() == venv.resolve()


def clear_venv(venv: Path) -> None:
    """Remove what building a venv made; keep the state record (the folder stays bootstrap's) and other files."""
    for entry in sorted(venv.iterdir()):
        if entry.name == STATE_NAME:
            continue
        if entry.name not in VENV_ENTRIES and not entry.name.endswith(TEMP_SUFFIX):
            log(f"left {entry} alone: bin/bootstrap did not make it")
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError as exc:
            raise TtsrigError(f"cannot remove {entry} to rebuild the venv: {exc.strerror}. Remove {venv} yourself, "
                              "or choose another --venv.") from None


def create_venv(plan: Plan) -> None:
    """The folder, then bootstrap's record in it, then the venv: a run killed at any point leaves a folder
    the next run knows as its own and finishes."""
    venv = plan.venv
    try:
        venv.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TtsrigError(f"cannot create the venv folder {venv}: {exc.strerror}. Choose another --venv.") from None
    write_state(venv, {**load_state(venv), "complete": False, "made_by": "bin/bootstrap", "python": plan.python_version})
    log(f"creating {venv}")
    try:
        out = subprocess.run([plan.python, "-m", "venv", str(venv)], capture_output=True, text=True)
        failure = out.returncode != 0 and ((out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1])
    except OSError as exc:
        failure = exc.strerror
    if failure:
        raise TtsrigError(f"creating the venv {venv} with {plan.python} failed: {failure}. Fix the cause and re-run "
                          "bin/bootstrap, or choose another --venv.")


def ensure_venv(plan: Plan) -> None:
    """A working venv of the plan's Python at plan.venv that bootstrap made; nothing else is ever changed or
    removed."""
    check_venv_location(plan.venv)
    if state_path(plan.venv).is_file():
        if venv_tree_ok(plan):
            return
        log(f"{plan.venv} lacks parts of its venv or its Python does not run; rebuilding it ({STATE_NAME} says "
            "bin/bootstrap made it)")
        clear_venv(plan.venv)
    create_venv(plan)


def tools_installed(plan: Plan, pins: dict[str, locks.Pin]) -> bool:
    have = locks.installed(site_packages(plan.venv))
    uv = plan.venv / "bin" / "uv"
    return all(have.get(n) == p.version for n, p in pins.items()) and uv.is_file() and os.access(uv, os.X_OK)


def ensure_bootstrap_tools(plan: Plan) -> None:
    """uv and archspec, installed by pip from verified wheels on disk (the wheelhouse or the wheel cache)."""
    lock = REQUIREMENTS / "bootstrap.txt"
    pins = locks.parse_lock(lock)
    if tools_installed(plan, pins):
        return
    good, bad = verified_wheels(pins, plan.wheel_folders)
    if len(good) < len(pins) and not (plan.offline or plan.wheelhouse):
        fetch_bootstrap_wheels(plan)
        good, bad = verified_wheels(pins, plan.wheel_folders)
    if len(good) < len(pins):
        raise TtsrigError(missing_tools_message(plan, pins, good, bad))
    with tempfile.TemporaryDirectory(prefix="ttsrig-wheels-") as links:
        # Only the verified files: pip must not pick a damaged or foreign one lying beside them.
        for path in good.values():
            (Path(links) / path.name).symlink_to(path)
        run([str(plan.venv_python), "-m", "pip", "install", "--no-input", "--require-hashes", "--no-deps",
             "--force-reinstall", "--no-index", "--find-links", links, "-r", str(lock)], plan,
            "installing the installer (uv) and the CPU reader (archspec)", (lock,))


def verify(plan: Plan) -> locks.Conformance:
    have = locks.installed(site_packages(plan.venv))
    allowed = {"pip", PROJECT_DIST}
    return locks.conformance(plan.pins, have, forbidden(plan.tier), allowed)


def packages_to_remove(plan: Plan, previous: object, have: dict[str, str]) -> list[str]:
    """What the tier forbids and what an earlier lock of this venv installed that this one dropped.

    Only installed distributions, by name (the installers remove what their RECORD lists inside the venv),
    and never the tools bootstrap itself runs on.
    """
    keep = {"pip", "setuptools", PROJECT_DIST, *locks.parse_lock(REQUIREMENTS / "bootstrap.txt")}
    names = previous if isinstance(previous, list) else []
    dropped = {locks.canonical(n) for n in names if isinstance(n, str)} - set(plan.pins)
    forbid = {locks.canonical(f) for f in forbidden(plan.tier)}
    return sorted(((dropped | forbid) - keep) & set(have))


def install(plan: Plan, state: dict) -> list[str]:
    """Bring the venv to the plan. Returns what was done."""
    done: list[str] = []
    ensure_venv(plan)
    ensure_bootstrap_tools(plan)
    previous_pins = state.get("packages", [])
    write_state(plan.venv, {**load_state(plan.venv), **state, "complete": False, "installing": plan.lock_digest})

    run(installer_cmd(plan, "--require-hashes", "--no-deps", "-r", str(plan.lock)), plan,
        f"installing {rel(plan.lock)}", (plan.lock,))
    done.append(f"installed {rel(plan.lock)}")
    run(installer_cmd(plan, "--require-hashes", "--no-deps", "--no-build-isolation", "-r", str(plan.nodeps)),
        plan, f"installing {rel(plan.nodeps)} (building monotonic-align against the pinned numpy)", (plan.nodeps,))
    done.append(f"installed {rel(plan.nodeps)}")

    # Remove what the tier forbids, and what an earlier lock installed that this one dropped.
    remove = packages_to_remove(plan, previous_pins, locks.installed(site_packages(plan.venv)))
    if remove:
        run(uninstall_cmd(plan, remove), plan, f"removing {', '.join(remove)}")
        done.append(f"removed {', '.join(remove)}")

    run(installer_cmd(plan, "--no-deps", "--no-build-isolation", "-e", str(ROOT)), plan,
        "installing ttsrig itself (editable)")
    write_state(plan.venv, {
        "complete": True, "made_by": "bin/bootstrap", "tier": plan.tier, "lock": rel(plan.lock),
        "gpu_class": plan.gpu_class,
        "python": plan.python_version,
        "lock_digest": plan.lock_digest, "packages": sorted(plan.pins),
        "installed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    return done


def apply_patches(plan: Plan) -> str:
    """Run `python -m patches apply` in the venv; returns what it did, one phrase per patch."""
    out = subprocess.run([str(plan.venv_python), "-m", "patches", "apply", "--tier", plan.tier],
                         capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    sys.stderr.write(out.stdout + out.stderr)
    if out.returncode != 0:
        raise TtsrigError("applying the patches failed; see the message above. The environment is installed; "
                          "fix the cause and re-run bin/bootstrap.")
    return "; ".join(line.split(" (")[0] for line in out.stdout.splitlines()) or "applied"


def python_origin(python: str) -> str:
    """'; installed by ...' for the CPython --python-install put in ttsrig's folder."""
    folder = managed_python.default_python_dir()
    if not str(Path(python).absolute()).startswith(f"{folder}{os.sep}"):
        return ""
    return f"; uv's baseline x86-64 build, in ttsrig's folder {folder}"


def summary(plan: Plan, result: locks.Conformance, changed: list[str], patches: str, seconds: float,
            bytecode: str = "") -> str:
    lines = [
        f"cpu:       {plan.cpu}",
        f"venv:      {plan.venv}",
        f"tier:      {plan.tier}" + ("" if plan.tier == plan.probed_tier else f" (CPU probed as {plan.probed_tier})"),
        f"gpu:       {plan.gpu_class} ({plan.gpu_why})",
        f"python:    CPython {plan.python_version} ({plan.python}{python_origin(plan.python)})",
        f"lock:      {rel(plan.lock)}, CPython {plan.python_version} + {rel(plan.nodeps)} ({len(plan.pins)} packages)",
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
    if bytecode:
        lines.append(f"bytecode:  {bytecode}")
    lines.append(f"next:      {plan.venv}/bin/envcheck probe")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bin/bootstrap", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tier", choices=tiers_mod.TIER_NAMES, help="override the probed tier")
    parser.add_argument("--gpu", default="auto", metavar="auto|none|sm_XY",
                        help="the GPU the lock is chosen for: auto (probe the NVIDIA GPUs; default), none (the CPU "
                             "only), or a compute capability such as sm_61 (a P40) for a machine whose driver cannot "
                             "be asked")
    parser.add_argument("--venv", default=str(ROOT / ".venv"), help="where to build the venv (default: .venv)")
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
    parser.add_argument("--installer", choices=("uv", "pip"), default="uv",
                        help="uv (default, fast) or pip (the fallback)")
    parser.add_argument("--offline", action="store_true",
                        help="install without the network: from uv's cache and the wheel cache (or --wheelhouse)")
    parser.add_argument("--wheelhouse", default=os.environ.get(WHEELHOUSE_ENV) or None, metavar="DIR",
                        help=f"install every package from the files in DIR, never the index (default: "
                             f"${WHEELHOUSE_ENV}); hashes are still checked")
    return parser


def bytecode_note(plan: Plan) -> str:
    """What bootstrap did about .pyc files after an install, for the summary."""
    if plan.compile == "used":
        return warm_up.run(plan.venv_python)
    if plan.compile == "all":
        return "compiled every installed module"
    return ("none written now: each module is compiled on its first import, so the first command takes longer "
            "once (--compile all writes them now)")


def build(args: argparse.Namespace, python: Interpreter, plan: Plan, started: float) -> int:
    """Everything that changes the venv, in order; main holds the venv's lock around it."""
    if not plan.cpuid_read:
        plan = plan_after_cpuid(args, python, plan)
    for warning in plan.warnings:
        log(f"warning: {warning}")
    check_disk(plan.venv)
    state = load_state(plan.venv)
    current = (state.get("complete") and state.get("lock_digest") == plan.lock_digest
               and state.get("tier") == plan.tier and state.get("lock") == rel(plan.lock))
    changed: list[str] = []
    result = verify(plan)
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
        changed = install(plan, state)
        result = verify(plan)
    patches = apply_patches(plan)  # patches edit files inside packages, never which packages are installed
    # After the patches, so the patched modules' bytecode is the one written.
    bytecode = bytecode_note(plan) if changed else ""
    print(summary(plan, result, changed, patches, time.monotonic() - started, bytecode))
    return 0 if result.ok else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.monotonic()
    try:
        if args.python_install and args.dry_run and not managed_python.installed_python(
                managed_python.default_python_dir()):
            print(planned_python_install(args))
            print("dry run: nothing was changed")
            return 0
        python = managed_interpreter(args) if args.python_install else choose_python(args.python,
                                                                                        resolve_venv(args.venv))
        plan = make_plan(args, python)
        check_glibc(plan, wheels.host_glibc())
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
