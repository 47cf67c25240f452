"""Which CPython and glibc a package file installs on, from its name's tags (PEP 425, PEP 600).

Two users: `envcheck scan` asks it of the files a pin can install (data/wheel-files.json, the index's file
list for every pin of every lock, refreshed by bin/lock), and the report asks it of the wheels installed in
a venv (the Tag lines of their WHEEL files).

Standard library only: bin/bootstrap asks it, with whatever python3 starts it, before anything is installed.
    python -m envcheck.wheels refresh     # re-read the index's file list for every pin of every lock
"""
from __future__ import annotations

import functools
import json
import os
import re
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from envcheck import locks
from envcheck.atomic import write_atomic
from envcheck.errors import TtsrigError

DATA_FILE = Path(__file__).with_name("data") / "wheel-files.json"
INDEX = "https://pypi.org/simple"  # the index the locks are resolved against (bin/lock)
# PEP 600's aliases for the manylinux tags that predate the glibc-numbered form.
LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
MANYLINUX = re.compile(r"^manylinux_(\d+)_(\d+)_x86_64$")
CPYTHON = re.compile(r"^cp(\d)(\d+)$")


@dataclass(frozen=True)
class Tag:
    """One PEP 425 tag: interpreter, ABI, platform."""
    interpreter: str
    abi: str
    platform: str

    def __str__(self) -> str:
        return f"{self.interpreter}-{self.abi}-{self.platform}"


def parse_tag(text: str) -> frozenset[Tag]:
    """'py2.py3-none-any' -> its tags (a compressed tag set names several with dots)."""
    interpreters, abis, platforms = text.strip().lower().split("-")
    return frozenset(Tag(i, a, p) for i in interpreters.split(".") for a in abis.split(".")
                     for p in platforms.split("."))


def wheel_tags(filename: str) -> frozenset[Tag]:
    """The tags of a wheel's file name (PEP 427: name-version[-build]-python-abi-platform.whl)."""
    parts = filename[:-len(".whl")].split("-") if filename.endswith(".whl") else []
    if len(parts) not in (5, 6):
        raise ValueError(f"{filename} is not a wheel's file name")
    return parse_tag("-".join(parts[-3:]))


def file_version(filename: str) -> str | None:
    """The version a wheel's or sdist's file name carries."""
    if filename.endswith(".whl"):
        parts = filename.split("-")
        return parts[1] if len(parts) in (5, 6) else None
    for suffix in (".tar.gz", ".zip"):
        if filename.endswith(suffix):
            return filename[:-len(suffix)].rpartition("-")[2] or None
    return None


@dataclass(frozen=True)
class Target:
    """Where files must install: a CPython X.Y on Linux x86-64, with this glibc (None: not judged)."""
    python: tuple[int, int]
    glibc: tuple[int, int] | None = None

    def describe(self) -> str:
        glibc = f" and glibc {self.glibc[0]}.{self.glibc[1]}" if self.glibc else ""
        return f"CPython {self.python[0]}.{self.python[1]}{glibc}"


def parse_glibc(text: str) -> tuple[int, int] | None:
    """'glibc 2.36' (os.confstr's answer) or '2.36' -> (2, 36)."""
    match = re.search(r"(\d+)\.(\d+)", text or "")
    return (int(match[1]), int(match[2])) if match else None


def host_glibc() -> tuple[int, int] | None:
    """This machine's glibc; None on a libc that is not glibc (musl: no manylinux wheel fits)."""
    try:
        return parse_glibc(os.confstr("CS_GNU_LIBC_VERSION") or "")
    except (ValueError, OSError):
        return None


def glibc_needed(platform: str) -> tuple[int, int] | None:
    """The oldest glibc a Linux x86-64 platform tag runs on; None for `any` and a locally built
    `linux_x86_64` (it was built against the glibc it runs on)."""
    legacy = platform[:-len("_x86_64")] if platform.endswith("_x86_64") else platform
    if legacy in LEGACY_MANYLINUX:
        return LEGACY_MANYLINUX[legacy]
    match = MANYLINUX.match(platform)
    return (int(match[1]), int(match[2])) if match else None


def platform_fits(platform: str, glibc: tuple[int, int] | None) -> bool:
    if platform in ("any", "linux_x86_64"):
        return True
    needed = glibc_needed(platform)
    if needed is None:  # another OS or architecture, or musl
        return False
    return glibc is None or needed <= glibc


def python_fits(tag: Tag, python: tuple[int, int]) -> bool:
    major, minor = python
    interpreter, abi = tag.interpreter, tag.abi
    if interpreter in (f"py{major}", f"py{major}{minor}", f"cp{major}{minor}"):
        return abi in ("none", "abi3", f"cp{major}{minor}")
    cpython = CPYTHON.match(interpreter)
    if abi == "abi3" and cpython and int(cpython[1]) == major:  # the stable ABI: built for 3.Y, runs on >= 3.Y
        return int(cpython[2]) <= minor
    return False


def tag_fits(tag: Tag, target: Target) -> bool:
    return python_fits(tag, target.python) and platform_fits(tag.platform, target.glibc)


@dataclass(frozen=True)
class Fit:
    wheel: str | None  # a wheel that installs on the target
    sdist: str | None  # the source distribution, which pip or uv would build instead
    oldest_glibc: tuple[int, int] | None  # the oldest glibc any wheel for this Python accepts

    @property
    def needs_build(self) -> bool:
        return self.wheel is None


