"""The venv folder: where bin/bootstrap may build, its record in the venv (ttsrig-state.json), and making,
checking and rebuilding the venv itself. A folder without the record is never changed, rebuilt or deleted.

Standard library only (bin/bootstrap runs on any Python 3.8 or newer).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from envcheck import bootstrap_common as common
from envcheck import locks, paths, python_command
from envcheck.atomic import TEMP_SUFFIX
from envcheck.bootstrap_common import log
from envcheck.bootstrap_plan import Plan
from envcheck.errors import TtsrigError
from envcheck.venv import (PATCH_BACKUP_DIR, PATCH_STATE_NAME, STATE_NAME, read_state, site_packages, state_path,
                           write_state)

# What `python -m venv`, the installers and the patches put at the top of a venv: a rebuild removes
# only these, so anything else a user keeps in the folder survives.
VENV_ENTRIES = frozenset({"bin", "include", "lib", "lib64", "share", "etc", "pyvenv.cfg",
                          PATCH_BACKUP_DIR, PATCH_STATE_NAME})
MIN_FREE_GB = 8.0  # a torch venv is 5-7 GB; leave room for uv's temporary files


def resolve_venv(venv: str) -> Path:
    """--venv as the folder it really is (a symlink is judged, and built, where it points)."""
    try:
        return Path(venv).expanduser().resolve()
    except (OSError, RuntimeError) as exc:
        raise TtsrigError(f"--venv {venv} cannot be resolved ({exc}). Choose another --venv.") from None


def is_system_prefix(venv: Path) -> bool:
    """True if `venv` is a Python installation's own prefix rather than a virtual environment."""
    prefixes = {Path(p).resolve() for p in (sys.base_prefix, sysconfig.get_paths()["data"], "/usr", "/usr/local")}
    return venv.resolve() in prefixes and not (venv / "pyvenv.cfg").exists()


def protected_folders() -> dict[Path, str]:
    """Folders that no venv may be: filling or rebuilding them would lose far more than a venv."""
    named = {Path("/"): "the root folder", common.ROOT: "the ttsrig checkout"}
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


def check_disk(venv: Path) -> None:
    target = venv if venv.exists() else venv.parent
    while not target.exists():
        target = target.parent
    free_gb = shutil.disk_usage(target).free / 1e9
    if free_gb < MIN_FREE_GB and not state_path(venv).exists():
        raise TtsrigError(f"only {free_gb:.1f} GB free at {target}; a ttsrig venv needs about "
                          f"{MIN_FREE_GB:.0f} GB (torch with its CUDA libraries). Free some space or "
                          "choose another place with --venv PATH.")


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
        out = subprocess.run(python_command.code(str(plan.venv_python), code), capture_output=True, text=True, timeout=120)
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
        out = subprocess.run(python_command.module(plan.python, "venv", str(venv)), capture_output=True, text=True)
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
