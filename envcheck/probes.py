"""The import probes and smoke checks of the `envcheck` report: the CPU ones share one interpreter (a crash or a
failure is run again alone, envcheck.together), the GPU ones run each in its own.

Unlike envcheck/evidence.py (which justifies the pins and turns oneDNN off on purpose to show the
difference), these run the venv as a user would: with the patches the venv has, nothing switched off.
"""
from __future__ import annotations

from envcheck.isolated import Check


def _check(name: str, package: str, code: str, timeout: float = 120.0, shareable: bool = True) -> Check:
    return Check(name, code.strip(), timeout, package=package, shareable=shareable)


ESPEAK = """
import espeakng_loader
from phonemizer.backend.espeak.wrapper import EspeakWrapper
EspeakWrapper.set_library(espeakng_loader.get_library_path())
EspeakWrapper.set_data_path(espeakng_loader.get_data_path())
from phonemizer.backend import EspeakBackend
backend = EspeakBackend("en-us", preserve_punctuation=True, with_stress=True)
print("espeak-ng", backend.version(), backend.phonemize(["the rig speaks"], strip=True)[0])
"""

IMPORTS: list[Check] = [
    _check("numpy", "numpy", "import numpy; print(numpy.__version__)"),
    _check("torch", "torch", "import torch; print(torch.__version__, 'cpu', torch.backends.cpu.get_cpu_capability())"),
    _check("torchaudio", "torchaudio", "import torchaudio; print(torchaudio.__version__)"),
    _check("torch._dynamo", "torch", "import torch._dynamo; print('imports')", timeout=300),
    _check("transformers", "transformers",
           "import transformers; from transformers import AlbertConfig; print(transformers.__version__)", 300),
    _check("f5-tts model core", "f5-tts",
           "from patches import f5_core; f5_core.install(); import sys\n"
           "from f5_tts.model import CFM, DiT; from f5_tts.model.utils import get_tokenizer\n"
           "loaded = sorted({'wandb', 'accelerate', 'datasets', 'pandas'} & set(sys.modules))\n"
           "assert not loaded, f'the model core pulled in {loaded}'\n"
           "print('CFM, DiT without the upstream trainer')", 300),
    _check("StyleTTS2 modules", "styletts2",
           "from styletts2 import models, losses; print('models, losses')", 300),
    _check("soundfile", "soundfile", "import soundfile; print(soundfile.__version__, soundfile.__libsndfile_version__)"),
    _check("monotonic_align", "monotonic-align", "from monotonic_align import maximum_path; print('maximum_path')"),
    _check("phonemizer + espeak-ng", "espeakng-loader", ESPEAK, 300),
    # ttsrig's own commands on this venv's Python (a module of the standard library of a newer Python, such as
    # tomllib, broke the voices on 3.10 once: the tier matrix runs this on every supported Python).
    _check("ttsrig's commands", "ttsrig", "import voices.say, voices.audition, trainers.prepare, trainers.f5, "
           "trainers.styletts2, trainers.fetch, patches.cli; print('voices, trainers, patches')", 300),
]

MATMUL = """
import torch
a = torch.rand(128, 128)
b = a @ a
assert torch.isfinite(b).all()
print("float32 128x128, oneDNN", "on" if torch.backends.mkldnn.enabled else "off")
"""

CPU_MEL = """
import torch, torchaudio
wave = torch.sin(torch.linspace(0, 2000, 24000))
mel = torchaudio.transforms.MelSpectrogram(24000, n_fft=1024, win_length=1024, hop_length=256, n_mels=100,
                                           power=1, center=True, norm=None)(wave)
assert mel.shape == (100, 94) and torch.isfinite(mel).all()
print("F5 mel", tuple(mel.shape))
"""

TINY_DIT = """
import torch
from patches import f5_core
DiT = f5_core.install().DiT
torch.manual_seed(0)
model = DiT(dim=64, depth=2, heads=2, dim_head=32, ff_mult=2, text_dim=32, conv_layers=1, mel_dim=100,
            text_num_embeds=32)
x, cond = torch.randn(1, 40, 100), torch.randn(1, 40, 100)
with torch.no_grad():
    out = model(x=x, cond=cond, text=torch.randint(0, 32, (1, 12)), time=torch.rand(1))
assert out.shape == x.shape and torch.isfinite(out).all()
print("tiny DiT forward", tuple(out.shape))
"""

SAFE_LOADING = """
import os, tempfile
from pathlib import Path
import torch
from safetensors.torch import save_file
from patches.checkpoints import UntrustedCheckpoint, load_checkpoint
from patches.trust import TrustList

class RunsCode:
    def __reduce__(self):
        return (os.system, ("touch " + str(marker),))

tmp = Path(tempfile.mkdtemp())
marker = tmp / "ran"
weights = {"w": torch.arange(4.0)}
save_file(weights, tmp / "w.safetensors")
torch.save(weights, tmp / "w.pt")
torch.save({"x": RunsCode()}, tmp / "evil.pt")
assert torch.equal(load_checkpoint(tmp / "w.safetensors")["w"], weights["w"])
assert torch.equal(load_checkpoint(tmp / "w.pt")["w"], weights["w"])
try:
    load_checkpoint(tmp / "evil.pt", trust_list=TrustList(tmp / "empty.json"))
    raise SystemExit("a pickle that runs code was loaded")
except UntrustedCheckpoint:
    pass
assert not marker.exists(), "the refused pickle ran code"
print("safetensors and weights_only load; a code-running pickle is refused unrun")
"""

