"""Checks of a render that need no ASR: numpy on the CPU, a few milliseconds per second of audio.

    check(wave, ...)  -> non-finite or silent output, clipping, long internal silences, a sound cut off at
                         the end (and at each sentence end, when the render's sentence ends are known), and
                         the speaking rate in phonemes per second against the reference clip's
    collapsed_phonemes(...) -> say-default phonemes whose predicted duration collapsed to the minimum

Levels are frame RMS in dB relative to the render's own speech level (the 90th percentile of its frames),
so a quiet and a loud render are judged alike. Every threshold below is a named constant with its reason.
These are pointers for the listener, not verdicts.
"""
from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from envcheck.errors import TtsrigError

SAMPLE_RATE = 24_000
FRAME_S = 0.020  # RMS window: longer than one pitch period of a low voice (85 Hz = 12 ms), shorter than a phoneme
HOP_S = 0.010
SPEECH_PERCENTILE = 90  # the speech level: loud enough to skip pauses, below the few loudest bursts
SILENT_PEAK = 10 ** (-50 / 20)  # a render whose loudest sample is below -50 dBFS has nothing to listen to
MIN_SECONDS = 0.3  # shorter than one short word
CLIP_LEVEL = 0.999  # full scale: audition clips to [-1, 1] before writing 16-bit PCM (32767/32768 = 0.99997)
CLIP_FRACTION = 0.001  # isolated full-scale samples are inaudible; 0.1% (24 per second) are heard as crackle
SILENCE_BELOW_DB = 35.0  # a frame this far below the speech level is a pause (vocoder noise sits 40-60 dB down)
LONG_SILENCE_S = 0.8  # read speech pauses 0.3-0.7 s at sentence ends, ttsrig's sentence join adds 0.1 s;
#                       a longer internal gap is a word (or several) the model swallowed, or a stall
PAUSE_S = 0.15  # gaps at least this long are pauses, left out of the voiced time; shorter ones are stop closures
ENDING_S = 0.030  # the last 30 ms of the render
CUT_WITHIN_DB = 20.0  # a natural ending has decayed to the noise floor (40+ dB down) before the file ends;
#                       sound within 20 dB of the speech level in the last 30 ms was cut off mid-sound
SEAM_WINDOW_S = 0.020  # at a sentence end: the first 20 ms of the join's fade (at most 2 dB attenuated)
JOIN_FADE_S = 0.05  # voices.text.join's cross-fade (its fade_s default)
JOIN_GAP_S = 0.1  # and its pause between sentences (gap_s)
RATE_HIGH = 1.25  # phonemes per second against the reference clip's: one speaker reads within about +-10%
RATE_LOW = 0.80   # (espeak-ng's sentences vary +-6%); a quarter faster means sounds were skipped or squeezed,
#                   a fifth slower means stretched or mumbled speech
COLLAPSED_FRAMES = 1  # StyleTTS2 rounds each phoneme's predicted duration and clamps it to at least one frame
NOT_PHONEMES = frozenset("ˈˌːˑ")  # stress and length marks are letters to unicodedata, not phonemes


# -- loading and levels ---------------------------------------------------------------------------------


def load(path: Path) -> np.ndarray:
    """A render as float32 mono at 24 kHz (any rate or channel count is converted)."""
    from trainers import audio

    if not os.path.lexists(path):
        raise TtsrigError(f"render {path} is missing: render the folder again with `voices/audition render`")
    return audio.load(Path(path), SAMPLE_RATE, follow=False)  # the folder's own file, never through a link


def frame_db(wave: np.ndarray, rate: int = SAMPLE_RATE) -> np.ndarray:
    """RMS level in dBFS of FRAME_S windows every HOP_S (the last window may be shorter)."""
    frame, hop = int(FRAME_S * rate), int(HOP_S * rate)
    if len(wave) == 0:
        return np.zeros(0)
    sums = np.concatenate([[0.0], np.cumsum(np.square(wave, dtype=np.float64))])
    starts = np.arange(0, len(wave), hop)
    ends = np.minimum(starts + frame, len(wave))
    power = (sums[ends] - sums[starts]) / np.maximum(ends - starts, 1)
    return 10 * np.log10(power + 1e-12)


def rms_db(wave: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(wave, dtype=np.float64)) + 1e-12)) if len(wave) else -120.0


def speech_level(db: np.ndarray) -> float:
    return float(np.percentile(db, SPEECH_PERCENTILE)) if len(db) else -120.0


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) frame ranges where mask is true."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def pauses(db: np.ndarray, level: float) -> list[tuple[float, float]]:
    """(start, length) in seconds of every gap inside the speech (leading and trailing silence left out)."""
    quiet = db < level - SILENCE_BELOW_DB
    loud = np.flatnonzero(~quiet)
    if not len(loud):
        return []
    first, last = loud[0], loud[-1]
    return [(float((a + first) * HOP_S), float((b - a) * HOP_S)) for a, b in _runs(quiet[first:last + 1])]


