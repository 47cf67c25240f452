"""--device auto|cpu|cuda, the same for every command: the one place that decides which device runs.
Trainers, say-default/say-strong, audition and the ASR backends all call `pick`."""
from __future__ import annotations

import sys

from envcheck.errors import TtsrigError


def no_kernels(index: int = 0) -> str | None:
    """Why the installed torch cannot run on CUDA device `index` (it has no kernels for its compute capability:
    torch.cuda.is_available() still says yes, and the first kernel would fail mid-run), or None."""
    import torch

    from envcheck.gpu_table import TorchBuild

    capability = tuple(torch.cuda.get_device_capability(index))
    arch = tuple(a for a in torch.cuda.get_arch_list() if a.startswith("sm_"))
    if TorchBuild(torch.__version__, torch.version.cuda or "", arch, "0").runs_on(capability):
        return None
    return (f"{torch.cuda.get_device_name(index)} (sm_{capability[0]}{capability[1]}) has no kernels in this torch "
            f"{torch.__version__} (it carries {' '.join(arch) or 'none'})")


REBUILD = "bin/bootstrap picks the lock whose torch has them (it probes the GPU)"


def pick(device: str) -> str:
    """auto: the GPU when torch sees one it has kernels for, else the CPU (saying why, in one line, when a GPU
    is skipped); cuda is refused in one line when torch sees none or cannot run on it. Without torch (an ASR
    backend such as faster-whisper runs on its own) auto is the CPU and an explicit choice is passed on for
    that backend to check."""
    if device == "cpu":
        return device
    try:
        import torch
    except ImportError:
        return "cpu" if device == "auto" else device
    available = torch.cuda.is_available()
    problem = no_kernels() if available else None
    if device == "auto":
        if problem:
            print(f"note: {problem}: running on the CPU. {REBUILD}.", file=sys.stderr)
        return "cuda" if available and not problem else "cpu"
    if device == "cuda" and not available:
        raise TtsrigError("--device cuda, but torch sees no CUDA device (run envcheck); use --device cpu")
    if device == "cuda" and problem:
        raise TtsrigError(f"--device cuda: {problem}. {REBUILD[0].upper() + REBUILD[1:]}, or use --device cpu.")
    return device
