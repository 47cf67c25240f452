"""The training-set manifest: one JSON object per line, paths relative to the manifest's folder.

    {"id": "book-0001-003", "audio": "wavs/book-0001-003.wav", "mel_f5": "mels/f5/book-0001-003.safetensors",
     "mel_styletts2": "mels/styletts2/book-0001-003.safetensors", "text": "...", "duration": 4.21,
     "speaker": "narrator", "source": "raw/book-0001.flac"}
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from envcheck.atomic import write_atomic
from envcheck.errors import TtsrigError

REQUIRED = ("id", "audio", "text", "duration", "speaker")


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


def write(path: Path, clips: list[Clip]) -> None:
    lines = [json.dumps({k: v for k, v in asdict(c).items() if v is not None}, ensure_ascii=False) for c in clips]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, ("\n".join(lines) + "\n" if lines else "").encode())


def read(path: Path) -> list[Clip]:
    """Every clip of a manifest; a bad line is reported by its number."""
    if not path.is_file():
        raise TtsrigError(f"manifest {path} does not exist: make one with `python -m trainers.prepare IN OUT`")
    clips = []
    fields = set(Clip.__dataclass_fields__)
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TtsrigError(f"{path}:{number} is not JSON ({exc.msg}); fix or delete that line, or re-run "
                              "trainers.prepare") from None
        if not isinstance(raw, dict) or any(k not in raw for k in REQUIRED):
            missing = [k for k in REQUIRED if not isinstance(raw, dict) or k not in raw]
            raise TtsrigError(f"{path}:{number} lacks {', '.join(missing)}")
        if not str(raw["text"]).strip():
            raise TtsrigError(f"{path}:{number} ({raw['id']}) has empty text")
        clips.append(Clip(**{k: v for k, v in raw.items() if k in fields}))
    if not clips:
        raise TtsrigError(f"manifest {path} has no clips")
    return clips
