"""The envcheck report on real venvs: the host tier, and the tier matrix under qemu-x86_64.

The matrix is the point of the project in one test: every tier's lock, bootstrapped into its own venv,
passes the full report on a representative old CPU (pre-v2 on phenom, v2 on Nehalem, v3 on Haswell), on the
default Python; in CI each tier also runs once on another supported Python (pre-v2 on 3.13, v2 on 3.12, v3 on
3.10), so every Python's locks pass the report on an emulated CPU.
"""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from envcheck import tiers
from tests import whisper_cpp

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
TIERS = list(tiers.TIER_NAMES)
# What every report must probe, by name.
REQUIRED = {"wheels fit Python+glibc", "numpy", "torch", "torchaudio", "torch._dynamo", "transformers",
            "f5-tts model core", "StyleTTS2 modules", "ttsrig's commands", "soundfile", "monotonic_align",
            "phonemizer + espeak-ng", "float32 CPU matmul",
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



def test_every_check_the_report_shares_also_passes_alone(host_venv):
    """The report runs its CPU checks in one interpreter (envcheck.together) and believes one that ends well
    there. That is sound only while no check passes by what an earlier one left behind (a module imported, a
    hook installed, a setting changed): each must pass in an interpreter of its own too, as the report above
    shows they do together."""
    from envcheck import isolated, probes, report

    shared = [c for c in probes.IMPORTS + probes.SMOKE if c.shareable]
    assert len(shared) >= 12, [c.name for c in shared]
    python = str(host_venv / "bin" / "python")
    with ThreadPoolExecutor(max_workers=2) as pool:
        verdicts = list(pool.map(lambda c: isolated.run_check(c, python, env=report.check_env()), shared))
    assert [(v.name, v.status, v.detail) for v in verdicts if v.status != isolated.OK] == []

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


# Another Python per tier (CI only): each supported Python that is not the default is exercised by one tier.
OTHER_PYTHONS = {"pre-v2": "3.13", "v2": "3.12", "v3": "3.10"}


def find_python(version: str) -> str | None:
    """CPython X.Y for the test: $TTSRIG_TEST_PYTHON3_Y, else python3.Y on PATH if it runs (a pyenv shim of an
    inactive version does not), else a pyenv build of it."""
    named = os.environ.get(f"TTSRIG_TEST_PYTHON{version.replace('.', '_')}")
    candidates = [named] if named else [shutil.which(f"python{version}"),
                                        *sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/"
                                                                             f"python{version}")), reverse=True)]
    for candidate in filter(None, candidates):
        out = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip() == version:
            return candidate
    return None


@pytest.mark.ci_only
@pytest.mark.emulated
@pytest.mark.parametrize("tier", TIERS)
def test_tier_matrix_on_another_python_passes_the_same_report(tier, run_bootstrap, test_venvs):
    """The tier's lock for another CPython (requirements/py3.Y/<tier>.txt), bootstrapped with it, passes the full
    report on the same emulated CPU as the default Python's."""
    version = OTHER_PYTHONS[tier]
    python = find_python(version)
    if python is None:
        pytest.skip(f"no CPython {version} here: install one (or set TTSRIG_TEST_PYTHON{version.replace('.', '_')})")
    venv = test_venvs / f"{tier}-py{version}"
    run_bootstrap("--tier", tier, "--venv", str(venv), "--python", python)  # the last --python wins
    model = tiers.load().tier(tier).emulate
    code, report = envcheck(venv, "--emulate", model)
    assert code == 0 and report["ok"], failures(report)
    assert REQUIRED <= {c["name"] for c in report["checks"]}
    rows = {c["name"]: c["detail"] for c in report["checks"]}
    assert rows["python"].startswith(f"CPython {version}.")
    assert f"requirements/py{version}/{tier}.txt" in rows["versions equal the lock"]


@pytest.mark.emulated
def test_a_venv_built_for_a_higher_tier_is_diagnosed_on_an_old_cpu(host_venv, host_tier):
    if host_tier == "pre-v2":
        pytest.skip("the host tier is the lowest; there is no higher venv to misuse")
    # Two checks, so they start in one shared interpreter: the crash is still named per check and package.
    code, report = envcheck(host_venv, "--emulate", "phenom", "--only", "numpy", "torch")
    assert code == 1 and not report["ok"]
    rows = {c["name"]: c for c in report["checks"]}
    assert rows["numpy"]["status"] == "crashed" and rows["numpy"]["signal"] == "SIGILL"
    assert "needs tier v2, this CPU is pre-v2" in rows["numpy"]["detail"]
    assert rows["torch"]["status"] == "crashed" and rows["torch"]["signal"] == "SIGILL"
    assert "torch " in rows["torch"]["detail"] and "higher x86-64 level" in rows["torch"]["detail"]
    assert rows["venv tier fits the CPU"]["status"] == "failed"


@pytest.mark.emulated
def test_the_onednn_fault_is_diagnosed_when_the_hook_is_switched_off(run_bootstrap, test_venvs):
    venv = test_venvs / "pre-v2"
    run_bootstrap("--tier", "pre-v2", "--venv", str(venv))
    code, report = envcheck(venv, "--emulate", "phenom", "--only", "float32 CPU matmul", TTSRIG_SITE="0")
    row = next(c for c in report["checks"] if c["name"] == "float32 CPU matmul")
    assert code == 1 and row["status"] == "crashed" and row["signal"] == "SIGFPE"
    assert "oneDNN" in row["detail"] and "TTSRIG_SITE=0" in row["detail"]


