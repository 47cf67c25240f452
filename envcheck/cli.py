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
    e = commands.add_parser("evidence", help="import and compute with every compiled package, each in its "
                            "own interpreter (the record behind the pins in requirements/)")
    e.add_argument("--python", default=sys.executable, help="the interpreter of the venv to check")
    e.add_argument("--emulate", metavar="CPU_MODEL", help="run under qemu-x86_64 -cpu CPU_MODEL")
    e.add_argument("--only", nargs="+", metavar="NAME", help="run only these checks")
    e.add_argument("--out", help="also write the record to this file (atomically)")
    return parser


def run_evidence(args: argparse.Namespace) -> int:
    import platform
    import time
    from pathlib import Path

    from envcheck import evidence, isolated
    from envcheck.atomic import write_atomic

    checks = [c for c in evidence.CHECKS if not args.only or c.name in args.only]
    started = time.strftime("%Y-%m-%d")
    verdicts = isolated.run_all(checks, args.python, emulate=args.emulate)
    header = [f"# envcheck evidence, {started}",
              f"# python: {args.python}",
              f"# cpu: {'qemu-x86_64 -cpu ' + args.emulate if args.emulate else 'host ' + platform.machine()}"]
    rows = [f"{v.name:34s} {v.status:9s} {v.seconds:6.1f}s  {v.detail}" for v in verdicts]
    text = "\n".join(header + rows) + "\n"
    print(text, end="")
    if args.out:
        write_atomic(Path(args.out), text.encode())
    return 0 if all(v.status == isolated.OK for v in verdicts) else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "probe":
            result = probe_mod.probe()
            print(json.dumps(result.to_json(), indent=2) if args.json else probe_mod.render(result))
            return 0
        if args.command == "evidence":
            return run_evidence(args)
    except TtsrigError as exc:
        print(f"envcheck: {exc}", file=sys.stderr)
        return 2
    return 1
