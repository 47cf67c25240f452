"""`python -m envcheck`: the command line of the probe (and, later, the verifier)."""
from __future__ import annotations

import argparse
import json
import sys

from envcheck import probe as probe_mod
from envcheck.errors import TtsrigError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="envcheck", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("probe", help="classify this CPU into a ttsrig tier (pre-v2, v2, v3)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "probe":
            result = probe_mod.probe()
            print(json.dumps(result.to_json(), indent=2) if args.json else probe_mod.render(result))
            return 0
    except TtsrigError as exc:
        print(f"envcheck: {exc}", file=sys.stderr)
        return 2
    return 1