# -- the checks store the bytecode they compile (after bootstrap's default --compile none) ---------------

def pycs(folder: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("__pycache__/*.pyc")}


def test_a_second_report_compiles_nothing_the_first_compiled(host_venv):
    """envcheck's checks write the bytecode they compile into the venv, whatever PYTHONDONTWRITEBYTECODE the
    caller set (tox sets it): after a default bootstrap, which stores none, only the first report pays."""
    from envcheck.venv import site_packages

    site = site_packages(host_venv)
    for cache in (site / "numpy").rglob("__pycache__"):  # as bootstrap --compile none leaves numpy
        shutil.rmtree(cache)
    for pyc in (site / "torch" / "__pycache__").glob("__init__.*.pyc"):  # what the first-run note looks at
        pyc.unlink()
    assert not pycs(site / "numpy")
    first = subprocess.run([str(host_venv / "bin/envcheck"), "--only", "numpy", "--json"], capture_output=True,
                           text=True, cwd="/tmp", timeout=600, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    report = json.loads(first.stdout)
    assert report["bytecode"].startswith("first check of this venv") and "first check of this venv" in first.stderr
    stored = pycs(site / "numpy")
    assert len(stored) > 20, "the numpy probe stored no bytecode"
    (site / "torch" / "__pycache__").mkdir(exist_ok=True)
    subprocess.run([str(host_venv / "bin/python"), "-c", "import torch"], check=True, capture_output=True,
                   env={**os.environ, "PYTHONDONTWRITEBYTECODE": ""})  # a command, storing what it compiles
    second = subprocess.run([str(host_venv / "bin/envcheck"), "--only", "numpy", "--json"], capture_output=True,
                            text=True, cwd="/tmp", timeout=600, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert json.loads(second.stdout)["bytecode"] is None and "first check" not in second.stderr
    assert pycs(site / "numpy") == stored, "the second report compiled (and wrote) numpy's modules again"


@pytest.mark.skipif(os.geteuid() != 0, reason="a read-only bind mount needs root (CI runs as root)")
def test_a_venv_the_user_cannot_write_still_verifies_and_says_why_it_is_slower(host_venv):
    from envcheck.venv import site_packages

    site = site_packages(host_venv)
    torch_cache = site / "torch" / "__pycache__"
    kept = {p: p.read_bytes() for p in torch_cache.glob("__init__.*.pyc")}
    for pyc in kept:
        pyc.unlink()
    # site-packages read-only, as a venv of another user's is to you (root ignores permissions, not this)
    subprocess.run(["mount", "--bind", str(site), str(site)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(site)], check=True)
        out = subprocess.run([str(host_venv / "bin/envcheck"), "--only", "numpy"], capture_output=True, text=True,
                             cwd="/tmp", timeout=600, env={**os.environ, "PYTHONDONTWRITEBYTECODE": ""})
    finally:
        subprocess.run(["umount", str(site)], check=True)
    for pyc, data in kept.items():
        pyc.write_bytes(data)
    assert "is read-only for you" in out.stderr and "compileall" in out.stderr, out.stderr[-2000:]
    assert re.search(r"^\s+ok\s+numpy\s", out.stdout, re.M), out.stdout  # verified all the same


# -- the ASR layer on a pre-v2 CPU: whisper.cpp built by bootstrap, run under the emulated Phenom (CI only) ------

@pytest.mark.ci_only
@pytest.mark.emulated
def test_with_asr_on_pre_v2_builds_whisper_cli_that_runs_on_an_emulated_phenom(run_bootstrap, test_venvs):
    """--tier pre-v2 on this newer CPU builds for plain x86-64 (a native build would use what a Phenom II
    lacks); envcheck --emulate phenom runs the built whisper-cli under qemu as ttsrig runs it. The layer is
    taken away again (--without asr), so the other tests see the venv they expect."""
    venv = test_venvs / "pre-v2"
    built = run_bootstrap("--tier", "pre-v2", "--venv", str(venv), "--with", "asr")
    try:
        assert "layers:    asr (whisper.cpp, portable)" in built.stdout, built.stdout
        assert all(os.access(venv / "bin" / program, os.X_OK) for program in ("whisper-cli", "whisper-quantize"))
        code, report = envcheck(venv, "--emulate", "phenom", "--only", "ASR layer: whisper-cli transcribes")
        rows = {c["name"]: c for c in report["checks"]}
        assert rows["ASR layer: whisper-cli transcribes"]["status"] == "ok", rows["ASR layer: whisper-cli transcribes"]
        assert rows["asr layer"]["status"] == "ok" and "portable build" in rows["asr layer"]["detail"]
        whisper_cpp.keep(venv / "bin" / "whisper-cli")  # the models tests' whisper-cli: not built a second time
        again = run_bootstrap("--tier", "pre-v2", "--venv", str(venv))
        assert "keeping the asr layer an earlier run installed" in again.stderr and "nothing changed" in again.stdout
    finally:
        removed = run_bootstrap("--tier", "pre-v2", "--venv", str(venv), "--without", "asr")
    assert "removed the asr layer (whisper-cli, whisper-quantize)" in removed.stdout
    assert not (venv / "bin" / "whisper-cli").exists()
