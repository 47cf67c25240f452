"""The ASR backends: how ttsrig runs faster-whisper and whisper.cpp's `whisper-cli`, and which one is there.

The one owner of their command lines and file formats, in the bottom layer so that every user of them may
import it: trainers.prepare transcribes recordings without transcripts, the audition screen checks the
words of renders, and envcheck's probes run whisper-cli exactly as those commands do. faster-whisper is
found in the running venv; whisper-cli in the venv's bin/ (where `bin/bootstrap --with asr` builds it on a
pre-v2 CPU) and then on PATH (the older name `whisper-cpp` too), with a ggml model file. Without one,
recordings that lack a transcript are rejected with a message that says how to get one."""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from envcheck.errors import TtsrigError

WHISPER_CPP_BINARIES = ("whisper-cli", "whisper-cpp")
WHISPER_CPP_TOOLS = ("whisper-cli", "whisper-quantize")  # what a build installs into the venv's bin/
GGML_MAGIC = 0x67676D6C  # "ggml": the first int of a whisper.cpp model file
HOW_TO_GET_ONE = ("add the ASR layer: `bin/bootstrap --with asr` (faster-whisper, hash-checked, on an x86-64-v2 CPU "
                  "or newer; on a Core 2 or Phenom II it builds whisper.cpp's `whisper-cli` into the venv), then pass "
                  "a model with --whisper-model; or add a transcript (.txt or .lab beside each file, or metadata.csv "
                  "with id|text lines)")


WHERE_MODELS_GO = ("Pass --whisper-model with a model folder, or a hub id such as tiny.en or base.en while "
                   "online (it is downloaded into the Hugging Face cache; offline it must be there already: "
                   "`huggingface-cli download Systran/faster-whisper-base.en` on a machine with the network, then "
                   "copy ~/.cache/huggingface)")


class Transcriber(Protocol):
    name: str

    def __call__(self, wave: np.ndarray, rate: int) -> str: ...


# Upstream's default beam for both backends; the audition screen may ask for fewer (greedy is 1).
DEFAULT_BEAM = 5


@dataclass
class FasterWhisper:
    model: str
    language: str | None
    device: str
    beam_size: int = DEFAULT_BEAM
    name: str = "faster-whisper"

    def __post_init__(self) -> None:
        from faster_whisper import WhisperModel

        folder = Path(self.model)
        if folder.exists() and not (folder.is_dir() and (folder / "model.bin").is_file()):
            raise TtsrigError(f"--whisper-model {self.model}: not a faster-whisper model folder (it holds model.bin, "
                              f"config.json, tokenizer.json and vocabulary.txt; a ggml .bin file is whisper.cpp's: "
                              f"use it with --asr whisper.cpp). {WHERE_MODELS_GO}")
        # cpu_threads: CTranslate2 otherwise starts 4 threads, and on a 2-core machine the extra ones spin-wait
        # for cores (measured: tests/bench/README.md, the screen rows).
        try:
            self._model = WhisperModel(self.model, device="cuda" if self.device == "cuda" else "cpu",
                                       cpu_threads=cpu_threads())
        except Exception as exc:  # the hub's offline miss, a damaged model.bin: one line, with where to put one
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise TtsrigError(f"faster-whisper could not load the model {self.model!r} ({type(exc).__name__}: "
                              f"{first}). {WHERE_MODELS_GO}") from None

    def __call__(self, wave: np.ndarray, rate: int) -> str:
        import soxr

        audio = soxr.resample(wave, rate, 16_000) if rate != 16_000 else wave
        segments, _info = self._model.transcribe(audio.astype(np.float32), language=self.language,
                                                 beam_size=self.beam_size)
        return " ".join(s.text.strip() for s in segments).strip()


