"""The ASR side of `audition screen`: which backend hears the renders, and what it heard.

The backends are trainers.prepare's (trainers/transcribe.py): faster-whisper in the venv, or whisper.cpp's
`whisper-cli` with a ggml model; their detection and command lines are reused from there. This module adds
what screening needs on top: reading a render, dropping the ASR's non-speech annotations, a one-line error
that names the backend when it fails on one render (the others are still screened), and a scripted
backend that returns given transcripts, for tests.
"""
from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from envcheck.errors import TtsrigError
from trainers import transcribe
from trainers.device import pick as pick_device  # faster-whisper's CTranslate2 runs on the GPU too
from voices import wordcheck

CHOICES = ("auto", "none", "faster-whisper", "whisper.cpp", "whisper-cpp")
ALIASES = {"whisper-cpp": "whisper.cpp"}  # the project's own spelling, and its older binary's name
INSTALL_FASTER_WHISPER = "`.venv/bin/python -m pip install faster-whisper` (its CTranslate2 wheels need a CPU with AVX)"
INSTALL_WHISPER_CPP = "build whisper.cpp, put `whisper-cli` on PATH and pass --whisper-model PATH/ggml-base.en.bin"
HOW_TO_ADD_ONE = (f"no ASR backend, so dropped and cut words were not checked: install faster-whisper into the venv "
                  f"({INSTALL_FASTER_WHISPER}), or {INSTALL_WHISPER_CPP}; then screen the folder again")


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


def find(choice: str, *, model: str | None = None, language: str | None = "en", device: str = "auto") -> Hears | None:
    """The backend asked for ('auto': the first installed; 'none': no word checks), or None when none is
    installed. A backend that is installed but cannot start is an error, not a silent fallback."""
    choice = precheck(choice, model=model)
    if choice == "none":
        return None
    if device == "auto" and choice in ("auto", "faster-whisper") and importlib.util.find_spec("faster_whisper"):
        device = pick_device(device)  # imports torch: only when the backend that can use a GPU is there
    try:
        return transcribe.find(choice, model=model, language=language, device=device)
    except TtsrigError:
        raise
    except Exception as exc:  # faster-whisper's model download or load: name it, in one line
        raise TtsrigError(f"the {choice if choice != 'auto' else 'faster-whisper'} ASR backend could not start: "
                          f"{one_line(exc)}. Pass --whisper-model (a model name or folder), or --asr none") from None


def precheck(choice: str, *, model: str | None = None) -> str:
    """The backend choice (its alias resolved) if find() can honour it; what find() would refuse, refused
    now without loading a model (`audition render --screen` checks this before hours of rendering)."""
    if choice not in CHOICES:
        raise TtsrigError(f"--asr {choice}: choose one of {', '.join(CHOICES)}")
    choice = ALIASES.get(choice, choice)
    faster = importlib.util.find_spec("faster_whisper") is not None
    if choice == "faster-whisper" and not faster:
        raise TtsrigError(f"--asr faster-whisper: faster-whisper is not installed in this venv: {INSTALL_FASTER_WHISPER}, "
                          "or choose --asr auto or --asr none")
    if choice == "whisper.cpp" and not any(map(shutil.which, transcribe.WHISPER_CPP_BINARIES)):
        raise TtsrigError(f"--asr whisper.cpp: neither {' nor '.join(transcribe.WHISPER_CPP_BINARIES)} is on PATH: "
                          f"{INSTALL_WHISPER_CPP}, or choose --asr auto or --asr none")
    if choice == "whisper.cpp" or (choice == "auto" and not faster):
        transcribe.find(choice, model=model, language=None, device="cpu")  # a found binary without its model file
    return choice


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
