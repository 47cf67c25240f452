"""The reference clip both voices condition on: which one (the configured clip, else f5-tts's example), and
the clip itself: any rate, mono or stereo, trimmed and checked."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from envcheck import reading
from envcheck.errors import TtsrigError
from trainers import audio
from voices import config as voice_config
from voices import example_reference

# How to name a clip of one's own, per voice (say-default's StyleTTS2 needs no transcript)
OWN_CLIP = {"strong": "--ref CLIP --ref-text TEXT", "default": "--ref CLIP"}
OWN_SETTINGS = {"strong": "reference and reference_text", "default": "reference"}


@dataclass(frozen=True)
class Reference:
    clip: Path
    text: str  # what the clip says, as configured ("" when not given: StyleTTS2 needs none)
    note: str | None = None  # set when no clip was configured and f5-tts's example stands in


def choose(engine: str, cfg: dict) -> Reference:
    """The configured clip (reference, or --ref), else the example f5-tts ships with its own transcript.
    A transcript without a clip is refused: the example's clip with someone else's words would be wrong."""
    clip = voice_config.resolve(cfg.get("reference"))
    if clip:
        return Reference(Path(clip), cfg.get("reference_text") or "")
    own = f"{OWN_CLIP[engine]}, or set {OWN_SETTINGS[engine]} in {cfg['_file']}"
    if (cfg.get("reference_text") or "").strip():
        raise TtsrigError(f"reference_text is set but no reference clip: give the clip it transcribes (--ref CLIP, "
                          f"or reference in {cfg['_file']}), or leave reference_text empty to speak with f5-tts's "
                          "example clip")
    example = example_reference.find(OWN_CLIP[engine])
    return Reference(example.clip, example.text, note=(
        f"note: no reference clip is set: speaking as f5-tts's example clip {example.clip} (\"{example.text}\"); "
        f"for your own voice, pass {own}"))


def pinned(cfg: dict, chosen: Reference) -> dict:
    """cfg naming the chosen clip and transcript itself: every Speaker made from it uses the same reference,
    and none repeats the note."""
    return {**cfg, "reference": str(chosen.clip), "reference_text": chosen.text}


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