SMOKE: list[Check] = [
    _check("float32 CPU matmul", "torch", MATMUL),
    _check("CPU mel spectrogram", "torchaudio", CPU_MEL),
    _check("tiny F5 DiT forward", "f5-tts", TINY_DIT, 300),
    _check("safe checkpoint loading", "torch", SAFE_LOADING),
]

GPU_DEVICE = """
import torch
if not torch.cuda.is_available():
    raise SystemExit("torch sees no CUDA device: the driver may be older than this torch's CUDA "
                     + str(torch.version.cuda) + ", or CUDA_VISIBLE_DEVICES hides the card")
props = torch.cuda.get_device_properties(0)
major, minor = torch.cuda.get_device_capability(0)
archs = torch.cuda.get_arch_list()
def runs(arch):
    kind, num = arch.split("_", 1)
    num = "".join(ch for ch in num if ch.isdigit())  # sm_90a -> 90
    a, b = int(num[:-1]), int(num[-1])
    # a cubin runs on the same major with an equal or higher minor; PTX is compiled for anything newer
    return (a == major and b <= minor) if kind == "sm" else (a, b) <= (major, minor)
if not any(runs(a) for a in archs):
    raise SystemExit(f"{props.name} has compute capability {major}.{minor}; this torch build "
                     f"(CUDA {torch.version.cuda}) has kernels for {' '.join(archs)} only")
print(f"{props.name}, {props.total_memory / 2**30:.1f} GiB, compute capability {major}.{minor}, "
      f"CUDA {torch.version.cuda}, {len(archs)} kernel targets")
"""

GPU_MATMUL = """
import torch
a = torch.rand(1024, 1024, device="cuda")
b = (a @ a).sum().item()
assert b == b and abs(b) != float("inf")
print("float32 1024x1024 on", torch.cuda.get_device_name(0))
"""

GPU_MEL = CPU_MEL.replace("wave = torch.sin(torch.linspace(0, 2000, 24000))",
                          "wave = torch.sin(torch.linspace(0, 2000, 24000, device='cuda'))").replace(
                          "norm=None)(wave)", "norm=None).to('cuda')(wave)")

# torchrun's engine on this machine (trainers/distributed.py): one process per GPU (or BACKEND's count on the CPU)
# joins a process group and all-reduces, as a multi-GPU run's first step does. Forked, so the code needs no file.
DISTRIBUTED = """
import datetime, socket, sys
import torch, torch.distributed as dist, torch.multiprocessing as mp
BACKEND, CPU_PROCESSES = {backend!r}, {cpu_processes}
def work(rank, n, port):
    dist.init_process_group(BACKEND, init_method=f"tcp://127.0.0.1:{{port}}", rank=rank, world_size=n,
                            timeout=datetime.timedelta(seconds=60))
    if BACKEND == "nccl":
        torch.cuda.set_device(rank)
    value = torch.full((1,), float(rank + 1), device=f"cuda:{{rank}}" if BACKEND == "nccl" else "cpu")
    dist.all_reduce(value)
    assert value.item() == n * (n + 1) / 2, value.item()
    dist.destroy_process_group()
n = torch.cuda.device_count() if BACKEND == "nccl" else CPU_PROCESSES
if n < 2:
    print(f"{{n}} GPU: a torchrun run here has one process (nothing to all-reduce)")
    sys.exit(0)
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
mp.start_processes(work, args=(n, port), nprocs=n, start_method="fork")
names = ", ".join(torch.cuda.get_device_name(i) for i in range(n)) if BACKEND == "nccl" else "CPU processes"
print(f"{{BACKEND}} all-reduce across {{n}}: {{names}}; torchrun --nproc_per_node={{n}} can use them")
"""


def distributed_check(backend: str = "nccl", cpu_processes: int = 2) -> Check:
    """The process-group check: NCCL across every GPU (the report's), or gloo across CPU processes (tests)."""
    name = "NCCL across the GPUs" if backend == "nccl" else f"{backend} across {cpu_processes} processes"
    # Alone: it forks, and a fork of an interpreter where another check made CUDA ready cannot use CUDA.
    return _check(name, "torch", DISTRIBUTED.format(backend=backend, cpu_processes=cpu_processes), 180, False)


# Each alone: the card is the question here, and these run where torch imports in a second or two.
GPU: list[Check] = [
    _check("CUDA device", "torch", GPU_DEVICE, shareable=False),
    _check("GPU matmul", "torch", GPU_MATMUL, shareable=False),
    _check("GPU mel spectrogram", "torchaudio", GPU_MEL, shareable=False),
    distributed_check("nccl"),
]
