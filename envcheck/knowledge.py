"""What is known not to run on each tier (data/knowledge.json), and `envcheck scan` over a requirements file.

Works before anything is installed: the standard library plus `packaging`, taken from pip's vendored
copy when the real one is absent.
"""
from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from envcheck import reading, wheels
from envcheck.errors import TtsrigError
from envcheck.locks import logical_lines

try:
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion, Version
except ImportError:  # a bare system Python before bootstrap: pip carries a copy
    from pip._vendor.packaging.requirements import InvalidRequirement, Requirement  # type: ignore[no-redef]
    from pip._vendor.packaging.specifiers import SpecifierSet  # type: ignore[no-redef]
    from pip._vendor.packaging.utils import canonicalize_name  # type: ignore[no-redef]
    from pip._vendor.packaging.version import InvalidVersion, Version  # type: ignore[no-redef]

DATA_FILE = Path(__file__).with_name("data") / "knowledge.json"
OUTCOMES = ("crash", "fails", "patched")


@dataclass(frozen=True)
class Entry:
    id: str
    package: str
    versions: SpecifierSet
    tiers: tuple[str, ...]
    outcome: str
    signal: str | None
    why: str
    needs: str | None
    fix: str
    sources: tuple[dict, ...]

    def evidence(self) -> str:
        return "; ".join(f"{s['kind']}: {s['ref']}" for s in self.sources)


@functools.lru_cache(maxsize=None)
def load(path: Path = DATA_FILE) -> tuple[Entry, ...]:
    data = json.loads(path.read_text())
    entries = []
    for raw in data["entries"]:
        entries.append(Entry(raw["id"], canonicalize_name(raw["package"]), SpecifierSet(raw["versions"]),
                             tuple(raw["tiers"]), raw["outcome"], raw.get("signal"), raw["why"], raw.get("needs"),
                             raw["fix"], tuple(raw["sources"])))
    return tuple(entries)


def known_for(package: str, version: str, tier: str) -> list[Entry]:
    """Entries that say this exact installed version does not run (or needs the patches) on the tier."""
    name = canonicalize_name(package)
    try:
        parsed = Version(version)
    except InvalidVersion:
        return []
    return [e for e in load() if e.package == name and tier in e.tiers and e.versions.contains(parsed, True)]


# -- reading requirement files --------------------------------------------------------------------

@dataclass(frozen=True)
class Line:
    source: str  # file:line
    requirement: Requirement


def read_requirements(path: Path, _seen: frozenset[Path] = frozenset()) -> list[Line]:
    """Requirements of a pip requirements or lock file: continuations joined, hashes and options skipped,
    `-r` includes followed. Only the file the user named is quoted in a message: an include may name any
    file on the machine (`-r /etc/shadow`), and its lines are not theirs to see in a terminal or a report."""
    included = bool(_seen)  # else the user's own file: a pipe (`scan <(pip freeze)`) is read too
    path = path.resolve() if included else Path(os.path.abspath(path))
    if path in _seen:
        return []
    text = reading.read_text(path, "requirements file", "name a pip requirements or lock file (such as the "
                             "locks under requirements/)", limit=reading.DATA_LIMIT, streams=not included)
    found: list[Line] = []
    for logical in logical_lines(text):
        entry, where = logical.text, f"{path.name}:{logical.line}"
        if entry.startswith(("-r ", "--requirement ")):
            found += read_requirements(path.parent / entry.split(None, 1)[1].strip(), _seen | {path})
            continue
        if entry.startswith("-"):
            continue  # -c, -e, --hash on its own line, index options: nothing to install by name
        entry = re.split(r"\s+--", entry)[0].strip()  # per-requirement options such as --hash
        try:
            found.append(Line(where, Requirement(entry)))
        except InvalidRequirement as exc:
            if included:
                raise TtsrigError(f"{path}:{logical.line}, included with -r, is not a requirements file (line "
                                  f"{logical.line} is no requirement; its text is not shown). Fix or remove that "
                                  "-r line.") from None
            raise TtsrigError(f"{where}: {entry!r} is not a requirement ({exc})") from None
    return found


