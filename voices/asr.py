"""The ASR side of `audition screen`: which backend hears the renders, and what it heard.

The backends are trainers.prepare's (envcheck/asr_backends.py): faster-whisper in the venv, or whisper.cpp's
`whisper-cli` with a ggml model; their detection and command lines are reused from there. This module adds
what screening needs on top: reading a render, dropping the ASR's non-speech annotations, a one-line error
that names the backend when it fails on one render (the others are still screened), and a scripted
backend that returns given transcripts, for tests.
"""
from __future__ import annotations

import functools
import importlib.util
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from envcheck import reading
from envcheck.errors import TtsrigError
from envcheck import asr_backends as transcribe
from trainers.device import pick as pick_device  # faster-whisper's CTranslate2 runs on the GPU too
from voices import wordcheck

CHOICES = ("auto", "none", "faster-whisper", "whisper.cpp", "whisper-cpp")
ALIASES = {"whisper-cpp": "whisper.cpp"}  # the project's own spelling, and its older binary's name
PRE_V2 = "pre-v2"
# measured: requirements/evidence/asr-*.txt (CTranslate2 imports on a Phenom II or Core 2, and dies loading a model)
CTRANSLATE2_NEEDS_V2 = ("faster-whisper's CTranslate2 dies with SIGILL when it loads a model on a pre-v2 CPU "
                        "(Core 2, Phenom II)")
INSTALL_FASTER_WHISPER = ("add faster-whisper with `bin/bootstrap --with asr` (the ASR layer: hash-checked, on an "
                          "x86-64-v2 CPU or newer)")
INSTALL_WHISPER_CPP = ("build whisper.cpp into the venv with `bin/bootstrap --with asr` on a pre-v2 CPU (or by hand: "
                       "README, Building whisper.cpp; `whisper-cli` on PATH) and pass --whisper-model "
                       "PATH/ggml-base.en.bin")
HOW_TO_ADD_ONE = (f"no ASR backend, so dropped and cut words were not checked: {INSTALL_FASTER_WHISPER}, or "
                  f"{INSTALL_WHISPER_CPP}; then screen the folder again")


class Hears(Protocol):
    """What screening needs of a backend: its name, and the text it hears in a 24 kHz render."""

    name: str

    def __call__(self, wave: np.ndarray, rate: int) -> str: ...


@dataclass
class Scripted:
    """A backend for tests: the transcript given for each render file name, or an exception to raise."""

    transcripts: dict[str, str | BaseException]
    name: str = "scripted"
    heard: list[str] = field(default_factory=list)
    _current: str | None = None

    def for_file(self, file: str) -> "Scripted":
        self._current = file
        return self

    def __call__(self, wave: np.ndarray, rate: int) -> str:
        self.heard.append(self._current or "")
        answer = self.transcripts.get(self._current or "", "")
        if isinstance(answer, BaseException):
            raise answer
        return answer


def find(choice: str, *, model: str | None = None, language: str | None = "en", device: str = "auto",
         beam_size: int = transcribe.DEFAULT_BEAM) -> Hears | None:
    """The backend asked for ('auto': the first installed; 'none': no word checks), or None when none is
    installed. A backend that is installed but cannot start is an error, not a silent fallback."""
    choice = precheck(choice, model=model, beam_size=beam_size)
    if choice == "none":
        return None
    if device == "auto" and choice in ("auto", "faster-whisper") and faster_whisper_usable():
        device = pick_device(device)  # imports torch: only when the backend that can use a GPU is there
    try:
        return transcribe.find(choice, model=model, language=language, device=device, beam_size=beam_size)
    except TtsrigError:
        raise
    except Exception as exc:  # faster-whisper's model download or load: name it, in one line
        raise TtsrigError(f"the {choice if choice != 'auto' else 'faster-whisper'} ASR backend could not start: "
                          f"{one_line(exc)}. Pass --whisper-model (a model name or folder), or --asr none") from None


