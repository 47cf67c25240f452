"""Evidence for the patches: a pre-v2 venv, run under qemu-x86_64 -cpu phenom (an AMD K10)."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from envcheck.isolated import CRASHED, OK, Check, Verdict, run_check
from envcheck.venv import site_packages

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.emulated, pytest.mark.integration]

WORKLOAD = """
import torch, torchaudio, torch._dynamo
a = torch.rand(32, 32); assert (a @ a).shape == (32, 32)
mel = torchaudio.transforms.MelSpectrogram(24000, n_fft=1024, hop_length=256, n_mels=100)(torch.randn(12000))
lin, conv = torch.nn.Linear(16, 8), torch.nn.Conv1d(4, 4, 3, padding=1)
(lin(torch.randn(2, 16)).sum() + conv(torch.randn(2, 4, 20)).sum()).backward()
assert lin.weight.grad is not None and conv.weight.grad is not None
print("ok", tuple(mel.shape))
"""

# Its own process: QEMU user mode does not survive fork() after autograd has started its threads,
# which real CPUs do; the point here is the workers' float32 matmul on the emulated CPU.
WORKERS = """
import torch, torch._dynamo
from torch.utils.data import DataLoader, Dataset
class Squares(Dataset):
    def __len__(self): return 4
    def __getitem__(self, i): x = torch.full((8, 8), float(i)); return (x @ x).sum()
print("ok", sum(float(b.sum()) for b in DataLoader(Squares(), batch_size=2, num_workers=2)))
"""


def emulate(venv: Path, code: str, **env: str) -> Verdict:
    return run_check(Check("evidence", code, timeout=600), str(venv / "bin/python"), emulate="phenom", env=env)


def patches(venv: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / "bin/python"), "-m", "patches", *args], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.fixture(scope="module")
def pre_v2_venv(run_bootstrap, test_venvs) -> Path:
    venv = test_venvs / "pre-v2"
    run_bootstrap("--tier", "pre-v2", "--venv", str(venv))
    return venv


def dynamo_file(venv: Path) -> Path:
    return site_packages(venv) / "torch/_dynamo/variables/torch_function.py"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_bootstrap_applied_both_patches(pre_v2_venv):
    out = patches(pre_v2_venv, "status")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "dynamo         applied" in out.stdout
    assert "sitecustomize  applied" in out.stdout and "oneDNN off" in out.stdout


def test_apply_twice_same_bytes_revert_original_bytes(pre_v2_venv):
    known = json.loads((ROOT / "patches/data/known-files.json").read_text())["dynamo"]["originals"]["2.7.0"]
    patched = sha(dynamo_file(pre_v2_venv))
    assert patched != known
    assert patches(pre_v2_venv, "apply").returncode == 0
    assert sha(dynamo_file(pre_v2_venv)) == patched
    try:
        assert patches(pre_v2_venv, "revert").returncode == 0
        assert sha(dynamo_file(pre_v2_venv)) == known
    finally:
        assert patches(pre_v2_venv, "apply").returncode == 0
    assert sha(dynamo_file(pre_v2_venv)) == patched


def test_without_the_patches_torch_dies_with_sigfpe(pre_v2_venv):
    assert patches(pre_v2_venv, "revert", "--only", "dynamo").returncode == 0
    try:
        dyn = emulate(pre_v2_venv, "import torch._dynamo", TTSRIG_SITE="0")
        matmul = emulate(pre_v2_venv, "import torch; a = torch.rand(32, 32); a @ a", TTSRIG_SITE="0")
    finally:
        assert patches(pre_v2_venv, "apply").returncode == 0
    assert (dyn.status, dyn.signal) == (CRASHED, "SIGFPE"), dyn
    assert (matmul.status, matmul.signal) == (CRASHED, "SIGFPE"), matmul


def test_with_the_patches_the_workload_runs(pre_v2_venv):
    out = emulate(pre_v2_venv, WORKLOAD)
    assert out.status == OK, out
    assert out.detail.split() == ["ok", "(100,", "47)"]


def test_with_the_patches_dataloader_workers_run(pre_v2_venv):
    out = emulate(pre_v2_venv, WORKERS)
    assert out.status == OK, out
    assert out.detail.split() == ["ok", str(float(sum(64 * 8 * i * i for i in range(4))))]


def test_the_dynamo_patch_alone_makes_import_torch_dynamo_work(pre_v2_venv):
    out = emulate(pre_v2_venv, "import torch, torch._dynamo; print(torch.backends.mkldnn.enabled)",
                  TTSRIG_ONEDNN_FIX="0")
    assert out.status == OK, out
    assert out.detail == "True"  # oneDNN stayed on: the file patch did it