def voiced_seconds(db: np.ndarray, level: float) -> float:
    """From the first sound to the last, less the pauses (gaps of PAUSE_S or more)."""
    loud = np.flatnonzero(db >= level - SILENCE_BELOW_DB)
    if not len(loud):
        return 0.0
    span = (loud[-1] - loud[0] + 1) * HOP_S
    return span - sum(length for _, length in pauses(db, level) if length >= PAUSE_S)


# -- phonemes -------------------------------------------------------------------------------------------


def is_phoneme(symbol: str) -> bool:
    """A sound of the phoneme string (espeak-ng IPA): letters, not stress or length marks or punctuation."""
    return unicodedata.category(symbol).startswith("L") and symbol not in NOT_PHONEMES


def espeak_phoneme_count(text: str) -> int:
    """Phonemes of a text as ttsrig's phonemiser (trainers.phonemes: espeak-ng en-us) writes them."""
    from trainers import phonemes

    return sum(is_phoneme(c) for c in "".join(phonemes.phonemize([text])))


PhonemeCounter = Callable[[str], int]


def speaking_rate(db: np.ndarray, level: float, phoneme_count: int) -> float | None:
    voiced = voiced_seconds(db, level)
    return phoneme_count / voiced if voiced > 0 else None


def clip_rate(clip: Path, text: str, count: PhonemeCounter = espeak_phoneme_count) -> float:
    """Phonemes per second of the reference clip, from its transcript."""
    wave = load(clip)
    db = frame_db(wave)
    rate = speaking_rate(db, speech_level(db), count(text))
    if not rate:
        raise TtsrigError(f"reference clip {clip} is silent: its speaking rate cannot be measured")
    return rate


# -- sentence ends --------------------------------------------------------------------------------------


def sentence_ends(piece_lengths: list[int], rate: int = SAMPLE_RATE, fade_s: float = JOIN_FADE_S,
                  gap_s: float = JOIN_GAP_S) -> list[int]:
    """Where each sentence but the last ends in the output of voices.text.join (the same arithmetic):
    the fade into the pause covers the JOIN_FADE_S before each of these samples."""
    fade, gap = int(fade_s * rate), int(gap_s * rate)
    ends: list[int] = []
    length = piece_lengths[0] if piece_lengths else 0
    for piece in piece_lengths[1:]:
        ends.append(length)
        length = length - min(fade, length, gap + piece) + gap + piece
    return ends


# -- the checks -----------------------------------------------------------------------------------------


@dataclass
class SignalCheck:
    seconds: float
    flags: list[str] = field(default_factory=list)        # short names: silent, nonfinite, clipping, ...
    notes: list[str] = field(default_factory=list)        # one line each, for people
    level_db: float | None = None
    nonfinite: int = 0
    clipped_fraction: float = 0.0
    silences: list[dict] = field(default_factory=list)    # {"start", "seconds"} of each long internal gap
    ending_db: float | None = None                        # last 30 ms, relative to the speech level
    sentence_cuts: list[dict] = field(default_factory=list)  # {"sentence", "at", "db"}
    rate: dict | None = None

    @property
    def words_lost(self) -> bool:
        """The signal alone shows words lost: a sound cut off (at the end or a sentence end), or no usable
        output at all."""
        return bool({"ending-cut", "sentence-cut", "silent", "nonfinite"} & set(self.flags))

    def flag(self, name: str, note: str) -> None:
        self.flags.append(name)
        self.notes.append(note)

    def to_json(self) -> dict:
        return {"seconds": round(self.seconds, 3), "flags": self.flags, "notes": self.notes,
                "level_db": None if self.level_db is None else round(self.level_db, 1),
                "nonfinite": self.nonfinite, "clipped_fraction": round(self.clipped_fraction, 6),
                "silences": self.silences, "ending_db": None if self.ending_db is None else round(self.ending_db, 1),
                "sentence_cuts": self.sentence_cuts, "rate": self.rate}


def _check_clipping(wave: np.ndarray, result: SignalCheck) -> None:
    result.clipped_fraction = float(np.mean(np.abs(wave) >= CLIP_LEVEL))
    if result.clipped_fraction > CLIP_FRACTION:
        result.flag("clipping", f"{result.clipped_fraction:.2%} of the samples are at full scale (clipping)")


def _check_silences(db: np.ndarray, level: float, result: SignalCheck) -> None:
    for start, length in pauses(db, level):
        if length >= LONG_SILENCE_S:
            result.silences.append({"start": round(start, 2), "seconds": round(length, 2)})
    if result.silences:
        where = ", ".join(f"{s['seconds']:.1f} s at {s['start']:.1f} s" for s in result.silences)
        result.flag("long-silence", f"long silence inside the speech: {where}")


