"""The precision a command computes in on its device, from the card's compute capability: --amp auto asks
envcheck/data/gpus.json (bf16 from 8.0, fp16 with a loss scaler on 7.x cards with tensor cores, fp32 on
Pascal, Maxwell and GTX 16xx), where torch.cuda.is_bf16_supported() would answer yes on any card that can
hold a bf16 tensor (it counts emulation), Pascal included, whose cuBLAS has no bf16 GEMM. An explicit --amp
wins, except bf16 below 8.0, which is refused in one line with the reason.
"""
from __future__ import annotations

import torch

from envcheck import gpu_table
from envcheck.errors import TtsrigError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}


def card(index: int = 0) -> tuple[tuple[int, int], str]:
    """(compute capability, name) of the CUDA device torch numbers `index`."""
    return tuple(torch.cuda.get_device_capability(index)), torch.cuda.get_device_name(index)


def autocast_dtype(amp: str, device: str, allowed: tuple[str, ...] = ("bf16", "fp16"),
                   capability: tuple[int, int] | None = None, name: str = "") -> torch.dtype | None:
    """The dtype to autocast to (None: float32) for --amp `amp` on `device`. `allowed`: what this command's
    training can run in (auto never picks another); `capability`/`name`: the card (default: cuda:0)."""
    if device != "cuda" or amp in ("off", "fp32"):
        return None
    if capability is None:
        capability, name = card()
    if amp == "auto":
        chosen = gpu_table.load().precision(capability, name).dtype
        return DTYPES[chosen] if chosen in allowed else None
    if amp == "bf16" and tuple(capability) < (8, 0):
        raise TtsrigError(f"--amp bf16 on {name or 'this GPU'} (compute capability {capability[0]}.{capability[1]}): "
                          "cards below 8.0 have no bf16 matrix units (cuBLAS has no bf16 GEMM on Pascal; on Volta "
                          "and Turing it is emulated and cuDNN has no bf16 convolutions). Use --amp auto, which "
                          "picks " + gpu_table.load().precision(capability, name).dtype + " here, or --amp off")
    return DTYPES[amp]


def describe(dtype: torch.dtype | None) -> str:
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")
