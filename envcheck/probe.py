"""Which x86-64 tier is this CPU? Three independent views, the lowest wins.

- cpuid:   the CPUID instruction, through archspec's reader. Under
           `qemu-x86_64 -cpu MODEL` this is the emulated CPU.
- cpuinfo: the kernel's /proc/cpuinfo. Under qemu user mode it is the host's.
- glibc:   the dynamic loader's own verdict (`ld.so --help`, glibc >= 2.33).

A view that cannot be read says why and is left out; it never stops the probe.
Where the views disagree the report says so and takes the lowest tier, since
a wheel built for a level the CPU lacks dies with SIGILL.
"""
from __future__ import annotations

import os
import platform
import re
import subprocess
from dataclasses import asdict, dataclass, field
from typing import Callable

from envcheck import tiers as tiers_mod
from envcheck.errors import TtsrigError

KNOWN_VENDORS = {
    "GenuineIntel": "Intel",
    "AuthenticAMD": "AMD",
    "HygonGenuine": "Hygon",
    "CentaurHauls": "Centaur/Zhaoxin",
    "  Shanghai  ": "Zhaoxin",
}
LDSO_CANDIDATES = ("/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")


@dataclass
class View:
    """What one source says about the CPU (features empty for the glibc view)."""

    source: str
    ok: bool
    tier: str | None = None
    level: str | None = None
    vendor: str | None = None
    model_name: str | None = None
    microarch: str | None = None
    features: frozenset[str] = frozenset()
    note: str = ""


@dataclass
class ProbeResult:
    tier: str
    level: str
    vendor: str
    vendor_known: bool
    model_name: str
    microarch: str
    missing_for_next_tier: list[str]
    next_tier: str | None
    disagreement: bool
    decided_by: list[str]
    sources: dict[str, dict] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


# --- the sources -----------------------------------------------------------


def parse_cpuinfo(text: str) -> tuple[str | None, str | None, frozenset[str]]:
    """Vendor, model name and flags of the first processor in a /proc/cpuinfo text."""
    data: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            if data:
                break  # a blank line ends the first processor's block
            continue
        data.setdefault(key.strip(), value.strip())
    return data.get("vendor_id"), data.get("model name"), frozenset(data.get("flags", "").split())


def parse_ldso_help(text: str) -> list[str]:
    """The glibc-hwcaps levels ld.so marks as supported, e.g. ['x86-64-v3', 'x86-64-v2']."""
    return re.findall(r"^\s*(x86-64-v\d)\s+\(supported", text, flags=re.MULTILINE)


def read_cpuid() -> tuple[str, str | None, frozenset[str]]:
    """Vendor, brand string and features from the CPUID instruction (archspec)."""
    from archspec.cpu import detect  # imported here: the probe must run without it

    collector = detect.CpuidInfoCollector()
    brand = (collector.brand_string() or "").strip() or None
    return collector.vendor, brand, frozenset(collector.features)


def read_proc_cpuinfo() -> str:
    with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
        return handle.read()


def glibc_version() -> tuple[int, int] | None:
    name, version = platform.libc_ver()
    match = re.match(r"(\d+)\.(\d+)", version or "")
    return (int(match[1]), int(match[2])) if name == "glibc" and match else None


def run_ldso_help() -> str:
    version = glibc_version()
    if version is None:
        raise OSError("not a glibc system")
    if version < (2, 33):
        raise OSError(f"glibc {version[0]}.{version[1]} is older than 2.33 and has no hwcaps report")
    ldso = next((p for p in LDSO_CANDIDATES if os.path.exists(p)), None)
    if ldso is None:
        raise OSError("ld-linux-x86-64.so.2 not found")
    out = subprocess.run([ldso, "--help"], capture_output=True, text=True, timeout=10)
    return out.stdout


