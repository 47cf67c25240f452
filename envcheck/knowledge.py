"""What is known not to run on each tier (data/knowledge.json), and `envcheck scan` over a requirements file.

Works before anything is installed: the standard library plus `packaging`, taken from pip's vendored
copy when the real one is absent.
"""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

from envcheck import paths
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
    `-r` includes followed."""
    path = path.resolve()
    if path in _seen:
        return []
    text = paths.read_text(path, "requirements file", "name a pip requirements or lock file (such as the "
                           "locks under requirements/)")
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


def scan(lines: list[Line], tier: str) -> list[Finding]:
    findings = []
    for line in lines:
        req = line.requirement
        if req.marker is not None and not req.marker.evaluate({"sys_platform": "linux", "platform_machine": "x86_64",
                                                              "python_version": "3.11"}):
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
