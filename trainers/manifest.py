"""The training-set manifest: one JSON object per line, paths relative to the manifest's folder.

    {"id": "book-0001-003", "audio": "wavs/book-0001-003.wav", "mel_f5": "mels/f5/book-0001-003.safetensors",
     "mel_styletts2": "mels/styletts2/book-0001-003.safetensors", "text": "...", "duration": 4.21,
     "speaker": "narrator", "source": "raw/book-0001.flac"}

A relative path may not climb out of the manifest's folder (`../`); an absolute path (a hand-made manifest
of data kept elsewhere) is taken as written. Either way a trainer reads only regular files of the kind the
field names (audio for `audio`, `.safetensors` for a mel), and `check_files` proves they are all there and
readable before training starts.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from envcheck import reading
from envcheck.arguments import lone_surrogate
from envcheck.atomic import write_atomic
from envcheck.errors import TtsrigError

REQUIRED = ("id", "audio", "text", "duration", "speaker")
TEXT_FIELDS = ("id", "audio", "text", "speaker")
MEL_FIELDS = ("mel_f5", "mel_styletts2")
MEL_SUFFIX = ".safetensors"
SHOWN = 3  # problems named in a message; the rest are counted


@dataclass
class Clip:
    id: str
    audio: str
    text: str
    duration: float
    speaker: str
    source: str = ""
    mel_f5: str | None = None
    mel_styletts2: str | None = None

    def path(self, root: Path, key: str) -> Path:
        value = getattr(self, key)
        if not value:
            raise TtsrigError(f"clip {self.id} has no {key}: re-run `python -m trainers.prepare` with the mels "
                              "this trainer needs")
        return root / value


def read_utf8(path: Path, what: str, *, within: Path | None = None) -> str:
    """A text file a user made (metadata.csv, a transcript, a manifest), as UTF-8 (a BOM is allowed): a
    regular file (inside `within`, the data folder, when its links are followed; envcheck.reading).

    Not UTF-8 is refused, naming the line: guessing another encoding would put wrong letters into the
    training text without a word."""
    data = reading.read_bytes(path, what, "check that it exists and that you may read it", within=within,
                              limit=reading.DATA_LIMIT)
    return reading.decode_utf8(data, str(path), "re-save the file as UTF-8 (an editor's 'save with encoding', or "
                               "`iconv -f windows-1252 -t utf-8`) and re-run", bom=True)


def write(path: Path, clips: list[Clip]) -> None:
    lines = [json.dumps({k: v for k, v in asdict(c).items() if v is not None}, ensure_ascii=False) for c in clips]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, ("\n".join(lines) + "\n" if lines else "").encode())


def read(path: Path) -> list[Clip]:
    """Every clip of a manifest; a bad line is reported by its number."""
    if path.is_dir() and (path / "manifest.jsonl").is_file():
        raise TtsrigError(f"{path} is a folder: pass its manifest, {path / 'manifest.jsonl'}")
    if path.is_dir():
        raise TtsrigError(f"manifest {path} is a folder, not a manifest: pass a manifest.jsonl (make one with "
                          "`python -m trainers.prepare IN OUT`)")
    if not path.exists():
        raise TtsrigError(f"manifest {path} does not exist: make one with `python -m trainers.prepare IN OUT`")
    clips = []
    for number, line in enumerate(read_utf8(path, "manifest").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = reading.loads_json(line)
        except ValueError as exc:
            raise TtsrigError(f"{path}:{number} is not JSON ({getattr(exc, 'msg', exc)}); fix or delete that line, "
                              "or re-run trainers.prepare") from None
        clips.append(clip_of(raw, f"{path}:{number}"))
    if not clips:
        raise TtsrigError(f"manifest {path} has no clips")
    return clips


def clip_of(raw: object, where: str) -> Clip:
    """One manifest line as a Clip, or one line naming what is wrong with it."""
    if not isinstance(raw, dict) or any(k not in raw for k in REQUIRED):
        missing = [k for k in REQUIRED if not isinstance(raw, dict) or k not in raw]
        raise TtsrigError(f"{where} lacks {', '.join(missing)}")
    fix = "fix that line or re-run trainers.prepare"
    for key in TEXT_FIELDS + ("source",):
        if key in raw and not isinstance(raw[key], str):
            raise TtsrigError(f"{where}: {key} is {raw[key]!r}, not text; {fix}")
        bad = lone_surrogate(raw[key]) if key in raw else None
        if bad is not None:  # a JSON escape such as "\udce9": no tokenizer, phonemiser or file system takes it
            raise TtsrigError(f"{where}: {key} is not UTF-8 text (at {bad}: a lone surrogate such as \\udce9 is no "
                              f"character); write the characters themselves, in UTF-8; {fix}")
    if not raw["text"].strip():
        raise TtsrigError(f"{where} ({raw['id']}) has empty text")
    duration = raw["duration"]
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not math.isfinite(duration) \
            or duration <= 0:
        raise TtsrigError(f"{where} ({raw['id']}): duration {duration!r} is not a number of seconds above 0; {fix}")
    for key in ("audio",) + MEL_FIELDS:
        if raw.get(key) is not None:
            check_path(raw[key], key, where, fix)
    return Clip(**{k: v for k, v in raw.items() if k in Clip.__dataclass_fields__})


def check_path(value: object, key: str, where: str, fix: str) -> None:
    """A file field names a file of its kind, inside the manifest's folder unless written as absolute."""
    if not isinstance(value, str) or not value.strip():
        raise TtsrigError(f"{where}: {key} is {value!r}, not a file path; {fix}")
    if not os.path.isabs(value) and os.path.normpath(value).split(os.sep)[0] == "..":
        raise TtsrigError(f"{where}: {key} {value!r} leaves the manifest's folder (paths are relative to it); "
                          f"{fix}, or write the file's absolute path")
    if key in MEL_FIELDS and not value.endswith(MEL_SUFFIX):
        raise TtsrigError(f"{where}: {key} {value!r} is not a {MEL_SUFFIX} file; {fix}")
    if key == "audio":
        from trainers.audio import AUDIO_SUFFIXES

        if Path(value).suffix.lower() not in AUDIO_SUFFIXES:
            raise TtsrigError(f"{where}: audio {value!r} is not an audio file ({', '.join(AUDIO_SUFFIXES)}); {fix}")


