"""Audio for training sets: read any file soundfile reads, make it 24 kHz mono, find silences, level it,
write WAVs atomically."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from envcheck import reading
from envcheck.atomic import write_atomic
from envcheck.errors import TtsrigError

SAMPLE_RATE = 24_000
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".opus")


def load(path: Path, sample_rate: int = SAMPLE_RATE, *, within: Path | None = None, follow: bool = True) -> np.ndarray:
    """float32 mono at `sample_rate`; stereo is averaged, other rates are resampled (soxr, high quality).
    Only a regular file is read (a pipe would block); `within` and `follow` as envcheck.reading's."""
    import soundfile as sf
    import soxr

    fix = "name an audio file (WAV, FLAC, OGG, MP3)"
    try:
        with reading.open_file(Path(path), "audio", fix, within=within, follow=follow) as handle:
            data, rate = sf.read(handle, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise TtsrigError(f"cannot read audio {path}: {exc}. Is it a complete audio file? Re-export it as "
                          "WAV or FLAC.") from None
    mono = data.mean(axis=1)
    if rate != sample_rate and len(mono):
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ").astype(np.float32)
    return mono


def voiced_intervals(wave: np.ndarray, top_db: float = 40.0, frame_length: int = 1024,
                     hop_length: int = 256) -> np.ndarray:
    """[start, end) sample ranges that are not silence: frames whose RMS is within top_db of the loudest frame.

    The rule and the arithmetic of librosa.effects.split (centred frames, zero padding, float32 RMS, its dB
    floor), in numpy: importing librosa.feature compiles numba kernels, 19 s natively and minutes on an old
    CPU, once per venv and CPU (tests/models/test_prepare.py holds the two equal)."""
    if not len(wave) or not np.any(wave):
        return np.zeros((0, 2), dtype=np.int64)
    padded = np.pad(wave, frame_length // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, frame_length).T[:, ::hop_length]  # librosa's layout
    rms = np.sqrt(np.mean(np.square(frames, dtype=np.float32), axis=0))
    floor = 1e-5 ** 2
    db = 10.0 * np.log10(np.maximum(floor, np.square(rms))) - 10.0 * np.log10(np.maximum(floor, np.max(rms) ** 2))
    voiced = db > -top_db
    edges = list(np.flatnonzero(np.diff(voiced.astype(int))) + 1)
    edges = ([0] if voiced[0] else []) + edges + ([len(voiced)] if voiced[-1] else [])
    return np.minimum(np.array(edges, dtype=np.int64) * hop_length, len(wave)).reshape(-1, 2)


def trim(wave: np.ndarray, top_db: float = 40.0, keep_s: float = 0.1, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Cut leading and trailing silence, keeping a short margin so onsets are not clipped."""
    spans = voiced_intervals(wave, top_db)
    if not len(spans):
        return wave[:0]
    keep = int(keep_s * rate)
    return wave[max(0, spans[0, 0] - keep): min(len(wave), spans[-1, 1] + keep)]


def split_on_silence(wave: np.ndarray, min_s: float, max_s: float, rate: int = SAMPLE_RATE,
                     top_db: float = 40.0) -> list[tuple[int, int]]:
    """Clips of at most max_s, cut in the middle of silences; pieces shorter than min_s are dropped.

    A stretch of speech longer than max_s without a silence is cut hard at max_s."""
    max_len, clips = int(max_s * rate), []
    spans = [(int(a), int(b)) for a, b in voiced_intervals(wave, top_db)]
    hard = []
    for a, b in spans:  # speech longer than a clip: hard cuts
        while b - a > max_len:
            hard.append((a, a + max_len))
            a += max_len
        hard.append((a, b))
    start = end = None
    for a, b in hard:
        if start is None:
            start, end = a, b
        elif b - start <= max_len:
            end = b
        else:
            clips.append((start, end))
            start, end = a, b
    if start is not None:
        clips.append((start, end))
    # widen each clip by a short margin into the silence around it (never past the midpoint to the
    # next clip, never past max_s), so onsets and word endings are not clipped
    pad, widened = int(0.1 * rate), []
    for i, (a, b) in enumerate(clips):
        low = (clips[i - 1][1] + a) // 2 if i else 0
        high = (b + clips[i + 1][0]) // 2 if i + 1 < len(clips) else len(wave)
        a2, b2 = max(low, a - pad), min(high, b + pad)
        widened.append((a2, b2) if b2 - a2 <= max_len else (a, b))
    return [(a, b) for a, b in widened if (b - a) >= min_s * rate]


def normalise(wave: np.ndarray, target_dbfs: float = -20.0, peak_dbfs: float = -1.0) -> np.ndarray:
    """RMS level to target_dbfs, then scaled down if a peak would pass peak_dbfs (no clipping)."""
    rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64)))) if len(wave) else 0.0
    if rms < 1e-6:
        return wave
    gain = 10 ** (target_dbfs / 20) / rms
    peak = float(np.max(np.abs(wave))) * gain
    ceiling = 10 ** (peak_dbfs / 20)
    if peak > ceiling:
        gain *= ceiling / peak
    return (wave * gain).astype(np.float32)


def wav_bytes(wave: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    """A 16-bit PCM WAV file of `wave`."""
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, wave, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def write_wav(path: Path, wave: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """A WAV in a folder ttsrig writes (made if missing), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, wav_bytes(wave, rate))
