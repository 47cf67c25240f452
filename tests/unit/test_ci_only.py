"""The ci_only marker: a plain run skips those tests and says why; `bin/test --ci` (TTSRIG_CI=1) runs them."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = '''
import pytest

@pytest.mark.ci_only
def test_slow():
    pass

def test_fast():
    pass
'''


def run_sample(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    (tmp_path / "conftest.py").write_text((ROOT / "tests/conftest.py").read_text())
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    clean = {k: v for k, v in os.environ.items() if k != "TTSRIG_CI"}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-ra", "-o",
                           "markers=ci_only: slow", str(tmp_path)], capture_output=True, text=True,
                          cwd=tmp_path, env={**clean, "PYTHONPATH": str(ROOT), **env})


def test_a_plain_run_skips_ci_only_tests_and_names_the_command_that_runs_them(tmp_path):
    out = run_sample(tmp_path)
    assert out.returncode == 0, out.stdout
    assert "1 passed, 1 skipped" in out.stdout
    assert "slow, CI only: run with `bin/test --ci`" in out.stdout


def test_ci_runs_them(tmp_path):
    out = run_sample(tmp_path, TTSRIG_CI="1")
    assert out.returncode == 0, out.stdout
    assert "2 passed" in out.stdout and "skipped" not in out.stdout


def test_ci_runs_bin_test_with_ci():
    assert "bin/test --ci" in (ROOT / ".ci/run").read_text().splitlines()