# -- the files a trainer is about to read -----------------------------------------------------------

def check_files(manifest_path: Path, clips: list[Clip], keys: tuple[str, ...]) -> None:
    """Before the first epoch: every file that `keys` of `clips` name exists, is a regular file and reads.

    A missing mel found later, inside a DataLoader worker, stops training mid-epoch with a traceback."""
    root = manifest_path.parent
    bad = [f"{clip.id}: {clip.path(root, key)} {problem}" for clip in clips for key in keys
           if (problem := file_problem(clip.path(root, key), key))]
    if bad:
        total = len(clips) * len(keys)
        raise TtsrigError(f"{len(bad)} of the {total} files {manifest_path} names are missing or corrupt (e.g. "
                          f"{'; '.join(bad[:SHOWN])}): re-run `python -m trainers.prepare INPUT {root}` on the "
                          "recordings this set was made from to remake them")


def file_problem(path: Path, key: str) -> str | None:
    """What stops `path` being read as the `key` field's kind, or None."""
    if not path.exists():
        return "is missing"
    if not path.is_file():  # a folder, a device or a pipe (which would block the reader forever)
        return "is not a regular file"
    try:
        if key in MEL_FIELDS:
            return safetensors_problem(path, key)
        import soundfile as sf

        sf.info(str(path))
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    except RuntimeError as exc:  # soundfile's LibsndfileError
        return f"is not readable audio ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    return None


# The dtypes a trainer reads: trainers.prepare writes float32; float16, bfloat16 and float64 mels (a hand-made set)
# are converted to float32 when loaded.
MEL_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64"}


def mel_problem(dtype: object, shape: tuple[int, ...], key: str) -> str | None:
    """What stops a mel of this dtype (a torch dtype or safetensors' name of it) and shape training as `key`."""
    name = str(dtype).removeprefix("torch.")
    if name not in MEL_DTYPES.values() and name not in MEL_DTYPES:
        shown = re.sub(r"^([IUF])(\d+)$", lambda m: {"I": "int", "U": "uint", "F": "float"}[m[1]] + m[2], name)
        return (f"holds a mel of {shown.lower()}, not of floats (float32 as trainers.prepare writes; float16, "
                "bfloat16 and float64 are converted)")
    from trainers.mels import F5_MELS, STYLETTS2_MELS  # the bins' one owner (it needs torch, which reads mels)

    bins = {"mel_f5": F5_MELS, "mel_styletts2": STYLETTS2_MELS}[key]
    if len(shape) != 2 or shape[0] != bins:
        return f"holds a mel of shape {list(shape)}; {key} needs [{bins}, frames]"
    if shape[1] < 1:
        return "holds a mel of 0 frames"
    return None


def safetensors_problem(path: Path, key: str | None = None) -> str | None:
    """What stops `path` being read as a mel file (of `key`'s kind, when given: dtype, bins, frames), or None."""
    from safetensors import SafetensorError, safe_open

    try:  # safetensors checks the header and that the file is as long as the header says
        with safe_open(str(path), framework="pt") as fh:
            if "mel" not in fh.keys():
                return "has no tensor named mel"
            if key is not None:  # from the header: the data is not read
                mel = fh.get_slice("mel")
                return mel_problem(mel.get_dtype(), tuple(mel.get_shape()), key)
    except SafetensorError as exc:
        return f"is corrupt ({exc})"
    return None