def fit(filenames: list[str], target: Target) -> Fit:
    wheel = sdist = None
    glibcs = []
    for name in filenames:
        if name.endswith(".whl"):
            tags = wheel_tags(name)
            if any(python_fits(t, target.python) for t in tags):
                glibcs += [g for t in tags if python_fits(t, target.python) for g in [glibc_needed(t.platform)] if g]
            if wheel is None and any(tag_fits(t, target) for t in tags):
                wheel = name
        elif sdist is None:
            sdist = name
    return Fit(wheel, sdist, min(glibcs) if glibcs else None)


# -- the wheels installed in a venv --------------------------------------------------------------------

def installed_tags(site_packages: Path) -> dict[str, frozenset[Tag]]:
    """'name version' -> the tags its WHEEL file records, for every wheel-installed distribution."""
    found = {}
    for wheel_file in sorted(site_packages.glob("*.dist-info/WHEEL")):
        tags = frozenset(tag for line in wheel_file.read_text(errors="replace").splitlines()
                         if line.startswith("Tag:") for tag in parse_tag(line.split(":", 1)[1].strip()))
        if tags:
            name, _, version = wheel_file.parent.name[:-len(".dist-info")].partition("-")
            found[f"{name} {version}"] = tags
    return found


def misfits(installed: dict[str, frozenset[Tag]], target: Target) -> list[str]:
    """The installed distributions none of whose tags runs on the target, with their tags."""
    return [f"{dist} ({', '.join(sorted(str(t) for t in tags)[:2])})" for dist, tags in sorted(installed.items())
            if not any(tag_fits(t, target) for t in tags)]


def newest_glibc_needed(installed: dict[str, frozenset[Tag]], target: Target) -> tuple[tuple[int, int], str] | None:
    """The highest glibc the installed wheels ask for, and which distribution asks it (a wheel with several
    platform tags asks for the lowest of those that fit)."""
    asks = []
    for dist, tags in installed.items():
        fitting = [glibc_needed(t.platform) for t in tags if python_fits(t, target.python)]
        needs = [g for g in fitting if g]
        if needs and len(needs) == len(fitting):
            asks.append((min(needs), dist))
    return max(asks) if asks else None


# -- the table: every lock pin's files on the index --------------------------------------------------

def relevant(filename: str) -> bool:
    """Files that could install on Linux x86-64: sdists, and wheels for any or x86-64 Linux."""
    if not filename.endswith(".whl"):
        return filename.endswith((".tar.gz", ".zip"))
    try:
        tags = wheel_tags(filename)
    except ValueError:
        return False
    return any(t.platform == "any" or t.platform.endswith("linux_x86_64") or glibc_needed(t.platform)
               for t in tags)


@functools.lru_cache(maxsize=None)
def load(path: Path = DATA_FILE) -> dict[str, list[str]]:
    """`name==version` (canonical name) -> the file names the index offers for Linux x86-64."""
    try:
        files = json.loads(path.read_text(encoding="utf-8"))["files"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise TtsrigError(f"cannot read {path} ({type(exc).__name__}: {exc}): restore it with `git checkout -- "
                          "envcheck/data/` or rebuild it with `python -m envcheck.wheels refresh`") from None
    if not isinstance(files, dict):
        raise TtsrigError(f"{path} holds no file table: restore it with `git checkout -- envcheck/data/`")
    return files


def files_for(name: str, version: str, table: dict[str, list[str]] | None = None) -> list[str] | None:
    """The index's files of name==version, or None when the table does not know that pin."""
    return (load() if table is None else table).get(f"{locks.canonical(name)}=={version}")


def lock_files() -> list[Path]:
    """Every lock whose pins the table covers: each Python's tier locks and the single locks."""
    tiers = sorted(locks.REQUIREMENTS.glob("py3.*/*.txt"))
    return tiers + [locks.REQUIREMENTS / f"{name}.txt" for name in ("bootstrap", "nodeps", "test-in-venv", "dev")]


def index_files(name: str, index: str = INDEX) -> list[str]:
    """The file names of every release of a project, from the index's JSON simple API (PEP 691)."""
    request = urllib.request.Request(f"{index}/{locks.canonical(name)}/",
                                     headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return [f["filename"] for f in json.load(answer)["files"]]
    except OSError as exc:
        raise TtsrigError(f"cannot read {index}/{name}/ ({exc}): the table is refreshed from the package index; "
                          "connect and run again") from None


def refresh(out: Path = DATA_FILE, index: str = INDEX) -> int:
    pins = {(pin.name, pin.version) for lock in lock_files() if lock.exists()
            for pin in locks.parse_lock(lock).values()}
    table: dict[str, list[str]] = {}
    for name in sorted({name for name, _ in pins}):
        offered = [f for f in index_files(name, index) if relevant(f)]
        for version in sorted(v for n, v in pins if n == name):
            table[f"{name}=={version}"] = sorted(f for f in offered if file_version(f) == version)
    text = json.dumps({"index": index, "refreshed": time.strftime("%Y-%m-%d"), "files": table}, indent=1,
                      sort_keys=True)
    write_atomic(out, (text + "\n").encode())
    return len(table)


def main(argv: list[str]) -> int:
    if argv != ["refresh"]:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    try:
        count = refresh()
    except TtsrigError as exc:
        print(f"envcheck.wheels: {exc}", file=sys.stderr)
        return 2
    print(f"{DATA_FILE}: the files of {count} pins")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
