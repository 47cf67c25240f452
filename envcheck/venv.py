"""What a ttsrig venv holds at its top, and where its packages live: the one place these are known.

- ttsrig-state.json: bin/bootstrap's record (tier, lock, the Python it was built with, completeness). A folder with it is a venv bootstrap
  made; bootstrap changes no other. bootstrap writes it; envcheck, the patches tool and the trainers read it.
- ttsrig-patches.json and ttsrig-patches/: the patches tool's own record and its backups (patches.target).
- pyvenv.cfg: written by `python -m venv`; its version names lib/pythonX.Y/site-packages.

Standard library only: bin/bootstrap uses it before anything is installed.
"""
from __future__ import annotations

import re
from pathlib import Path

from envcheck.atomic import write_json_atomic
from envcheck.reading import loads_json

STATE_NAME = "ttsrig-state.json"
PATCH_STATE_NAME = "ttsrig-patches.json"
PATCH_BACKUP_DIR = "ttsrig-patches"


def read_config(venv: Path) -> dict[str, str]:
    """pyvenv.cfg as key -> value; empty when the venv has none."""
    try:
        text = (venv / "pyvenv.cfg").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    config = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            config[key.strip()] = value.strip()
    return config


def python_version(venv: Path) -> str | None:
    """The venv's Python version as pyvenv.cfg records it (`version` from venv, `version_info` from uv and
    virtualenv), e.g. '3.11.7'; None when it records none."""
    config = read_config(venv)
    return config.get("version") or config.get("version_info") or None


def site_packages(venv: Path) -> Path:
    """lib/pythonX.Y/site-packages for the venv's own Python.

    X.Y comes from pyvenv.cfg; a pyvenv.cfg without a version falls back to the one lib/python3.* folder.
    Where neither says, the path returned does not exist, so the venv reads as one without packages.
    """
    version = python_version(venv)
    if version:
        major_minor = ".".join(version.split(".")[:2])
        return venv / "lib" / f"python{major_minor}" / "site-packages"
    found = sorted((venv / "lib").glob("python3.*/site-packages"))
    return found[0] if len(found) == 1 else venv / "lib" / "python3" / "site-packages"


def state_path(venv: Path) -> Path:
    return venv / STATE_NAME


def read_state(venv: Path) -> dict | None:
    """bin/bootstrap's record of the venv: {} when there is none, None when it is there but unreadable."""
    path = state_path(venv)
    if not path.exists():
        return {}
    try:
        state = loads_json(path.read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def write_state(venv: Path, state: dict) -> None:
    write_json_atomic(state_path(venv), state)


def recorded_tier(venv: Path) -> str | None:
    """The tier bin/bootstrap built the venv for, if its record says."""
    tier = (read_state(venv) or {}).get("tier")
    return tier if isinstance(tier, str) else None


def recorded_python(venv: Path) -> str | None:
    """The Python version (e.g. '3.12.1') a venv bin/bootstrap made was built with: its record's `python`, or,
    for a record written before the record named it, pyvenv.cfg's. None for a folder bootstrap did not make
    or a record that says nothing readable."""
    state = read_state(venv)
    if not state:
        return None
    version = state.get("python")
    if not isinstance(version, str):
        version = python_version(venv)
    return version if version and re.fullmatch(r"3\.\d+(\.\d+)?\S*", version) else None
