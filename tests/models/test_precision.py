"""--amp auto from the card's compute capability, in both trainers (trainers/precision.py), on recorded cards:
no GPU is needed to decide, only to compute (tests/bench/ measures that on a lent one)."""
from __future__ import annotations

import pytest
import torch

from envcheck.errors import TtsrigError
from trainers import precision

CARDS = {  # name: compute capability, as NVML reports them (tests/gpus/nvml/)
    "NVIDIA GeForce GTX 970": (5, 2), "Tesla P40": (6, 1), "Tesla P100-PCIE-16GB": (6, 0), "Tesla T4": (7, 5),
    "NVIDIA GeForce RTX 2080": (7, 5), "NVIDIA GeForce GTX 1650": (7, 5), "NVIDIA GeForce RTX 3060": (8, 6),
    "NVIDIA A100-SXM4-40GB": (8, 0), "NVIDIA H100 80GB HBM3": (9, 0), "NVIDIA GeForce RTX 5090": (12, 0)}
F5_AUTO = {"NVIDIA GeForce GTX 970": None, "Tesla P40": None, "Tesla P100-PCIE-16GB": None,
           "Tesla T4": torch.float16, "NVIDIA GeForce RTX 2080": torch.float16, "NVIDIA GeForce GTX 1650": None,
           "NVIDIA GeForce RTX 3060": torch.bfloat16, "NVIDIA A100-SXM4-40GB": torch.bfloat16,
           "NVIDIA H100 80GB HBM3": torch.bfloat16, "NVIDIA GeForce RTX 5090": torch.bfloat16}


@pytest.mark.parametrize("name", CARDS)
def test_auto_follows_the_capability_for_both_trainers(name):
    capability = CARDS[name]
    assert precision.autocast_dtype("auto", "cuda", capability=capability, name=name) == F5_AUTO[name]
    assert precision.autocast_dtype("auto", "cuda", capability=capability, name=name) == F5_AUTO[name]
    # a command that cannot compute in fp16 (no loss scaler) is never handed it by auto
    narrow = precision.autocast_dtype("auto", "cuda", allowed=("bf16",), capability=capability, name=name)
    assert narrow == (torch.bfloat16 if F5_AUTO[name] == torch.bfloat16 else None)


@pytest.mark.parametrize("name", [n for n, c in CARDS.items() if c < (8, 0)])
def test_an_explicit_bf16_below_8_0_is_refused_naming_what_auto_picks(name):
    with pytest.raises(TtsrigError, match=r"--amp bf16 on .*compute capability \d\.\d.*no bf16 matrix units.*picks"):
        precision.autocast_dtype("bf16", "cuda", capability=CARDS[name], name=name)


def test_an_explicit_choice_wins_where_the_card_can_compute_it():
    assert precision.autocast_dtype("fp16", "cuda", capability=(6, 1), name="Tesla P40") == torch.float16
    assert precision.autocast_dtype("bf16", "cuda", capability=(8, 6), name="RTX 3060") == torch.bfloat16
    assert precision.autocast_dtype("off", "cuda", capability=(8, 6), name="RTX 3060") is None


def test_the_cpu_trains_in_float32_whatever_is_asked():
    assert all(precision.autocast_dtype(amp, "cpu") is None for amp in ("auto", "bf16", "fp16", "off"))


def test_the_trainer_asks_the_card_it_runs_on(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: (6, 1))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Tesla P40")
    assert precision.autocast_dtype("auto", "cuda") is None
    with pytest.raises(TtsrigError, match="Tesla P40"):
        precision.autocast_dtype("bf16", "cuda")


# -- --device auto and cuda on a card the installed torch has no kernels for -------------------------------

ARCH_2_8 = ["sm_70", "sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]


@pytest.fixture
def pascal_with_torch_2_8(monkeypatch):
    """torch 2.8's arch list (as requirements/evidence/torch-cuda-arch.txt records it) beside a P40."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: list(ARCH_2_8))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: (6, 1))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Tesla P40")


def test_auto_skips_a_gpu_without_kernels_in_one_line(pascal_with_torch_2_8, capsys):
    from trainers import device

    assert device.pick("auto") == "cpu"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Tesla P40 (sm_61) has no kernels in this torch" in err[0] and "bin/bootstrap" in err[0]


def test_cuda_on_a_gpu_without_kernels_is_refused_with_the_fix(pascal_with_torch_2_8):
    from trainers import device

    with pytest.raises(TtsrigError, match=r"--device cuda: Tesla P40 \(sm_61\) has no kernels .*sm_70.*--device cpu"):
        device.pick("cuda")


def test_a_gpu_the_torch_runs_on_is_used(monkeypatch, capsys):
    from trainers import device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: list(ARCH_2_8))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: (8, 9))  # an RTX 4090 runs sm_86 code
    assert device.pick("auto") == "cuda" and device.pick("cuda") == "cuda" and capsys.readouterr().err == ""


def test_the_voices_compute_in_what_the_card_computes_well(monkeypatch):
    """say-strong in fp16 from 7.0 (as upstream's inference) or bf16 from 8.0; say-default in bf16 from 8.0."""
    from voices import say

    picked = {engine: precision.autocast_dtype("auto", "cuda", allowed=say.INFERENCE_DTYPES[engine],
                                               capability=(7, 5), name="Tesla T4") for engine in ("strong", "default")}
    assert picked == {"strong": torch.float16, "default": None}
    assert precision.autocast_dtype("auto", "cpu", allowed=say.INFERENCE_DTYPES["strong"]) is None