# -- scanning -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Finding:
    line: Line
    entry: Entry
    certain: bool  # an exact pin inside the bad range; otherwise the range merely allows a bad version

    def to_json(self) -> dict:
        req = self.line.requirement
        return {"requirement": str(req), "where": self.line.source, "package": self.entry.package,
                "id": self.entry.id, "certain": self.certain, "outcome": self.entry.outcome,
                "signal": self.entry.signal, "why": self.entry.why, "needs": self.entry.needs,
                "fix": self.entry.fix, "sources": list(self.entry.sources)}


def _exact(spec: SpecifierSet) -> Version | None:
    pins = [s for s in spec if s.operator in ("==", "===") and "*" not in s.version]
    if len(pins) == 1:
        try:
            return Version(pins[0].version)
        except InvalidVersion:
            return None
    return None


def _candidates(*specs: SpecifierSet) -> list[Version]:
    """Versions at and just beyond every bound the specifiers name, plus a far-future one: enough to
    tell whether two ranges overlap for the simple ranges requirement files use."""
    found = {Version("0"), Version("9999")}
    for spec in specs:
        for s in spec:
            try:
                v = Version(s.version.rstrip(".*"))
            except InvalidVersion:
                continue
            parts = list(v.release) + [0] * (3 - len(v.release))
            found |= {v, Version(".".join(map(str, parts[:-1] + [parts[-1] + 1]))),
                      Version(".".join(map(str, parts[:-2] + [parts[-2] + 1, 0])))}
    return sorted(found)


def marker_environment(python: tuple[int, int]) -> dict[str, str]:
    """The environment markers of CPython X.Y on Linux x86-64: what a lock's `; python_version ...` is read against."""
    version = f"{python[0]}.{python[1]}"
    return {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
            "implementation_name": "cpython", "platform_python_implementation": "CPython",
            "python_version": version, "python_full_version": f"{version}.0"}


def applies(line: Line, python: tuple[int, int]) -> bool:
    marker = line.requirement.marker
    return marker is None or marker.evaluate(marker_environment(python))


def scan(lines: list[Line], tier: str, python: tuple[int, int] = (3, 11)) -> list[Finding]:
    findings = []
    for line in lines:
        req = line.requirement
        if not applies(line, python):
            continue
        name = canonicalize_name(req.name)
        for entry in load():
            if entry.package != name or tier not in entry.tiers:
                continue
            pinned = _exact(req.specifier)
            if pinned is not None:
                if entry.versions.contains(pinned, True):
                    findings.append(Finding(line, entry, True))
            elif req.url or any(entry.versions.contains(v, True) and req.specifier.contains(v, True)
                                for v in _candidates(req.specifier, entry.versions)):
                findings.append(Finding(line, entry, False))
    return findings


def render(findings: list[Finding], tier: str, source: Path) -> str:
    if not findings:
        return f"{source}: nothing in it is known not to run on tier {tier}"
    lines = [f"{source}: {len(findings)} known problem(s) on tier {tier}:"]
    verbs = {"crash": "dies with {signal}", "fails": "fails", "patched": "dies with {signal} unless patched"}
    for f in findings:
        e = f.entry
        verb = verbs[e.outcome].format(signal=e.signal)
        allows = "" if f.certain else f" (the range allows {e.package}{e.versions or ' of any version'})"
        lines.append(f"\n  {f.line.requirement} [{f.line.source}]{allows}")
        lines.append(f"    {verb} on {tier}: {e.why}.")
        if e.needs:
            lines.append(f"    needs tier {e.needs} or higher.")
        lines.append(f"    fix: {e.fix}")
        lines.append(f"    evidence: {e.evidence()}")
    return "\n".join(lines)


