"""Read hash-pinned lockfiles and compare them with what a venv holds.

Standard library only: bin/bootstrap uses this before any package is installed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from envcheck.errors import TtsrigError

REQUIREMENTS = Path(__file__).resolve().parent.parent / "requirements"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})\b")


def canonical(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Pin:
    name: str  # canonical
    version: str
    hashes: tuple[str, ...]


def parse_lock(path: Path) -> dict[str, Pin]:
    """Every `name==version --hash=...` requirement in a pip-tools style lock.

    Refuses a lock with a pin that carries no hash or a requirement that is not
    an exact pin: installing such a file would not be reproducible.
    """
    try:
        text = path.read_text()
    except OSError as exc:
        raise TtsrigError(f"cannot read lock {path}: {exc.strerror}. Restore it with `git checkout -- {path}`.")
    # Join backslash continuations into one logical line per requirement.
    logical = re.sub(r"\\\n", " ", text)
    pins: dict[str, Pin] = {}
    for lineno, line in enumerate(logical.splitlines(), 1):
        line = line.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            raise TtsrigError(f"{path.name}: option lines are not allowed in a lock ({line.split()[0]})")
        match = PIN.match(line)
        if not match:
            raise TtsrigError(f"{path.name}: '{line.split()[0]}' is not an exact pin (name==version). "
                              "Regenerate the lock with bin/lock instead of editing it by hand.")
        hashes = tuple(HASH.findall(line))
        if not hashes:
            raise TtsrigError(f"{path.name}: {match[1]}=={match[2]} has no --hash. Locks must be "
                              "hash-pinned: regenerate it with bin/lock.")
        pins[canonical(match[1])] = Pin(canonical(match[1]), match[2], hashes)
    if not pins:
        raise TtsrigError(f"{path.name} holds no pins: regenerate it with bin/lock.")
    return pins


def installed(site_packages: Path) -> dict[str, str]:
    """name -> version of every distribution in a site-packages folder, read from *.dist-info."""
    found: dict[str, str] = {}
    if not site_packages.is_dir():
        return found
    for meta in site_packages.glob("*.dist-info/METADATA"):
        name = version = None
        with meta.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("Name:"):
                    name = line[5:].strip()
                elif line.startswith("Version:"):
                    version = line[8:].strip()
                if name and version or line == "\n":
                    break
        if name and version:
            found[canonical(name)] = version
    return found


@dataclass
class Conformance:
    mismatched: dict[str, tuple[str, str]]  # name -> (locked, installed)
    missing: list[str]
    forbidden_present: list[str]
    extra: list[str]

    @property
    def ok(self) -> bool:
        return not (self.mismatched or self.missing or self.forbidden_present)


def conformance(pins: dict[str, Pin], have: dict[str, str], forbidden: list[str],
                allowed_extra: set[str] = frozenset()) -> Conformance:
    """Compare installed versions with the lock: equal, missing, forbidden, extra."""
    forbidden_c = {canonical(f) for f in forbidden}
    return Conformance(
        mismatched={n: (p.version, have[n]) for n, p in pins.items() if n in have and have[n] != p.version},
        missing=sorted(n for n in pins if n not in have),
        forbidden_present=sorted(n for n in have if n in forbidden_c),
        extra=sorted(n for n in have if n not in pins and n not in forbidden_c and n not in allowed_extra),
    )
