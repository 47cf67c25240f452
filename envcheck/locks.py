"""Requirement files and hash-pinned locks: where they are, reading them, writing nodeps.txt, and comparing a
venv with them.

The one owner of the supported Pythons and of where a tier's lock lives: requirements/py3.X/<tier>.txt,
one pip-compile per Python (`lock_path`). bootstrap.txt, nodeps.txt, dev.txt and test-in-venv.txt are single
files for every Python.

`logical_lines` is the one reader of pip's requirement-file syntax (continuations, comments); the lock
parser here, `envcheck scan` (knowledge.py) and bin/lock's nodeps.txt all read through it.
Standard library only: bin/bootstrap uses this before any package is installed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from envcheck.digests import file_sha256
from envcheck.errors import TtsrigError
from envcheck.tiers import TIER_NAMES

REQUIREMENTS = Path(__file__).resolve().parent.parent / "requirements"
COMMENT = re.compile(r"(^|\s)#.*$")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})\b")
RESTORE = "Restore it with `git checkout -- requirements/` or regenerate it with bin/lock."
# CPython versions with a lock per tier. f5-tts needs 3.10 or newer; 3.14 has no torch 2.7/2.8 wheels.
SUPPORTED_PYTHONS: tuple[tuple[int, int], ...] = ((3, 10), (3, 11), (3, 12), (3, 13))


def python_name(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def supported_range() -> str:
    """'3.10 to 3.13', for messages."""
    return f"{python_name(SUPPORTED_PYTHONS[0])} to {python_name(SUPPORTED_PYTHONS[-1])}"


def major_minor(version: str | tuple[int, ...]) -> tuple[int, int]:
    """(3, 12) from '3.12', '3.12.1' or (3, 12, 1); TtsrigError for anything else."""
    parts = version.split(".") if isinstance(version, str) else [str(v) for v in version]
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        raise TtsrigError(f"{version!r} is not a Python version (e.g. 3.12)") from None


def lock_names() -> tuple[str, ...]:
    """Every lock made per Python: each tier's, and each tier's lock for a GPU class (envcheck/data/gpus.json)."""
    from envcheck import gpu_table

    return TIER_NAMES + tuple(lock.name for lock in gpu_table.load().locks)


# Lock layers: optional parts installed on top of a tier's lock (`bin/bootstrap --with NAME`), each compiled per
# (Python, tier) by bin/lock with that tier's lock as its constraints, so a layer never moves one of the tier's
# pins. Name -> the tiers it has a lock for (a GPU lock takes its tier's layer: the layers hold no torch).
# ASR: faster-whisper on v2 and v3; a pre-v2 CPU gets whisper.cpp built on the machine instead (CTranslate2
# dies with SIGILL there when it loads a model: requirements/evidence/asr-phenom.txt).
LAYERS = {"asr": ("v2", "v3")}


def layer_path(layer: str, tier: str, python_version: str | tuple[int, ...],
               requirements: Path | None = None) -> Path | None:
    """requirements/py3.X/<tier>-<layer>.txt for a tier (or the tier of a GPU lock), or None when the layer has
    no lock for that tier (pre-v2's ASR is built, not installed); a missing file is one line."""
    from envcheck import gpu_table

    base = next((lock.tier for lock in gpu_table.load().locks if lock.name == tier), tier)
    if base not in LAYERS[layer]:
        return None
    tier_lock = lock_path(base, python_version, requirements)
    path = tier_lock.with_name(f"{base}-{layer}.txt")
    if not path.is_file():
        version = python_name(major_minor(python_version))
        raise TtsrigError(f"the {layer} layer of tier {base} for CPython {version} ({display(path)}) is missing: "
                          f"make it with `bin/lock --python {version} {layer}`, or restore it with "
                          "`git checkout -- requirements/`.")
    return path


def lock_path(tier: str, python_version: str | tuple[int, ...], requirements: Path | None = None) -> Path:
    """requirements/py3.X/<tier>.txt: the lock of `tier` (or of a tier's GPU lock, `lock_names`) for that Python;
    refuses an unknown name, an unsupported Python or a missing file in one line. `requirements` is the folder
    (tests use a copy)."""
    folder = REQUIREMENTS if requirements is None else Path(requirements)
    if tier not in lock_names():
        raise TtsrigError(f"unknown tier {tier!r}: choose one of {', '.join(TIER_NAMES)}")
    version = major_minor(python_version)
    if version not in SUPPORTED_PYTHONS:
        raise TtsrigError(f"ttsrig has no locks for Python {python_name(version)}: its locks are for CPython "
                          f"{supported_range()}. Pass --python with one of those.")
    path = folder / f"py{python_name(version)}" / f"{tier}.txt"
    if not path.is_file():
        raise TtsrigError(f"the lock of tier {tier} for CPython {python_name(version)} ({display(path)}) is "
                          f"missing: make it with `bin/lock --python {python_name(version)} {tier}`, or restore it "
                          "with `git checkout -- requirements/`.")
    return path


def canonical(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Pin:
    name: str  # canonical
    version: str
    hashes: tuple[str, ...]
    line: int = field(default=0, compare=False)  # where `name==version` stands in its lock (1-based)
    hash_lines: tuple[int, ...] = field(default=(), compare=False)  # the line of each hash


def display(path: Path) -> str:
    """A lock's path as the user knows it: relative to the checkout when inside it."""
    try:
        return str(Path(path).resolve().relative_to(REQUIREMENTS.parent))
    except ValueError:
        return str(path)


def parse_lock(path: Path) -> dict[str, Pin]:
    """Every `name==version --hash=...` requirement in a pip-tools style lock.

    Refuses a lock with a pin that carries no hash or a requirement that is not
    an exact pin: installing such a file would not be reproducible.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise TtsrigError(f"cannot read lock {display(path)}: {exc.strerror}. {RESTORE}") from None
    except UnicodeDecodeError as exc:
        line = Path(path).read_bytes()[:exc.start].count(b"\n") + 1
        raise TtsrigError(f"{display(path)} line {line}: not UTF-8 text, so the lock was edited or damaged. "
                          f"{RESTORE}") from None
    return parse_lock_text(text, display(path))


@dataclass(frozen=True)
class Logical:
    """One requirement line of a pip requirements file or lock."""

    line: int  # where it starts (1-based)
    text: str  # backslash continuations joined, comments removed, stripped
    hash_lines: dict[str, int] = field(default_factory=dict, compare=False)  # each --hash's own line


def logical_lines(text: str) -> Iterator[Logical]:
    """The non-empty lines of a requirements file or lock, as pip reads them: a comment runs from a `#` at
    the start or after white space to the end of its line; a line ending in a backslash goes on in the next."""
    start, parts, hash_at = 0, [], {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = COMMENT.sub("", raw).rstrip()
        if not parts:
            start = number
        for digest in HASH.findall(line):
            hash_at.setdefault(digest, number)
        if line.endswith("\\"):
            parts.append(line[:-1])
            continue
        joined = " ".join([*parts, line]).strip()
        if joined:
            yield Logical(start, joined, hash_at)
        parts, hash_at = [], {}
    joined = " ".join(parts).strip()
    if joined:
        yield Logical(start, joined, hash_at)


def parse_lock_text(text: str, where: str) -> dict[str, Pin]:
    """parse_lock on a lock's text; `where` names the file in messages."""
    pins: dict[str, Pin] = {}
    for logical in logical_lines(text):
        number, line, hash_at = logical.line, logical.text, logical.hash_lines
        if line.startswith("-"):
            raise TtsrigError(f"{where} line {number}: option lines are not allowed in a lock "
                              f"({line.split()[0]}). {RESTORE}")
        match = PIN.match(line)
        if not match:
            raise TtsrigError(f"{where} line {number}: '{line.split()[0]}' is not an exact pin (name==version). "
                              "Regenerate the lock with bin/lock instead of editing it by hand.")
        name, version = canonical(match[1]), match[2]
        hashes = tuple(HASH.findall(line))
        if not hashes:
            raise TtsrigError(f"{where} line {number}: {match[1]}=={version} has no --hash. Locks must be "
                              f"hash-pinned. {RESTORE}")
        if name in pins:
            raise TtsrigError(f"{where} line {number}: {match[1]} is pinned a second time (first on line "
                              f"{pins[name].line}). {RESTORE}")
        pins[name] = Pin(name, version, hashes, number, tuple(hash_at.get(h, number) for h in hashes))
    if not pins:
        raise TtsrigError(f"{where} holds no pins. {RESTORE}")
    return pins


def file_pin(filename: str) -> tuple[str, str] | None:
    """(canonical name, version) of a wheel or sdist file name; None for any other file."""
    if filename.endswith(".whl"):
        parts = filename[:-4].split("-")
        return (canonical(parts[0]), parts[1]) if len(parts) >= 5 else None
    for ext in (".tar.gz", ".zip"):
        if filename.endswith(ext):
            name, _, version = filename[:-len(ext)].rpartition("-")
            return (canonical(name), version) if name else None
    return None


NODEPS_HEADER = ("#\n# This file is autogenerated by bin/lock from nodeps.in.\n"
                 "# Install with --no-deps: these packages' own requirements are replaced by runtime.in.\n#\n")


def nodeps_lock_text(pins_file: Path, downloads: Path) -> str:
    """nodeps.txt: each exact pin of nodeps.in with the sha256 of every file pip downloaded for it."""
    hashes: dict[str, list[str]] = {}
    for path in sorted(downloads.iterdir()):
        key = file_pin(path.name)
        if key:
            hashes.setdefault(key[0], []).append(file_sha256(path))
    entries = [NODEPS_HEADER]
    for logical in logical_lines(Path(pins_file).read_text(encoding="utf-8")):
        name = canonical(logical.text.split("==")[0])
        if name not in hashes:
            raise TtsrigError(f"{display(pins_file)} line {logical.line}: no file of {logical.text} in "
                              f"{downloads}: pip download did not fetch it.")
        hash_lines = [f"    --hash=sha256:{digest}" for digest in sorted(hashes[name])]
        entries.append(" \\\n".join([logical.text, *hash_lines]) + "\n")
    return "".join(entries)


@dataclass(frozen=True)
class Edit:
    line: int
    what: str


def hand_edits(current: dict[str, Pin], reference: dict[str, Pin]) -> list[Edit]:
    """Where `current` contradicts a trusted copy of the same lock, by line.

    A file on the index has one name, one version and one hash for ever, so a hash that the reference
    gives to another version, or a hash of an unchanged version that was replaced or removed, can
    only come from an edit. A version changed together with all its hashes is a regenerated lock
    (bin/lock), not an edit; new hashes added beside the old ones are new uploads.
    """
    owner = {h: pin for pin in reference.values() for h in pin.hashes}
    edits: list[Edit] = []
    for name, pin in sorted(current.items(), key=lambda item: item[1].line):
        stolen = [owner[h] for h in pin.hashes if h in owner and
                  (owner[h].name, owner[h].version) != (name, pin.version)]
        if stolen:
            was = stolen[0]
            edits.append(Edit(pin.line, f"{name} {pin.version} carries the hashes of {was.name} {was.version}"
                                        f"{' (the version was changed by hand)' if was.name == name else ''}"))
            continue
        old = reference.get(name)
        if old is None or old.version != pin.version or set(old.hashes) <= set(pin.hashes):
            continue
        added = [(line, h) for h, line in zip(pin.hashes, pin.hash_lines) if h not in old.hashes]
        if added:
            line, digest = min(added)
            edits.append(Edit(line, f"the hash sha256:{digest[:12]}... of {name} {pin.version} was changed "
                                    "(it is not one of that release's files)"))
        else:
            edits.append(Edit(pin.line, f"hashes of {name} {pin.version} were removed"))
    return edits


def refuse_hand_edits(where: str, current: dict[str, Pin], reference: dict[str, Pin]) -> None:
    """One line naming the first edited line of a lock, if any."""
    edits = hand_edits(current, reference)
    if edits:
        more = f" (and {len(edits) - 1} more)" if len(edits) > 1 else ""
        raise TtsrigError(f"{where} line {edits[0].line}: {edits[0].what}{more}: the lock was edited by hand. "
                          f"{RESTORE}")


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
