"""`python -m patches apply|status|revert [--venv PATH] [--tier T]`."""
from __future__ import annotations

import argparse
import sys

from envcheck.errors import TtsrigError
from envcheck.tiers import TIER_NAMES
from patches import dynamo, sitecustomize
from patches.target import Env

PATCHES = {dynamo.NAME: dynamo, sitecustomize.NAME: sitecustomize}


def resolve_tier(env: Env, given: str | None) -> str:
    if given:
        return given
    tier = env.tier()
    if tier:
        return tier
    from envcheck.probe import probe  # only when the venv does not say: reads CPUID

    return probe().tier


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m patches", description=__doc__)
    parser.add_argument("action", choices=("apply", "status", "revert"))
    parser.add_argument("--venv", help="the venv to act on (default: the one running this Python)")
    parser.add_argument("--tier", choices=TIER_NAMES, help="default: the tier bin/bootstrap recorded, else probed")
    parser.add_argument("--only", choices=sorted(PATCHES), action="append", help="act on this patch only")
    args = parser.parse_args(argv)
    try:
        env = Env.of(args.venv)
        chosen = [PATCHES[n] for n in (args.only or PATCHES)]
        if args.action == "revert":
            for patch in chosen:
                print(patch.revert(env))
            return 0
        tier = resolve_tier(env, args.tier)
        if args.action == "apply":
            for patch in chosen:
                print(patch.apply(env, tier))
            return 0
        worst = 0
        for patch in chosen:
            state, detail = patch.status(env, tier)
            print(f"{patch.NAME:14s} {state:11s} {detail}")
            worst = max(worst, 0 if state in ("applied", "not needed") else 1)
        return worst
    except TtsrigError as exc:
        print(f"patches: {exc}", file=sys.stderr)
        return 2
