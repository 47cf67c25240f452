"""Optional transcription for recordings without transcripts: faster-whisper if it is installed, else a
whisper.cpp command-line binary on PATH (`whisper-cli`, or the older `whisper-cpp`) with a ggml model file.
Neither is in ttsrig's locks (their wheels and models are the user's choice); without one, recordings
that lack a transcript are rejected with a message that says how to get one."""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from envcheck.errors import TtsrigError

WHISPER_CPP_BINARIES = ("whisper-cli", "whisper-cpp")
GGML_MAGIC = 0x67676D6C  # "ggml": the first int of a whisper.cpp model file
HOW_TO_GET_ONE = ("install a Whisper backend: `.venv/bin/python -m pip install faster-whisper` (its CTranslate2 "
                  "needs an x86-64-v2 CPU: not a Core 2 or Phenom II), or build whisper.cpp on this machine (README: "
                  "Building whisper.cpp) and put its "
                  "`whisper-cli` on PATH with --whisper-model PATH/ggml-base.en.bin; or add a transcript (.txt or "
                  ".lab beside each file, "
                  "or metadata.csv with id|text lines)")


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

        # cpu_threads: CTranslate2 otherwise starts 4 threads, and on a 2-core machine the extra ones spin-wait
        # for cores (measured: tests/bench/README.md, the screen rows).
        from trainers.device import cpu_threads

        self._model = WhisperModel(self.model, device="cuda" if self.device == "cuda" else "cpu",
                                   cpu_threads=cpu_threads())

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
    if backend in ("auto", "faster-whisper") and importlib.util.find_spec("faster_whisper"):
        return FasterWhisper(model or "base.en", language, device, beam_size)
    if backend in ("auto", "whisper.cpp"):
        binary = next((b for b in map(shutil.which, WHISPER_CPP_BINARIES) if b), None)
        if binary:
            if not model or not Path(model).is_file():
                raise TtsrigError(f"found {binary}, but whisper.cpp needs its model file: pass --whisper-model "
                                  "PATH to a ggml model (e.g. ggml-base.en.bin from the whisper.cpp releases)")
            return WhisperCpp(binary, Path(model), language, beam_size)
    if backend != "auto" and backend != "none":
        raise TtsrigError(f"the {backend} transcription backend is not available: {HOW_TO_GET_ONE}")
    return None