def precheck(choice: str, *, model: str | None = None, beam_size: int = transcribe.DEFAULT_BEAM) -> str:
    """The backend choice (its alias resolved) if find() can honour it; what find() would refuse, refused
    now without loading a model (`audition render --screen` checks this before hours of rendering)."""
    if choice not in CHOICES:
        raise TtsrigError(f"--asr {choice}: choose one of {', '.join(CHOICES)}")
    if beam_size < 1:
        raise TtsrigError(f"--asr-beam {beam_size}: give 1 (greedy decoding) or more (default 5)")
    choice = ALIASES.get(choice, choice)
    installed = importlib.util.find_spec("faster_whisper") is not None
    if choice == "faster-whisper" and not installed:
        raise TtsrigError(f"--asr faster-whisper: faster-whisper is not installed in this venv: "
                          f"{INSTALL_FASTER_WHISPER}; or choose --asr auto or --asr none")
    if choice == "faster-whisper" and not faster_whisper_usable():
        raise TtsrigError(f"--asr faster-whisper: {CTRANSLATE2_NEEDS_V2}: {INSTALL_WHISPER_CPP} and use "
                          "--asr whisper.cpp, or --asr none")
    faster = installed and faster_whisper_usable()
    if choice == "auto" and installed and not faster:  # skip it: a SIGILL would end the whole screen
        choice = "whisper.cpp" if transcribe.whisper_cpp_binary() else "none"
    if choice == "whisper.cpp" and not transcribe.whisper_cpp_binary():
        raise TtsrigError(f"--asr whisper.cpp: neither {' nor '.join(transcribe.WHISPER_CPP_BINARIES)} is in the venv's "
                          "bin/ or on PATH: "
                          f"{INSTALL_WHISPER_CPP}, or choose --asr auto or --asr none")
    if choice == "whisper.cpp" or (choice == "auto" and not faster):
        transcribe.find(choice, model=model, language=None, device="cpu")  # a found binary without its model file
    return choice


@functools.lru_cache(maxsize=1)
def cpu_tier() -> str | None:
    """This CPU's ttsrig tier (envcheck.probe); None when it cannot be told (then a backend may try)."""
    try:
        from envcheck import probe

        return probe.probe().tier
    except Exception:
        return None


# The weight type of a ggml Whisper file: the 12th int of its header, plus 1000 x the quantisation version in files
# whisper-quantize wrote (ggml's GGML_FTYPE_* codes).
GGML_WEIGHT_TYPES = {0: "f32", 1: "f16", 2: "q4_0", 3: "q4_1", 7: "q8_0", 8: "q5_0", 9: "q5_1"}


def ggml_weight_type(path: Path) -> str | None:
    """"f16", "q8_0", ... for a ggml Whisper model file; None when it is not one (whisper-cli says why)."""
    try:
        with reading.open_file(Path(path), "whisper model", "") as file:  # a regular file: a pipe would block
            header = file.read(48)
    except (OSError, TtsrigError):
        return None
    if len(header) < 48 or struct.unpack_from("<i", header)[0] != transcribe.GGML_MAGIC:
        return None
    return GGML_WEIGHT_TYPES.get(struct.unpack_from("<i", header, 44)[0] % 1000)


def whisper_cpp_speed_note(backend: Hears | None) -> str | None:
    """Advice when whisper.cpp runs an f16 model on a CPU without F16C (every pre-v2 and most v2 CPUs): ggml then
    converts every weight in software, and tests/bench measured a q8_0 copy with a beam of 1 several times faster
    (requirements/README.md, tests/bench/README.md)."""
    if not isinstance(backend, transcribe.WhisperCpp) or ggml_weight_type(backend.model) != "f16":
        return None
    from envcheck.probe import cpu_has

    if cpu_has("f16c") is not False:
        return None
    quantized = backend.model.with_name(backend.model.stem + "-q8_0.bin")
    return (f"this CPU has no F16C, so whisper.cpp runs the f16 model {backend.model.name} slowly: a q8_0 copy "
            f"(`whisper-quantize {backend.model} {quantized} q8_0`, built beside whisper-cli) with --asr-beam 1 "
            "screened 4 to 10 times faster in ttsrig's benchmark (README: Building whisper.cpp)")


def faster_whisper_usable() -> bool:
    """faster-whisper is installed and this CPU can run its CTranslate2 (see CTRANSLATE2_NEEDS_V2)."""
    return importlib.util.find_spec("faster_whisper") is not None and cpu_tier() != PRE_V2


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def hear(backend: Hears, wave: np.ndarray, file: str, rate: int = 24_000) -> str:
    """The transcript of one render, annotations ([BLANK_AUDIO], (music)) removed; a failure is one line
    that names the backend and the render."""
    if isinstance(backend, Scripted):
        backend.for_file(file)
    try:
        said = backend(wave, rate)
    except TtsrigError as exc:
        raise TtsrigError(f"{backend.name} failed on {file}: {exc}") from None
    except Exception as exc:
        raise TtsrigError(f"{backend.name} crashed on {file}: {one_line(exc)}") from None
    if not isinstance(said, str):
        raise TtsrigError(f"{backend.name} returned {type(said).__name__} for {file}, not text")
    return wordcheck.strip_annotations(said)