def _check_ending(wave: np.ndarray, level: float, result: SignalCheck) -> None:
    result.ending_db = rms_db(wave[-int(ENDING_S * SAMPLE_RATE):]) - level
    if result.ending_db > -CUT_WITHIN_DB:
        result.flag("ending-cut", f"the render ends mid-sound: its last {ENDING_S * 1000:.0f} ms are "
                                  f"{-result.ending_db:.0f} dB below the speech level (a natural ending decays "
                                  f"by {CUT_WITHIN_DB:.0f} dB or more)")


def _check_sentence_ends(wave: np.ndarray, level: float, ends_s: list[float], result: SignalCheck) -> None:
    fade, window = int(JOIN_FADE_S * SAMPLE_RATE), int(SEAM_WINDOW_S * SAMPLE_RATE)
    for number, end_s in enumerate(ends_s, start=1):
        start = max(0, int(round(end_s * SAMPLE_RATE)) - fade)
        db = rms_db(wave[start:start + window]) - level
        if db > -CUT_WITHIN_DB:
            result.sentence_cuts.append({"sentence": number, "at": round(end_s, 2), "db": round(db, 1)})
    if result.sentence_cuts:
        which = ", ".join(f"{c['sentence']} (at {c['at']:.1f} s)" for c in result.sentence_cuts)
        result.flag("sentence-cut", f"sentence {which} ends mid-sound: its last word was cut off")


def _measure_rate(db: np.ndarray, level: float, phonemes: int, result: SignalCheck) -> None:
    rate = speaking_rate(db, level, phonemes)
    if rate is not None:
        result.rate = {"phonemes": phonemes, "voiced_seconds": round(phonemes / rate, 2),
                       "per_second": round(rate, 2), "reference_per_second": None, "basis": None, "ratio": None}


def compare_rate(result: SignalCheck, reference: float, basis: str) -> None:
    """Set the render's rate against a reference rate (the reference clip's, or the renders' median) and
    flag it when it is too fast or too slow."""
    if result.rate is None or not reference:
        return
    rate = result.rate["per_second"]
    ratio = rate / reference
    result.rate.update(reference_per_second=round(reference, 2), basis=basis, ratio=round(ratio, 3))
    if ratio > RATE_HIGH:
        result.flag("fast", f"{rate:.1f} phonemes/s is {ratio:.2f}x the {basis}'s rate: sounds skipped or squeezed?")
    elif ratio < RATE_LOW:
        result.flag("slow", f"{rate:.1f} phonemes/s is {ratio:.2f}x the {basis}'s rate: stretched or mumbled?")


def check(wave: np.ndarray, *, phonemes: int | None = None, reference_rate: float | None = None,
          rate_basis: str = "reference clip", sentence_ends_s: list[float] | None = None) -> SignalCheck:
    """Every ASR-free check of one 24 kHz render. phonemes: the passage's phoneme count (for the rate);
    sentence_ends_s: where each sentence but the last ended, in seconds (see sentence_ends)."""
    wave = np.asarray(wave, dtype=np.float32).reshape(-1)
    result = SignalCheck(seconds=len(wave) / SAMPLE_RATE)
    finite = np.isfinite(wave)
    result.nonfinite = int(len(wave) - finite.sum())
    if result.nonfinite:
        result.flag("nonfinite", f"{result.nonfinite} samples are NaN or infinite: the model's output broke down")
        wave = np.where(finite, wave, 0.0).astype(np.float32)
    if len(wave) < MIN_SECONDS * SAMPLE_RATE or float(np.max(np.abs(wave), initial=0.0)) < SILENT_PEAK:
        result.flag("silent", f"silent or shorter than {MIN_SECONDS} s: there is nothing to screen")
        return result
    db = frame_db(wave)
    level = result.level_db = speech_level(db)
    _check_clipping(wave, result)
    _check_silences(db, level, result)
    _check_ending(wave, level, result)
    if sentence_ends_s:
        _check_sentence_ends(wave, level, sentence_ends_s, result)
    if phonemes:
        _measure_rate(db, level, phonemes, result)
        if reference_rate:
            compare_rate(result, reference_rate, rate_basis)
    return result


def collapsed_phonemes(phoneme_text: str, frames: list[int], min_frames: int = COLLAPSED_FRAMES) -> list[dict]:
    """say-default: the phonemes whose predicted duration collapsed to min_frames or less.

    phoneme_text: the phoneme string one token per symbol (trainers.phonemes.phonemize, unknown symbols
    removed); frames: the predicted duration of each of its symbols, in order (the pads left out).
    Stress marks, spaces and punctuation are short by nature and never reported."""
    if len(phoneme_text) != len(frames):
        raise ValueError(f"{len(phoneme_text)} symbols but {len(frames)} durations")
    collapsed, word_start = [], 0
    for index, (symbol, n) in enumerate(zip(phoneme_text, frames)):
        if symbol == " ":
            word_start = index + 1
        elif is_phoneme(symbol) and n <= min_frames:
            word_end = phoneme_text.find(" ", index)
            word = phoneme_text[word_start: word_end if word_end >= 0 else len(phoneme_text)]
            collapsed.append({"phoneme": symbol, "index": index, "frames": int(n), "word": word})
    return collapsed