def microarch_name(vendor: str | None, features: frozenset[str]) -> str | None:
    """archspec's best-matching micro-architecture for a feature set, e.g. 'k10'."""
    try:
        from archspec.cpu import detect
    except ImportError:
        return None
    info = detect.partial_uarch(vendor=vendor or "generic", features=set(features))
    candidates = detect.compatible_microarchitectures(info)
    if not candidates:
        return None
    specific = [c for c in candidates if c.vendor != "generic"]
    best = max(specific or candidates, key=lambda c: (len(c.ancestors), len(c.features)))
    return best.name


# --- views -----------------------------------------------------------------


def feature_view(source: str, vendor, model_name, features: frozenset[str]) -> View:
    table = tiers_mod.load()
    level = table.highest_level(features)
    if level is None:
        missing = table.missing_for(table.tiers[0], features)
        return View(source, False, vendor=vendor, model_name=model_name, features=features,
                    note=f"feature set fits no tier: lacks the x86-64 baseline ({', '.join(missing)})")
    tier = table.tier_for_level(level)
    return View(source, True, tier.name, level.name, vendor, model_name,
                microarch_name(vendor, features), features)


def cpuid_view(reader: Callable) -> View:
    try:
        vendor, brand, features = reader()
    except ImportError:
        return View("cpuid", False, note="archspec is not installed (bin/bootstrap installs it first)")
    except Exception as exc:  # a failing source warns and the others decide
        return View("cpuid", False, note=f"CPUID could not be read: {exc}")
    return feature_view("cpuid", vendor, brand, features)


def cpuinfo_view(reader: Callable[[], str]) -> View:
    try:
        vendor, model, flags = parse_cpuinfo(reader())
    except OSError as exc:
        return View("cpuinfo", False, note=f"/proc/cpuinfo could not be read: {exc}")
    if not flags:
        return View("cpuinfo", False, vendor=vendor, note="/proc/cpuinfo lists no flags")
    return feature_view("cpuinfo", vendor, model, flags)


def glibc_view(reader: Callable[[], str]) -> View:
    try:
        supported = parse_ldso_help(reader())
    except (OSError, subprocess.SubprocessError) as exc:
        return View("glibc", False, note=f"no glibc-hwcaps view: {exc}")
    table = tiers_mod.load()
    names = [lv.name for lv in table.levels]
    highest = max(supported, key=names.index) if supported else "x86-64"
    return View("glibc", True, table.tier_for_level(table.level(highest)).name, highest,
                note="supported: " + (", ".join(sorted(supported)) or "none above x86-64"))


# --- the verdict -----------------------------------------------------------


def combine(views: list[View]) -> ProbeResult:
    table = tiers_mod.load()
    good = [v for v in views if v.ok]
    if not good:
        unfit = [v for v in views if v.features]
        if unfit:
            raise TtsrigError(
                f"This CPU fits no ttsrig tier: {unfit[0].note}. ttsrig needs an x86-64 CPU with at "
                "least SSE2; if this is a virtual machine, pass the host CPU's flags through.")
        reasons = "; ".join(f"{v.source}: {v.note}" for v in views)
        raise TtsrigError(f"Could not read the CPU from any source ({reasons}). "
                          "Run on the machine itself, or pass --tier to bin/bootstrap.")
    lowest_rank = min(table.rank(v.tier) for v in good)
    tier = table.tiers[lowest_rank]
    deciders = [v for v in good if table.rank(v.tier) == lowest_rank]
    disagreement = len({v.tier for v in good}) > 1
    # Identity comes from CPUID when it could be read: under emulation that is the emulated CPU.
    identity = next((v for v in (good + views) if v.features and v.vendor), View("none", False))
    vendor = identity.vendor or "unknown"
    nxt = table.next_tier(tier)
    with_features = [v for v in deciders if v.features] or [v for v in good if v.features]
    missing = table.missing_for(nxt, with_features[0].features) if nxt and with_features else []
    warnings = []
    if disagreement:
        said = ", ".join(f"{v.source} says {v.tier}" for v in good)
        warnings.append(f"the CPU views disagree ({said}); using the lowest, {tier.name}. "
                        "Under qemu user-mode emulation only the cpuid view shows the emulated CPU.")
    if vendor not in KNOWN_VENDORS:
        warnings.append(f"unknown CPU vendor {vendor!r}: the tier is decided from the feature flags "
                        "alone; please report this CPU with `python -m envcheck probe --json`.")
    for v in views:
        if not v.ok:
            warnings.append(f"{v.source} view unavailable: {v.note}")
    return ProbeResult(
        tier=tier.name,
        level=min((v.level for v in deciders), key=[lv.name for lv in table.levels].index),
        vendor=vendor,
        vendor_known=vendor in KNOWN_VENDORS,
        model_name=identity.model_name or "unknown",
        microarch=identity.microarch or "unknown",
        missing_for_next_tier=missing,
        next_tier=nxt.name if nxt else None,
        disagreement=disagreement,
        decided_by=[v.source for v in deciders],
        sources={v.source: _view_json(v) for v in views},
        warnings=warnings,
    )