@dataclass
class WhisperCpp:
    binary: str
    model: Path
    language: str | None
    beam_size: int = DEFAULT_BEAM
    name: str = "whisper.cpp"

    def __call__(self, wave: np.ndarray, rate: int) -> str:
        import soundfile as sf
        import soxr

        audio = soxr.resample(wave, rate, 16_000) if rate != 16_000 else wave  # whisper.cpp reads 16 kHz WAV
        with tempfile.TemporaryDirectory(prefix="ttsrig-whisper-") as tmp:
            wav, out = Path(tmp) / "clip.wav", Path(tmp) / "clip"
            sf.write(wav, audio, 16_000, subtype="PCM_16")
            cmd = [self.binary, "-m", str(self.model), "-f", str(wav), "-nt", "-otxt", "-of", str(out),
                   "-l", self.language or "auto", "-bs", str(self.beam_size)]
            run = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
            text_file = out.with_suffix(".txt")
            if run.returncode < 0:  # killed: its last log line would hide why
                raise TtsrigError(f"{self.binary} failed on a clip: {killed_by(-run.returncode)}")
            if run.returncode != 0 or not text_file.exists():
                tail = (run.stderr or run.stdout).strip().splitlines()[-1:] or [f"exit {run.returncode}"]
                raise TtsrigError(f"{self.binary} failed on a clip: {tail[0]}")
            return " ".join(decode_whisper_text(text_file.read_bytes()).split())


def cpu_threads() -> int:
    """The cores this process may run on (its affinity: a container's or taskset's share, not the machine's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def whisper_cpp_binary() -> str | None:
    """whisper-cli (or whisper-cpp): the running venv's own build first, then PATH."""
    own = Path(sys.prefix) / "bin"
    for name in WHISPER_CPP_BINARIES:
        if os.access(own / name, os.X_OK) and (own / name).is_file():
            return str(own / name)
    return next((b for b in map(shutil.which, WHISPER_CPP_BINARIES) if b), None)


def killed_by(number: int) -> str:
    """The signal that killed whisper-cli; for SIGILL, the cause and the fix (a build runs on the CPU it was
    built for and newer ones, requirements/README.md)."""
    import signal

    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    if name == "SIGILL":
        return ("killed by SIGILL: this build uses an instruction this CPU lacks; build whisper.cpp on this "
                "machine (README: Building whisper.cpp)")
    return f"killed by {name}"


def decode_whisper_text(data: bytes) -> str:
    """whisper.cpp's text file as UTF-8 whatever the locale; bytes that are not UTF-8 are dropped.

    whisper.cpp can cut a multi-byte character between two tokens and write half of it: that half is not a
    letter of the transcript, and refusing the whole data set over it would help no one."""
    return data.decode("utf-8", errors="replace").replace("\ufffd", "")


def find(backend: str, *, model: str | None, language: str | None, device: str,
         beam_size: int = DEFAULT_BEAM) -> Transcriber | None:
    """The transcriber asked for ('auto' = the first available), or None when none is available."""
    if beam_size < 1:
        raise TtsrigError(f"a beam of {beam_size}: give 1 (greedy) or more")
    # auto with a model file: a ggml file is whisper.cpp's (faster-whisper's models are folders or hub ids)
    ggml_file = backend == "auto" and bool(model) and Path(model).is_file()
    if backend in ("auto", "faster-whisper") and not ggml_file and importlib.util.find_spec("faster_whisper"):
        return FasterWhisper(model or "base.en", language, device, beam_size)
    if backend in ("auto", "whisper.cpp"):
        binary = whisper_cpp_binary()
        if binary:
            if not model or not Path(model).is_file():
                raise TtsrigError(f"found {binary}, but whisper.cpp needs its model file: pass --whisper-model "
                                  "PATH to a ggml model (e.g. ggml-base.en.bin from the whisper.cpp releases)")
            return WhisperCpp(binary, Path(model), language, beam_size)
    if backend != "auto" and backend != "none":
        raise TtsrigError(f"the {backend} transcription backend is not available: {HOW_TO_GET_ONE}")
    return None
