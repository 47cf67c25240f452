"""The user's list of trusted legacy checkpoints: sha256 -> where it was seen and why it is trusted.

It lives outside any venv and checkout (one list per user), in $TTSRIG_TRUST_FILE or
$XDG_CONFIG_HOME/ttsrig/trusted-checkpoints.json (~/.config/... by default), written atomically.
Trust is by content: a file that changes after it was trusted is no longer trusted.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from envcheck.atomic import write_json_atomic
from envcheck.errors import TtsrigError

FORMAT = 1


def default_path() -> Path:
    if os.environ.get("TTSRIG_TRUST_FILE"):
        return Path(os.environ["TTSRIG_TRUST_FILE"]).expanduser()
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config / "ttsrig" / "trusted-checkpoints.json"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_sha256(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text.lower())


@dataclass
class TrustList:
    path: Path
    entries: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None = None) -> "TrustList":
        path = path or default_path()
        if not path.exists():
            return cls(path)
        try:
            data = json.loads(path.read_text())
            entries = data["checkpoints"]
            if not isinstance(entries, dict) or not all(_is_sha256(k) for k in entries):
                raise ValueError("entries are not sha256 -> record")
        except (ValueError, KeyError, TypeError) as exc:
            raise TtsrigError(f"the checkpoint trust list {path} is corrupt ({exc}). Nothing was trusted. "
                              f"Fix or delete it, then add files again with `python -m patches trust add FILE`.") from None
        return cls(path, dict(entries))

    def contains(self, digest: str) -> bool:
        return digest.lower() in self.entries

    def add(self, checkpoint: Path, note: str = "") -> str:
        if not checkpoint.is_file():
            raise TtsrigError(f"cannot trust {checkpoint}: no such file")
        digest = file_sha256(checkpoint)
        self.entries[digest] = {"path": str(checkpoint.resolve()), "note": note,
                                "added": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self.save()
        return digest

    def remove(self, file_or_digest: str) -> str:
        digest = file_or_digest.lower() if _is_sha256(file_or_digest) else None
        if digest is None:
            target = Path(file_or_digest).expanduser()
            if target.is_file():
                digest = file_sha256(target)
            else:  # a file gone since: match the path it was trusted under
                wanted = str(target.resolve())
                digest = next((d for d, e in self.entries.items() if e.get("path") == wanted), None)
        if digest is None or digest not in self.entries:
            raise TtsrigError(f"{file_or_digest} is not in the trust list {self.path}")
        del self.entries[digest]
        self.save()
        return digest

    def save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except PermissionError:
            raise TtsrigError(f"cannot create {self.path.parent}: permission denied. Set TTSRIG_TRUST_FILE "
                              "to a file you can write.") from None
        write_json_atomic(self.path, {"format": FORMAT, "checkpoints": self.entries})