def _view_json(view: View) -> dict:
    out = {"ok": view.ok, "tier": view.tier, "level": view.level}
    if view.vendor:
        out["vendor"] = view.vendor
    if view.microarch:
        out["microarch"] = view.microarch
    if view.features:
        out["feature_count"] = len(view.features)
    if view.note:
        out["note"] = view.note
    return out


def check_machine(machine: str | None = None) -> None:
    machine = machine or platform.machine()
    if machine.lower() not in ("x86_64", "amd64"):
        raise TtsrigError(
            f"This machine is {machine}: ttsrig's tiers (pre-v2, v2, v3) are x86-64 micro-architecture "
            "levels and do not apply here. ttsrig supports Linux on x86-64 only.")


def probe(*, cpuid: Callable | None = None, cpuinfo: Callable[[], str] | None = None,
          ldso: Callable[[], str] | None = None, machine: str | None = None) -> ProbeResult:
    """Probe this CPU. The readers are parameters so tests can replay recorded machines."""
    check_machine(machine)
    return combine([
        cpuid_view(cpuid or read_cpuid),
        cpuinfo_view(cpuinfo or read_proc_cpuinfo),
        glibc_view(ldso or run_ldso_help),
    ])


def cpu_has(feature: str) -> bool | None:
    """Whether this CPU has a feature (a /proc/cpuinfo flag name, e.g. "avx2", "f16c"): from CPUID (archspec)
    where it can be read, else /proc/cpuinfo; None if neither can be read. Under qemu-x86_64 only CPUID shows
    the emulated CPU."""
    try:
        return feature in read_cpuid()[2]
    except Exception:  # archspec missing or CPUID unreadable: the kernel's view
        try:
            return feature in parse_cpuinfo(read_proc_cpuinfo())[2]
        except OSError:
            return None


def cpu_has_avx2() -> bool | None:
    return cpu_has("avx2")


def render(result: ProbeResult) -> str:
    vendor = KNOWN_VENDORS.get(result.vendor, result.vendor)
    lines = [
        f"CPU:        {result.model_name} ({vendor})",
        f"microarch:  {result.microarch}",
        f"level:      {result.level}",
        f"tier:       {result.tier}  (decided by {', '.join(result.decided_by)})",
    ]
    if result.next_tier:
        missing = ", ".join(result.missing_for_next_tier) or "nothing (see warnings)"
        lines.append(f"for {result.next_tier}:    missing {missing}")
    else:
        lines.append("next tier:  none (v3 is the highest tier)")
    lines.append("sources:")
    for name, view in result.sources.items():
        state = f"{view['tier']} ({view['level']})" if view["ok"] else "unavailable"
        extra = f" - {view['note']}" if view.get("note") else ""
        lines.append(f"  {name:8s} {state}{extra}")
    lines += [f"warning: {w}" for w in result.warnings]
    return "\n".join(lines)
