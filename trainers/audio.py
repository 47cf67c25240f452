"""Audio for training sets: read any file soundfile reads, make it 24 kHz mono, find silences, level it,
write WAVs atomically."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Iterator

import numpy as np

from envcheck import reading
from envcheck.atomic import write_atomic
from envcheck.errors import TtsrigError

SAMPLE_RATE = 24_000
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".opus")
# The sample rates a recording can have. Telephone speech, the lowest rate in use, is 8 kHz: below 4 kHz
# (speech up to 2 kHz) no voice is intelligible, so a lower rate is a damaged or hostile header, and a
# resampler asked to make 24 kHz of it allocates 24000 / rate samples for each one read (80 KB at "1 Hz"
# would be 8 GB). The highest rate converters record is 768 kHz (DSD aside, which is not PCM).
MIN_RATE, MAX_RATE = 4_000, 768_000
# The longest recording read from one file: an audiobook chapter or a long interview, which prepare splits
# into clips. Two hours at 24 kHz are 0.7 GB of float32, and trimming and splitting them needs about 4x that;
# a longer file (or a compressed one whose few bytes decode to days of silence) is refused before it is read
# whole. Callers with a shorter natural bound (a reference clip) pass their own `max_s`.
MAX_SECONDS = 2 * 3600
_BLOCK_SAMPLES = 1 << 22  # samples decoded at a time (16 MB of float32), whatever the channel count


def load(path: Path, sample_rate: int = SAMPLE_RATE, *, within: Path | None = None, follow: bool = True,
         max_s: float = MAX_SECONDS) -> np.ndarray:
    """float32 mono at `sample_rate`; stereo is averaged, other rates are resampled (soxr, high quality).
    Only a regular file is read (a pipe would block); `within` and `follow` as envcheck.reading's. A rate
    outside MIN_RATE-MAX_RATE or more than `max_s` seconds is refused in one line before it is decoded or
    resampled, so what is allocated is bounded by `max_s` at the larger of the two rates."""
    import soxr

    with _opened(path, max_s, within=within, follow=follow) as sound:
        rate, limit = sound.samplerate, int(max_s * sound.samplerate)
        mono = _read_mono(sound, limit)
    if len(mono) > limit:  # the header said less, or nothing: the read stopped a frame past the bound
        raise _too_long(path, None, max_s)
    if rate != sample_rate and len(mono):
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ").astype(np.float32)
    return mono


def check_header(path: Path, *, max_s: float = MAX_SECONDS) -> None:
    """What load refuses of a file's header (its rate, its length), without decoding it: a command checks its
    reference clip so before a model loads."""
    with _opened(path, max_s):
        pass


@contextlib.contextmanager
def _opened(path: Path, max_s: float, *, within: Path | None = None, follow: bool = True) -> Iterator:
    """The file as a soundfile.SoundFile, once its header's rate and length are checked; an error of
    libsndfile while it is open or read is one line too."""
    import soundfile as sf

    fix = "name an audio file (WAV, FLAC, OGG, MP3)"
    try:
        with reading.open_file(Path(path), "audio", fix, within=within, follow=follow) as handle, \
                sf.SoundFile(handle) as sound:
            check_rate(path, sound.samplerate)
            if max_s * sound.samplerate < sound.frames < 1 << 62:  # 2**63 - 1: libsndfile does not know
                raise _too_long(path, sound.frames / sound.samplerate, max_s)
            yield sound
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise TtsrigError(f"cannot read audio {path}: {exc}. Is it a complete audio file? Re-export it as "
                          "WAV or FLAC.") from None


def check_rate(path: Path, rate: int) -> None:
    """One line when a file says its sample rate is one no recording has (see MIN_RATE)."""
    if not MIN_RATE <= rate <= MAX_RATE:
        raise TtsrigError(f"audio {path} says its sample rate is {rate} Hz, outside the {MIN_RATE}-{MAX_RATE} Hz "
                          "recordings have: its header is damaged, or it is not a recording. Re-export it as WAV "
                          "or FLAC (44.1, 48 or 24 kHz).")


def _too_long(path: Path, seconds: float | None, max_s: float) -> TtsrigError:
    """`seconds`: the length the header says; None when it said none and the read stopped at the bound."""
    if seconds is None:
        length = "longer than the"
    else:
        hours, rest = divmod(int(seconds), 3600)
        length = f"{hours}:{rest // 60:02d}:{rest % 60:02d} long, more than the"
    return TtsrigError(f"audio {path} is {length} {_duration(max_s)} ttsrig reads from one file: split it first "
                       "(e.g. ffmpeg -i IN -f segment -segment_time 1800 part%03d.wav), or use a shorter clip.")


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds / 60:g} min" if seconds >= 60 \
        else f"{seconds:g} s"


def _read_mono(sound, limit: int) -> np.ndarray:  # noqa: ANN001 (a soundfile.SoundFile)
    """At most `limit` + 1 frames, mixed down block by block: memory is the mono result and one block,
    whatever the channel count or what the header claims."""
    block, parts, total = max(1, _BLOCK_SAMPLES // max(1, sound.channels)), [], 0
    while total <= limit:
        data = sound.read(min(block, limit + 1 - total), dtype="float32", always_2d=True)
        if not len(data):
            break
        parts.append(data.mean(axis=1))
        total += len(data)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


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
