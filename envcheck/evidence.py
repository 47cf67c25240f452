"""Import-and-compute checks for every compiled package of the locks.

This is how the pins in requirements/ are justified: each check runs in its own
interpreter (under `qemu-x86_64 -cpu MODEL` when emulating an old CPU) so a
SIGILL names the package that caused it. `python -m envcheck evidence` runs
them and writes the record that requirements/README.md cites.
"""
from __future__ import annotations

from pathlib import Path

from envcheck.isolated import Check

NO_ONEDNN = "import torch; torch.backends.mkldnn.enabled = False; "

CHECKS: list[Check] = [
    Check("numpy", "import numpy as np; a = np.random.rand(64, 64); "
                   "print(np.__version__, round(float(np.linalg.det(np.eye(3) * 2)), 3), (a @ a).shape)"),
    Check("torch", "import torch; print(torch.__version__, torch.backends.cpu.get_cpu_capability())"),
    Check("torch float64 matmul", "import torch; a = torch.rand(32, 32, dtype=torch.float64); "
                                  "print(tuple((a @ a).shape))"),
    Check("torch float32 matmul", "import torch; a = torch.rand(32, 32); print(tuple((a @ a).shape))"),
    Check("torch float32 matmul, oneDNN off", NO_ONEDNN + "a = torch.rand(32, 32); print(tuple((a @ a).shape))"),
    Check("import torch._dynamo", "import torch._dynamo; print('imported')", timeout=300),
    Check("import torch._dynamo, oneDNN off", NO_ONEDNN + "import torch._dynamo; print('imported')", timeout=300),
    Check("torchaudio mel, oneDNN off", NO_ONEDNN + "import torchaudio; "
          "m = torchaudio.transforms.MelSpectrogram(24000, n_fft=1024, hop_length=256, n_mels=100)"
          "(torch.randn(24000)); print(torchaudio.__version__, tuple(m.shape))"),
    Check("transformers", "import transformers; from transformers import AlbertConfig; "
                          "print(transformers.__version__)", timeout=300),
    Check("scipy", "import numpy as np, scipy, scipy.signal, scipy.linalg; "
                   "print(scipy.__version__, round(float(scipy.linalg.det(np.eye(3) * 2)), 3))"),
    Check("numba", "import numba; f = numba.njit(lambda x: x * 2); print(numba.__version__, f(21))",
          timeout=300),
    Check("scikit-learn", "import numpy as np, sklearn; from sklearn.linear_model import LinearRegression; "
                          "m = LinearRegression().fit(np.arange(8.0).reshape(-1, 1), np.arange(8.0) * 3); "
                          "print(sklearn.__version__, round(float(m.coef_[0]), 3))"),
    Check("librosa", "import numpy as np, librosa; y = np.random.rand(24000).astype('float32'); "
                     "print(librosa.__version__, librosa.feature.melspectrogram(y=y, sr=24000, n_mels=80).shape)",
          timeout=400),
    Check("soundfile", "import os, tempfile, numpy as np, soundfile as sf; "
                       "p = os.path.join(tempfile.mkdtemp(), 'a.wav'); sf.write(p, np.zeros(2400), 24000); "
                       "d, sr = sf.read(p); print(sf.__version__, sr, len(d))"),
    Check("soxr", "import numpy as np, soxr; print(soxr.__version__, len(soxr.resample(np.zeros(4800), 48000, 24000)))"),
    Check("matplotlib", "import io, matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt; "
                        "plt.plot([1, 2, 3]); b = io.BytesIO(); plt.savefig(b, format='png'); "
                        "print(matplotlib.__version__, b.tell() > 0)"),
    Check("tokenizers", "import tokenizers; from tokenizers import Tokenizer, models; "
                        "t = Tokenizer(models.WordLevel({'a': 0, '[UNK]': 1}, unk_token='[UNK]')); "
                        "print(tokenizers.__version__, t.encode('a').ids)"),
    Check("safetensors", "import numpy as np, safetensors; from safetensors.numpy import load, save; "
                         "print(safetensors.__version__, load(save({'x': np.ones(3)}))['x'].sum())"),
    Check("small compiled libraries", "import regex, yaml, msgpack, markupsafe, charset_normalizer, "
          "google_crc32c, kiwisolver, contourpy, PIL.Image, cryptography.hazmat.primitives.hashes, "
          "rjieba, pypinyin, hf_xet; print(google_crc32c.value(b'ttsrig'), yaml.__with_libyaml__, "
          "rjieba.cut('ttsrig')[:1])"),
    Check("phonemizer + espeak-ng", "import espeakng_loader; "
          "from phonemizer.backend.espeak.wrapper import EspeakWrapper; "
          "EspeakWrapper.set_library(espeakng_loader.get_library_path()); "
          "EspeakWrapper.set_data_path(espeakng_loader.get_data_path()); "
          "from phonemizer import phonemize; print(phonemize('hello world', language='en-us', backend='espeak'))"),
    Check("uv (the installer binary)", "", program=("uv", "--version")),
    Check("monotonic_align", NO_ONEDNN + "from monotonic_align import maximum_path; "
          "p = maximum_path(torch.randn(1, 4, 6), torch.ones(1, 4, 6)); print(int(p.sum()))"),
]

