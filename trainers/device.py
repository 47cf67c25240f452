"""--device auto|cpu|cuda, the same for every command."""
from __future__ import annotations

from envcheck.errors import TtsrigError


def pick(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise TtsrigError("--device cuda, but torch sees no CUDA device (run envcheck); use --device cpu")
    return device
