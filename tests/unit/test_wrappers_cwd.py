"""bin/bootstrap, bin/lock and bin/evidence import nothing from the directory they are run from.

`python -m MODULE`, `python -c CODE` and `python -` put the current directory first on sys.path, so an
argparse.py or an envcheck/ planted in a world-writable folder someone ran a command from was imported instead of
the standard library's or ours (an empty or relative PYTHONPATH entry names that folder too, and its
sitecustomize.py then runs at every start). Each command here is run from such a folder, whose every module
leaves a mark when imported. The voices/ wrappers: tests/models/test_wrappers_cwd.py (they need torch).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.planted_folder import PYTHONPATHS, planted

ROOT = Path(__file__).resolve().parents[2]
VENVS = Path(os.environ.get("TTSRIG_TEST_VENVS", ROOT / ".cache" / "test-venvs"))
# What the commands import first (the standard library's, ours) and what Python's start-up looks for.
MODULES = ("argparse", "__future__", "runpy", "re", "json", "pathlib", "subprocess", "venv", "sitecustomize",
           "usercustomize")


def environment(pythonpath: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": PYTHONPATHS[pythonpath].format(os.environ.get("PYTHONPATH", "")), **extra}


def pythons() -> list:
    """This Python and, one per version, the test venvs' (tests/run_in_venv.py): 3.10 to 3.13 where they are."""
    found = {}
    for python in [sys.executable, *sorted(str(p) for p in VENVS.glob("*/bin/python"))]:
        out = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, cwd="/")
        if out.returncode == 0:
            found.setdefault(out.stdout.strip(), python)
    return [pytest.param(python, id=f"py{version}") for version, python in sorted(found.items())]


def python3_on_path(tmp_path: Path, python: str) -> str:
    """A PATH whose python3 (the commands' helper and bin/bootstrap's runner) is `python`."""
    folder = tmp_path / "path"
    folder.mkdir(exist_ok=True)
    (folder / "python3").unlink(missing_ok=True)
    (folder / "python3").symlink_to(python)
    return f"{folder}:{os.environ['PATH']}"


@pytest.mark.parametrize("pythonpath", PYTHONPATHS)
@pytest.mark.parametrize("python", pythons())
def test_bin_bootstrap_imports_nothing_from_the_current_directory(tmp_path, python, pythonpath):
    folder, marks = planted(tmp_path, MODULES)
    out = subprocess.run([str(ROOT / "bin/bootstrap"), "--help"], capture_output=True, text=True, cwd=folder,
                         env=environment(pythonpath, PATH=python3_on_path(tmp_path, python)))
    assert sorted(p.name for p in marks.iterdir()) == [], out.stderr
    assert out.returncode == 0 and out.stdout.startswith("usage: bin/bootstrap"), out.stderr


@pytest.mark.parametrize("pythonpath", PYTHONPATHS)
def test_bin_lock_imports_nothing_from_the_current_directory(tmp_path, pythonpath):
    """The names are read from envcheck (three snippets) before the unknown one is refused."""
    folder, marks = planted(tmp_path, MODULES)
    out = subprocess.run([str(ROOT / "bin/lock"), "no-such-lock"], capture_output=True, text=True, cwd=folder,
                         env=environment(pythonpath, PYTHON=sys.executable,
                                         PATH=python3_on_path(tmp_path, sys.executable)))
    assert sorted(p.name for p in marks.iterdir()) == [], out.stderr
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("bin/lock: unknown lock 'no-such-lock' (pre-v2 v2 v3 ") and " asr " in out.stderr


@pytest.mark.parametrize("pythonpath", PYTHONPATHS)
def test_bin_evidence_imports_nothing_from_the_current_directory(tmp_path, pythonpath):
    """In a checkout whose bin/bootstrap only succeeds, and whose venv's patches and envcheck only say they ran."""
    folder, marks = planted(tmp_path, MODULES)
    checkout, log = tmp_path / "checkout", tmp_path / "log"
    (checkout / "bin").mkdir(parents=True)
    shutil.copy(ROOT / "bin/evidence", checkout / "bin/evidence")
    shutil.copy(ROOT / "bin/no-cwd.sh", checkout / "bin/no-cwd.sh")
    (checkout / "bin/bootstrap").write_text("#!/bin/sh\nexit 0\n")
    (checkout / "bin/bootstrap").chmod(0o755)
    shutil.copytree(ROOT / "envcheck", checkout / "envcheck", ignore=shutil.ignore_patterns("__pycache__"))
    fakes = tmp_path / "fakes"  # the venv's own modules, on the (absolute) PYTHONPATH entry it keeps
    for name in ("patches", "envcheck"):
        (fakes / name).mkdir(parents=True)
        (fakes / name / "__main__.py").write_text(
            f"import sys\nwith open({str(log)!r}, 'a') as f:\n    f.write(' '.join(['{name}', *sys.argv[1:]]) + '\\n')\n")
    version = "%d.%d" % sys.version_info[:2]
    venv = tmp_path / "venvs" / f"py{version}" / "v3"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin/python").write_text(f"#!/bin/sh\nexec {sys.executable} \"$@\"\n")
    (venv / "bin/python").chmod(0o755)
    env = environment(pythonpath, TTSRIG_EVIDENCE_PYTHON=sys.executable, TTSRIG_EVIDENCE_VENVS=str(tmp_path / "venvs"),
                      PATH=python3_on_path(tmp_path, sys.executable))
    env["PYTHONPATH"] = PYTHONPATHS[pythonpath].format(fakes)
    out = subprocess.run([str(checkout / "bin/evidence"), "v3:Haswell"], capture_output=True, text=True, cwd=folder,
                         env=env)
    assert sorted(p.name for p in marks.iterdir()) == [], out.stderr
    assert out.returncode == 0, out.stderr
    record = checkout / f"requirements/evidence/py{version}/v3-Haswell.txt"
    assert log.read_text().splitlines() == [f"patches revert --venv {venv}",
                                            f"envcheck evidence --emulate Haswell --checks locks --out {record}"]


# -- the Pythons ttsrig starts itself: bootstrap's steps, the envcheck report's checks ---------------------------

def test_python_commands_import_nothing_from_the_current_directory(tmp_path, monkeypatch):
    """envcheck.python_command's -c and -m forms, and the report's checks (one alone, several sharing one
    interpreter), run from a planted folder: the standard library's modules and ours are the ones imported."""
    from envcheck import isolated, python_command, together

    folder, marks = planted(tmp_path, MODULES)
    monkeypatch.chdir(folder)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    show = "import argparse, envcheck; print(argparse.__file__, envcheck.__file__)"
    out = subprocess.run(python_command.code(sys.executable, show), capture_output=True, text=True)
    assert out.returncode == 0 and str(folder) not in out.stdout, out.stderr
    out = subprocess.run(python_command.module(sys.executable, "envcheck", "probe", "--json"), capture_output=True,
                         text=True)
    assert out.returncode == 0 and '"tier"' in out.stdout, out.stderr
    checks = [isolated.Check(f"check {n}", show, shareable=True) for n in range(2)]
    alone = isolated.run_check(checks[0], sys.executable)
    shared = together.run_together(checks, sys.executable)
    assert alone.status == isolated.OK and str(folder) not in alone.output
    assert all(v is not None and v.status == isolated.OK and str(folder) not in v.output for v in shared), shared
    assert sorted(p.name for p in marks.iterdir()) == []
