"""--device auto|cpu|cuda, the same for every command: the one place that decides which device runs.
Trainers, say-default/say-strong, audition and the ASR backends all call `pick`."""
from __future__ import annotations

import os

from envcheck.errors import TtsrigError


def cpu_threads() -> int:
    """The cores this process may run on (its affinity: a container's or taskset's share, not the machine's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def pick(device: str) -> str:
    """auto: the GPU when torch sees one, else the CPU; cuda is refused in one line when torch sees none.
    Without torch (an ASR backend such as faster-whisper runs on its own) auto is the CPU and an explicit
    choice is passed on for that backend to check."""
    if device == "cpu":
        return device
    try:
        import torch
    except ImportError:
        return "cpu" if device == "auto" else device
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise TtsrigError("--device cuda, but torch sees no CUDA device (run envcheck); use --device cpu")
    return device
