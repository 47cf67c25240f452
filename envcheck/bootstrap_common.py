"""What every step of bin/bootstrap shares: the checkout's paths, the tier's forbidden packages, one log line.

Standard library only, like all of bin/bootstrap (it runs on any Python 3.8 or newer). The other bootstrap
modules read ROOT and REQUIREMENTS through this module when they run (`common.REQUIREMENTS`), never as a copy
imported by name, so a test that points them at another checkout points every step there.
"""
from __future__ import annotations

import sys
from pathlib import Path

from envcheck import tiers as tiers_mod

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements"


def rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def forbidden(tier: str) -> list[str]:
    return sorted(tiers_mod.load().tier(tier).forbidden)


def log(message: str) -> None:
    print(f"bootstrap: {message}", file=sys.stderr, flush=True)