# -- wheels for this Python -----------------------------------------------------------------------

@dataclass(frozen=True)
class WheelFinding:
    line: Line
    blocking: bool  # nothing installs (no wheel and no source); otherwise the installer would compile it
    detail: str
    fix: str

    def to_json(self) -> dict:
        return {"requirement": str(self.line.requirement), "where": self.line.source, "blocking": self.blocking,
                "detail": self.detail, "fix": self.fix}


def _offered(filenames: list[str]) -> str:
    """Which CPythons the wheels of a pin are built for, e.g. 'CPython 3.9 to 3.12'."""
    minors = sorted({int(t.interpreter[3:]) for f in filenames if f.endswith(".whl")
                     for t in wheels.wheel_tags(f) if t.interpreter.startswith("cp3") and t.abi != "abi3"})
    if not minors:
        return ""
    return f"CPython 3.{minors[0]}" + (f" to 3.{minors[-1]}" if len(minors) > 1 else "")


def wheel_problem(name: str, version: str, files: list[str],
                  target: wheels.Target) -> tuple[bool, str, str] | None:
    """Why an exact pin would not install from a wheel on the target, or None (a pure source package needs no
    wheel: only a pin that has wheels for other Pythons or glibcs is compiled code the user cannot easily build)."""
    found = wheels.fit(files, target)
    has_wheels = any(f.endswith(".whl") for f in files)
    if found.wheel or not has_wheels:
        return None
    python = f"{target.python[0]}.{target.python[1]}"
    if found.oldest_glibc and target.glibc and found.oldest_glibc > target.glibc:
        glibc = f"{found.oldest_glibc[0]}.{found.oldest_glibc[1]}"
        why = f"its wheels for CPython {python} need glibc {glibc} or newer"
        fix = (f"run it on a distribution with glibc {glibc} or newer, or pin a {name} version whose wheels are "
               "built for an older manylinux")
    else:
        offered = _offered(files)
        why = f"its wheels are for {offered}" if offered else "no wheel is for this Python"
        fix = (f"pin a version with a wheel for CPython {python} (ttsrig's locks for it: requirements/py{python}/), "
               "or use a Python its wheels are for")
    if found.sdist is None:
        return True, f"no file of {name} {version} installs on {target.describe()}: {why}", fix
    return False, (f"no wheel of {name} {version} for {target.describe()} ({why}): the installer would compile "
                   f"{found.sdist}, which needs a compiler and headers and often fails"), fix


def scan_wheels(lines: list[Line], target: wheels.Target,
                table: dict[str, list[str]] | None = None) -> tuple[list[WheelFinding], int]:
    """Exact pins without a wheel for the target, and how many exact pins the table does not know."""
    findings, unknown = [], 0
    for line in lines:
        req = line.requirement
        pinned = _exact(req.specifier)
        if pinned is None or not applies(line, target.python):
            continue
        files = wheels.files_for(req.name, str(pinned), table)
        if files is None:
            unknown += 1
            continue
        problem = wheel_problem(canonicalize_name(req.name), str(pinned), files, target)
        if problem:
            findings.append(WheelFinding(line, *problem))
    return findings, unknown


def render_wheels(findings: list[WheelFinding], unknown: int, target: wheels.Target) -> str:
    lines = [f"wheels for {target.describe()}: " + (f"{len(findings)} pin(s) without one:" if findings
                                                     else "every pin ttsrig knows has one")]
    for f in findings:
        lines.append(f"\n  {f.line.requirement} [{f.line.source}]")
        lines.append(f"    {f.detail}.")
        lines.append(f"    fix: {f.fix}.")
    if unknown:
        lines.append(f"  ({unknown} exact pin(s) are not in {wheels.DATA_FILE.name}, which knows the locks' pins: "
                     "their wheels were not checked)")
    return "\n".join(lines)
