"""voices/say-strong, say-default and audition import nothing from the directory they are run from.

They work from any directory; `python -m voices.say` put that directory first on sys.path, so an argparse.py
planted in a world-writable folder (say, /tmp/shared) ran when someone said a line there. An empty or relative
PYTHONPATH entry names the folder too, and its sitecustomize.py then runs at start-up. Each wrapper is run from
such a folder, whose every module leaves a mark when imported; `--help` goes through the command's imports
(argparse, torch, ours) before it answers. bin/ wrappers: tests/unit/test_wrappers_cwd.py.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.planted_folder import PYTHONPATHS, planted

ROOT = Path(__file__).resolve().parents[2]
VENVS = Path(os.environ.get("TTSRIG_TEST_VENVS", ROOT / ".cache" / "test-venvs"))
MODULES = ("argparse", "__future__", "runpy", "re", "json", "pathlib", "contextlib", "numpy", "torch",
           "sitecustomize", "usercustomize")
COMMANDS = {"say-strong": "usage: say-strong", "say-default": "usage: say-default", "audition": "usage: audition"}


def run_from(folder: Path, command: str, python: str, pythonpath: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TTSRIG_PYTHON": python, "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": PYTHONPATHS[pythonpath].format(os.environ.get("PYTHONPATH", ""))}
    return subprocess.run([str(ROOT / "voices" / command), *args], capture_output=True, text=True, cwd=folder,
                          env=env, timeout=300)


@pytest.mark.parametrize("pythonpath", PYTHONPATHS)
@pytest.mark.parametrize("command", COMMANDS)
def test_a_voice_command_imports_nothing_from_the_current_directory(tmp_path, command, pythonpath):
    folder, marks = planted(tmp_path, MODULES)
    out = run_from(folder, command, sys.executable, pythonpath, "--help")
    assert sorted(p.name for p in marks.iterdir()) == [], out.stderr[-2000:]
    assert out.returncode == 0 and out.stdout.startswith(COMMANDS[command]), out.stderr[-2000:]


def other_pythons() -> list:
    """The test venvs' Pythons of other versions (tests/run_in_venv.py), one per version: 3.10, 3.12, 3.13."""
    found = {"%d.%d" % sys.version_info[:2]: sys.executable}
    for python in sorted(VENVS.glob("*/bin/python")):
        out = subprocess.run([str(python), "-c", "import numpy, sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, cwd="/")
        if out.returncode == 0:
            found.setdefault(out.stdout.strip(), str(python))
    return [pytest.param(python, id=f"py{version}") for version, python in sorted(found.items())
            if python != sys.executable]


@pytest.mark.parametrize("python", other_pythons())
def test_audition_imports_nothing_from_the_current_directory_on_other_pythons(tmp_path, python):
    """The start-up differs by version (-P only from 3.11, runpy frozen from 3.11): audition, which answers
    --help without torch, in each test venv there is."""
    folder, marks = planted(tmp_path, MODULES)
    out = run_from(folder, "audition", python, "empty-and-relative", "--help")
    assert sorted(p.name for p in marks.iterdir()) == [], out.stderr[-2000:]
    assert out.returncode == 0 and out.stdout.startswith("usage: audition"), out.stderr[-2000:]
