"""The reference clip both voices condition on: any rate, mono or stereo, trimmed and checked."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from envcheck import reading
from envcheck.errors import TtsrigError
from trainers import audio


def checked_path(path: str | Path) -> Path:
    """The clip's path if it is a file (checked before anything is loaded or written)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise TtsrigError(f"reference clip {path} is a folder: pass --ref CLIP, a WAV or FLAC file of a few seconds "
                          "of the voice")
    if not path.exists():
        raise TtsrigError(f"reference clip {path} does not exist: pass --ref CLIP (a few seconds of the voice) "
                          "or set reference in the voice's config")
    reading.open_file(path, "reference clip", "pass --ref CLIP, a WAV or FLAC file of a few seconds of the voice").close()
    return path


def load(path: str | Path, max_s: float = 12.0) -> np.ndarray:
    """24 kHz mono float32, silence trimmed, at most max_s (F5 keeps references short: they count against
    the 30 s it can generate)."""
    path = checked_path(path)
    wave = audio.load(path)  # resamples and mixes down
    trimmed = audio.trim(wave, top_db=40)
    if len(trimmed) < 0.3 * audio.SAMPLE_RATE or float(np.max(np.abs(trimmed), initial=0.0)) < 1e-3:
        raise TtsrigError(f"reference clip {path} is silent or shorter than 0.3 s: give a few seconds of speech")
    return trimmed[: int(max_s * audio.SAMPLE_RATE)]
