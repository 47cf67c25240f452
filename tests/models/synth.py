"""Synthetic audio the tests make: espeak-ng speech, tones, silence (no downloads)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf


def speech(text: str, rate: int = 22_050, words_per_minute: int | None = None) -> np.ndarray:
    """espeak-ng's rendering of text as float32 mono at `rate` (espeak-ng speaks at 22.05 kHz), at its default
    speaking rate (175 words per minute) or `words_per_minute`."""
    speed = ["-s", str(words_per_minute)] if words_per_minute else []
    wav = subprocess.run(["espeak-ng", *speed, "--stdout", text], capture_output=True, check=True).stdout
    import io

    data, native = sf.read(io.BytesIO(wav), dtype="float32")
    if native != rate:
        import soxr

        data = soxr.resample(data, native, rate).astype(np.float32)
    return data


def silence(seconds: float, rate: int = 22_050) -> np.ndarray:
    return np.zeros(int(seconds * rate), dtype=np.float32)


def tone(seconds: float, rate: int = 22_050, hz: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def write(path: Path, wave: np.ndarray, rate: int = 22_050, stereo: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.stack([wave, wave * 0.5], axis=1) if stereo else wave, rate)
    return path


def transcribed(folder: Path, lines: list[str], prefix: str = "c") -> Path:
    """A folder of espeak-ng recordings, each with its transcript beside it (.txt)."""
    for i, text in enumerate(lines):
        write(folder / f"{prefix}{i}.wav", speech(text))
        (folder / f"{prefix}{i}.txt").write_text(text)
    return folder


def styletts2_set(root: Path, lines: list[str], odd_clips: bool = False) -> Path:
    """`lines` spoken by espeak-ng and prepared for StyleTTS2 (clips and its mels) under root/set; with
    `odd_clips`, also a clip shorter than the decoder's crop and one whose transcript phonemises to nothing.
    Returns the manifest."""
    from trainers import prepare

    transcribed(root / "in", lines)
    if odd_clips:
        write(root / "in" / "short.wav", speech("Hello."))  # 0.54 s: shorter than the decoder's crop
        (root / "in" / "short.txt").write_text("Hello.")
        write(root / "in" / "notes.wav", speech(lines[0]))
        (root / "in" / "notes.txt").write_text("♪ ♪")
    summary = prepare.prepare(root / "in", root / "set", prepare.Settings(min_s=0.5, mels=("styletts2",)), None,
                              "cpu", progress=False)
    assert summary["clips"] == len(lines) + (2 if odd_clips else 0), summary
    return root / "set" / "manifest.jsonl"
