"""A voice's settings: voices/<name>.toml, then command-line overrides.

Keys: checkpoint (a path or hf://org/repo/file; empty = the upstream pretrain), reference (a clip) and
reference_text (its transcript, F5 only), and the engine's sampling settings. Relative paths are taken
from the checkout's root, so the commands work from any directory.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

from envcheck.errors import TtsrigError

ROOT = Path(__file__).resolve().parents[1]


def load(name: str, path: str | None = None) -> dict:
    file = Path(path) if path else ROOT / "voices" / f"{name}.toml"
    try:
        config = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TtsrigError(f"voice config {file} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise TtsrigError(f"voice config {file} is not valid TOML: {exc}") from None
    config["_file"] = str(file)
    return config


def resolve(value: str | None) -> str | None:
    """A configured path, relative to the checkout; hub ids and absolute paths unchanged."""
    if not value or value.startswith("hf://") or Path(value).is_absolute():
        return value or None
    return str((ROOT / value).resolve()) if not Path(value).expanduser().exists() else str(Path(value).expanduser())
