"""The x86-64 levels and ttsrig tiers, loaded from data/tiers.json.

The knowledge lives in the data file; this module only loads and compares.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from envcheck.errors import TtsrigError

DATA_FILE = Path(__file__).with_name("data") / "tiers.json"
TIER_NAMES = ("pre-v2", "v2", "v3")


@dataclass(frozen=True)
class Level:
    name: str
    features: frozenset[str]  # everything the level needs, its predecessors' included
    adds: tuple[str, ...]  # only what it adds to the level before


@dataclass(frozen=True)
class Tier:
    name: str
    level: str
    emulate: str
    cpus: str
    forbidden: dict[str, str]


@dataclass(frozen=True)
class TierTable:
    levels: tuple[Level, ...]
    tiers: tuple[Tier, ...]
    aliases: dict[str, tuple[str, ...]]

    def tier(self, name: str) -> Tier:
        for tier in self.tiers:
            if tier.name == name:
                return tier
        raise TtsrigError(f"unknown tier {name!r}: choose one of {', '.join(TIER_NAMES)}")

    def level(self, name: str) -> Level:
        return next(level for level in self.levels if level.name == name)

    def normalise(self, flags: set[str] | frozenset[str]) -> frozenset[str]:
        """Add the canonical name of every flag the kernel or CPUID spells another way."""
        found = set(flags)
        for canonical, spellings in self.aliases.items():
            if found.intersection(spellings):
                found.add(canonical)
        return frozenset(found)

    def highest_level(self, flags: frozenset[str]) -> Level | None:
        """The highest level whose features are all present, or None (not even x86-64)."""
        flags = self.normalise(flags)
        best = None
        for level in self.levels:
            if not level.features <= flags:
                break
            best = level
        return best

    def tier_for_level(self, level: Level) -> Tier:
        """The highest tier a CPU of this level can run (a v4 CPU runs v3)."""
        order = [lv.name for lv in self.levels]
        runnable = [t for t in self.tiers if order.index(t.level) <= order.index(level.name)]
        return runnable[-1]

    def next_tier(self, tier: Tier) -> Tier | None:
        index = self.tiers.index(tier)
        return self.tiers[index + 1] if index + 1 < len(self.tiers) else None

    def missing_for(self, tier: Tier, flags: frozenset[str]) -> list[str]:
        """Features this CPU lacks for `tier`, in the data file's order."""
        flags = self.normalise(flags)
        needed = [f for lv in self.levels for f in lv.adds if f in self.level(tier.level).features]
        return [f for f in needed if f not in flags]

    def rank(self, tier_name: str) -> int:
        return [t.name for t in self.tiers].index(tier_name)


@functools.lru_cache(maxsize=1)
def load() -> TierTable:
    raw = json.loads(DATA_FILE.read_text())
    levels: list[Level] = []
    so_far: frozenset[str] = frozenset()
    for entry in raw["levels"]:
        so_far = so_far | frozenset(entry["adds"])
        levels.append(Level(entry["name"], so_far, tuple(entry["adds"])))
    tiers = tuple(
        Tier(t["name"], t["level"], t["emulate"], t["cpus"], dict(t["forbidden"]))
        for t in raw["tiers"]
    )
    aliases = {k: tuple(v) for k, v in raw["feature_aliases"].items()}
    return TierTable(tuple(levels), tiers, aliases)
