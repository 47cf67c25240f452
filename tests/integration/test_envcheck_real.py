"""The envcheck report on real venvs: the host tier, and the tier matrix under qemu-x86_64.

The matrix is the point of the project in one test: every tier's lock, bootstrapped into its own venv,
passes the full report on a representative old CPU (pre-v2 on phenom, v2 on Nehalem, v3 on Haswell).
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from envcheck import tiers

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
TIERS = list(tiers.TIER_NAMES)
# What every report must probe, by name.
REQUIRED = {"wheels fit Python+glibc", "numpy", "torch", "torchaudio", "torch._dynamo", "transformers", "f5-tts model core",
            "StyleTTS2 modules", "soundfile", "monotonic_align", "phonemizer + espeak-ng", "float32 CPU matmul",
            "CPU mel spectrogram", "tiny F5 DiT forward", "safe checkpoint loading", "dynamo", "sitecustomize",
            "versions equal the lock", "forbidden packages absent", "cpu tier", "space for checkpoints"}


def envcheck(venv: Path, *args: str, **env: str) -> tuple[int, dict]:
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    out = subprocess.run([str(venv / "bin/envcheck"), *args, "--json"], capture_output=True, text=True,
                         cwd="/tmp", env={**clean, **env}, timeout=1800)
    assert out.stdout, out.stderr[-3000:]
    return out.returncode, json.loads(out.stdout)


def failures(report: dict) -> list[str]:
    return [f"{c['name']}: {c['status']}: {c['detail']}" for c in report["checks"] if c["status"] != "ok"]


def test_the_host_venv_passes_its_own_report(host_venv, host_tier):
    # No --venv: the entry point checks the venv it belongs to.
    code, report = envcheck(host_venv)
    assert code == 0 and report["ok"], failures(report)
    assert report["tier"] == host_tier and report["venv"] == str(host_venv)
    assert REQUIRED <= {c["name"] for c in report["checks"]}


@pytest.mark.emulated
@pytest.mark.parametrize("tier", TIERS)
def test_tier_matrix_every_lock_passes_on_an_emulated_cpu_of_its_tier(tier, run_bootstrap, test_venvs):
    venv = test_venvs / tier
    run_bootstrap("--tier", tier, "--venv", str(venv))
    model = tiers.load().tier(tier).emulate
    code, report = envcheck(venv, "--emulate", model)
    assert code == 0 and report["ok"], failures(report)
    assert report["tier"] == tier and report["emulate"] == model
    assert REQUIRED <= {c["name"] for c in report["checks"]}
    cpu_row = next(c for c in report["checks"] if c["name"] == "cpu tier")
    assert f"qemu-x86_64 -cpu {model}" in cpu_row["detail"]


@pytest.mark.emulated
def test_a_venv_built_for_a_higher_tier_is_diagnosed_on_an_old_cpu(host_venv, host_tier):
    if host_tier == "pre-v2":
        pytest.skip("the host tier is the lowest; there is no higher venv to misuse")
    code, report = envcheck(host_venv, "--emulate", "phenom", "--only", "numpy")
    assert code == 1 and not report["ok"]
    rows = {c["name"]: c for c in report["checks"]}
    assert rows["numpy"]["status"] == "crashed" and rows["numpy"]["signal"] == "SIGILL"
    assert "needs tier v2, this CPU is pre-v2" in rows["numpy"]["detail"]
    assert rows["venv tier fits the CPU"]["status"] == "failed"


@pytest.mark.emulated
def test_the_onednn_fault_is_diagnosed_when_the_hook_is_switched_off(run_bootstrap, test_venvs):
    venv = test_venvs / "pre-v2"
    run_bootstrap("--tier", "pre-v2", "--venv", str(venv))
    code, report = envcheck(venv, "--emulate", "phenom", "--only", "float32 CPU matmul", TTSRIG_SITE="0")
    row = next(c for c in report["checks"] if c["name"] == "float32 CPU matmul")
    assert code == 1 and row["status"] == "crashed" and row["signal"] == "SIGFPE"
    assert "oneDNN" in row["detail"] and "TTSRIG_SITE=0" in row["detail"]
