"""The environment a patch acts on: its site-packages, installed versions, and the patches' own record.

Where a venv keeps its packages, and the names of everything at its top, are envcheck.venv's to say; this
module reads and writes the patches' record there (what each patch changed, and where its backup is).
"""
from __future__ import annotations

import sys
import sysconfig
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from envcheck import locks, paths, reading
from envcheck.atomic import write_json_atomic
from envcheck.errors import TtsrigError
from envcheck.venv import PATCH_STATE_NAME, recorded_tier, site_packages


@dataclass
class Env:
    prefix: Path
    site: Path

    @classmethod
    def of(cls, venv: str | None) -> "Env":
        if venv is None:
            return cls(Path(sys.prefix), Path(sysconfig.get_paths()["purelib"]))
        prefix = Path(venv).absolute()
        site = site_packages(prefix)
        if not (prefix / "pyvenv.cfg").exists() or not site.is_dir():
            raise TtsrigError(f"{prefix} is not a Python venv (no pyvenv.cfg or lib/python3.X/site-packages). "
                              "Pass the venv bin/bootstrap built, e.g. --venv .venv.")
        return cls(prefix, site)

    def version(self, dist: str) -> str | None:
        return locks.installed(self.site).get(locks.canonical(dist))

    @property
    def state_path(self) -> Path:
        return self.prefix / PATCH_STATE_NAME

    def load_state(self) -> dict:
        if not self.state_path.exists():
            return {}
        try:
            data = reading.loads_json(reading.read_bytes(self.state_path, "the patch state record", "delete it and "
                                                         "apply again", follow=False))
            if not isinstance(data, dict):
                raise ValueError("not an object")
            return data
        except ValueError as exc:
            raise TtsrigError(f"the patch state record {self.state_path} is corrupt ({exc}). Reinstall torch "
                              "(re-run bin/bootstrap after `rm -r` of the venv's torch), delete the record, "
                              "and apply again.") from None

    def save_state(self, state: dict) -> None:
        write_json_atomic(self.state_path, state)

    @contextmanager
    def record_lock(self) -> Iterator[None]:
        """One writer of the record at a time: `apply` and `revert` run in another terminal (or by bootstrap)
        each read the record, change their patch's entry and write it back; two at once would lose one's."""
        with paths.folder_lock(self.prefix):
            yield

    def tier(self) -> str | None:
        """The tier bin/bootstrap built this venv for, if it did."""
        return recorded_tier(self.prefix)

    def layers(self) -> dict[str, dict]:
        """The layers bin/bootstrap added to this venv (--with asr), as its record lists them."""
        from envcheck.venv import read_state

        layers = (read_state(self.prefix) or {}).get("layers")
        return {name: entry for name, entry in layers.items() if isinstance(entry, dict)} \
            if isinstance(layers, dict) else {}
