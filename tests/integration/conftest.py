"""A real venv of the host's tier, built once per test session with bin/bootstrap."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENVS = Path(os.environ.get("TTSRIG_TEST_VENVS", ROOT / ".cache" / "test-venvs"))


def bootstrap(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # --compile all: tox sets PYTHONDONTWRITEBYTECODE, so a venv left to compile on first import (bootstrap's
    # default) would compile again in every emulated interpreter the tests start. A test's own --compile wins.
    out = subprocess.run([str(ROOT / "bin" / "bootstrap"), "--python", sys.executable, "--compile", "all", *args],
                         capture_output=True, text=True, env=env)
    if check and out.returncode != 0:
        raise AssertionError(f"bin/bootstrap {' '.join(args)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr[-4000:]}")
    return out


@pytest.fixture(scope="session")
def test_venvs() -> Path:
    return VENVS


@pytest.fixture(scope="session")
def run_bootstrap():
    return bootstrap


@pytest.fixture(scope="session")
def host_tier() -> str:
    out = subprocess.run([sys.executable, "-m", "envcheck", "probe", "--json"], capture_output=True, text=True,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    return json.loads(out.stdout)["tier"]


@pytest.fixture(scope="session")
def host_venv(host_tier) -> Path:
    venv = VENVS / host_tier
    bootstrap("--venv", str(venv))
    return venv
