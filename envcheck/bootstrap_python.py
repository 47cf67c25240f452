"""Which Python builds the venv: --python, else the newest supported CPython on PATH (or the one an existing
venv was built with), or --python-install's baseline CPython 3.11 (envcheck.managed_python); each is asked
what it is, and refused in one line when it cannot build ttsrig's venv.

Standard library only (bin/bootstrap runs on any Python 3.8 or newer).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from envcheck import bootstrap_wheels, locks, managed_python, python_command
from envcheck.bootstrap_common import log
from envcheck.errors import TtsrigError
from envcheck.venv import recorded_python

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
        out = subprocess.run(python_command.code(exe, PYTHON_PROBE), capture_output=True, text=True, timeout=60)
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
        wheel = bootstrap_wheels.uv_wheel(args)
        log(f"installing CPython {locks.python_name(managed_python.MINOR)} for the baseline x86-64 level into "
            f"{folder} (uv, from its verified wheel)")
        python = managed_python.ensure_python(wheel, folder, [downloads, *wheelhouse], args.offline)
    found = inspect_python(str(python))
    refuse_unusable(found)
    return found


def planned_python_install(args: argparse.Namespace) -> str:
    """--dry-run --python-install before the Python exists: what would be installed where (the rest of the
    plan needs that Python, so it is shown once it is installed)."""
    download = managed_python.planned_download(bootstrap_wheels.uv_wheel(args))
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


def python_origin(python: str) -> str:
    """'; installed by ...' for the CPython --python-install put in ttsrig's folder."""
    folder = managed_python.default_python_dir()
    if not str(Path(python).absolute()).startswith(f"{folder}{os.sep}"):
        return ""
    return f"; uv's baseline x86-64 build, in ttsrig's folder {folder}"
