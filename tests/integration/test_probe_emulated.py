"""The probe under qemu-x86_64: the emulated CPUID decides the tier, not the host's /proc/cpuinfo."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from envcheck.isolated import qemu_command

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.emulated, pytest.mark.integration]


@pytest.mark.parametrize(
    "cpu, tier, microarch",
    [("phenom", "pre-v2", "k10"), ("Nehalem", "v2", "nehalem"), ("Haswell", "v3", "haswell")],
)
def test_probe_reports_the_emulated_cpu(cpu, tier, microarch):
    out = subprocess.run([*qemu_command(cpu), sys.executable, "-m", "envcheck", "probe", "--json"],
                         capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert result["tier"] == tier
    assert result["microarch"] == microarch
    assert result["sources"]["cpuid"]["tier"] == tier
    assert "cpuid" in result["decided_by"]
    if tier != "v3":  # the host's /proc/cpuinfo (x86-64-v4 here) disagrees with the emulated CPUID
        assert result["disagreement"] is True