# The ASR backends of `voices/audition screen` (not in the locks): run with --checks asr --python the
# interpreter of a venv that holds faster-whisper. envcheck/asr_probe.py builds a tiny random Whisper.
ROOT = str(Path(__file__).resolve().parents[1])
PROBE = f"import sys; sys.path.insert(0, {ROOT!r}); from envcheck import asr_probe; "
ASR_CHECKS: list[Check] = [
    CHECKS[0],  # numpy: faster-whisper's and CTranslate2's own dependency
    Check("ctranslate2", "import ctranslate2; "
                         "print(ctranslate2.__version__, sorted(ctranslate2.get_supported_compute_types('cpu')))"),
    Check("av (PyAV)", "import av, io, wave; b = io.BytesIO(); w = wave.open(b, 'wb'); w.setnchannels(1); "
                       "w.setsampwidth(2); w.setframerate(16000); w.writeframes(bytes(3200)); w.close(); b.seek(0); "
                       "c = av.open(b); print(av.__version__, sum(f.samples for f in c.decode(audio=0)))"),
    Check("onnxruntime", "import onnxruntime; print(onnxruntime.__version__, onnxruntime.get_available_providers())"),
    CHECKS[[c.name for c in CHECKS].index("tokenizers")],
    Check("faster-whisper import", "import faster_whisper; print(faster_whisper.__version__)", timeout=900),
    Check("faster-whisper VAD (onnxruntime)", PROBE + "print(asr_probe.vad())", timeout=900),
    Check("ctranslate2 Whisper load + encode", PROBE + "print(asr_probe.encode())", timeout=900),
    Check("faster-whisper transcribe float32", PROBE + "print(asr_probe.transcribe('float32'))", timeout=900),
    Check("faster-whisper transcribe int8", PROBE + "print(asr_probe.transcribe('int8'))", timeout=900),
]
# Which GPUs a torch wheel has kernels for: read from the wheel itself (no GPU needed), the arch list behind
# envcheck/data/gpus.json's "torch" table (requirements/evidence/cuda-arch/torch-VERSION.txt).
CUDA_ARCH_CHECKS = [
    Check("torch CUDA arch list", "import torch; print(torch.__version__, 'cuda', torch.version.cuda, "
                                  "*torch._C._cuda_getArchFlags().split())"),
]
CHECK_SETS = {"locks": CHECKS, "asr": ASR_CHECKS, "cuda-arch": CUDA_ARCH_CHECKS}


def whisper_cpp_checks(binary: str, emulate: str | None) -> list[Check]:
    """A whisper.cpp build (`whisper-cli`, built by the user, not a wheel), run the way ttsrig runs it on a
    random ggml model written by envcheck/whispercpp_probe.py. The interpreter (a ttsrig venv's) runs natively
    and the binary under `qemu-x86_64 -cpu EMULATE`: only the build's instructions are in question."""
    probe = f"import sys; sys.path.insert(0, {ROOT!r}); from envcheck import whispercpp_probe; "
    call = f"({binary!r}, emulate={emulate!r})"
    return [Check("whisper.cpp build (system_info)", probe + f"print(whispercpp_probe.system_info{call})",
                  timeout=900),
            Check("whisper.cpp transcribe (ttsrig's command)", probe + f"print(whispercpp_probe.transcribe{call})",
                  timeout=1800)]
