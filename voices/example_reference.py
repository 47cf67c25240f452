"""The reference clip both voices fall back on: the English example the installed f5-tts package ships, with
its transcript. Found through the package (never copied into the checkout), and read from the package's own
settings file, so the clip and the sentence it says always belong together.

This module is the one place that knows where in the package the example lives.
"""
from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from envcheck import reading
from envcheck.errors import TtsrigError
from voices import tomlfile

PACKAGE = "f5_tts"
SETTINGS = PurePosixPath("infer/examples/basic/basic.toml")  # upstream's basic example: ref_audio, ref_text
REINSTALL = "re-run bin/bootstrap (it reinstalls f5-tts)"


@dataclass(frozen=True)
class Example:
    clip: Path
    text: str  # exactly what the clip says


def package_folder() -> Path | None:
    """Where the installed f5_tts package is, found without importing it (None: not installed)."""
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0]) if locations else None


def find(own_clip: str) -> Example:
    """The example clip and its transcript; `own_clip` is the caller's way to name a clip instead (the fix
    each refusal names beside re-installing)."""
    package = package_folder()
    if package is None:
        raise TtsrigError(f"no reference clip is set, and f5-tts, whose example clip is the default, is not "
                          f"installed in {sys.prefix}: {REINSTALL}, or pass {own_clip}")
    settings_file = package / SETTINGS
    missing = f"no reference clip is set, and the installed f5-tts ({package}) lacks its example"
    if not settings_file.is_file():
        raise TtsrigError(f"{missing} settings {settings_file}: {REINSTALL}, or pass {own_clip}")
    text = reading.read_text(settings_file, "f5-tts's example settings", f"{REINSTALL}, or pass {own_clip}")
    try:
        settings = tomlfile.loads(text)
    except tomlfile.TOMLDecodeError as exc:
        raise TtsrigError(f"f5-tts's example settings {settings_file} are not TOML ({exc}): {REINSTALL}, or pass "
                          f"{own_clip}") from None
    clip_name, transcript = settings.get("ref_audio"), settings.get("ref_text")
    if not isinstance(clip_name, str) or not isinstance(transcript, str) or not clip_name or not transcript.strip():
        raise TtsrigError(f"f5-tts's example settings {settings_file} name no clip (ref_audio) and transcript "
                          f"(ref_text): {REINSTALL}, or pass {own_clip}")
    relative = PurePosixPath(clip_name)
    if relative.is_absolute() or ".." in relative.parts:  # the example is the package's own file, nothing else
        raise TtsrigError(f"f5-tts's example settings {settings_file} name a clip outside the package "
                          f"({clip_name}): {REINSTALL}, or pass {own_clip}")
    clip = package / relative
    if not clip.is_file():
        raise TtsrigError(f"{missing} clip {clip} (named in {settings_file}): {REINSTALL}, or pass {own_clip}")
    return Example(clip, transcript.strip())
