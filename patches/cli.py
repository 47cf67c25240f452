"""`python -m patches apply|status|revert [--venv PATH] [--tier T]`, and the checkpoint tools:
`trust add|list|remove`, `inspect FILE`, `convert FILE [-o OUT]`.

`status --json` is how envcheck learns a venv's patch state: it runs this in the venv's own interpreter."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from envcheck import arguments
from envcheck.errors import TtsrigError
from envcheck.tiers import TIER_NAMES
from patches import dynamo, sitecustomize
from patches.target import Env

if TYPE_CHECKING:
    from patches.trust import TrustList

PATCHES = {dynamo.NAME: dynamo, sitecustomize.NAME: sitecustomize}
GOOD = ("applied", "not needed")


def resolve_tier(env: Env, given: str | None) -> str:
    if given:
        return given
    tier = env.tier()
    if tier:
        return tier
    from envcheck.probe import probe  # only when the venv does not say: reads CPUID

    return probe().tier


def run_patches(args: argparse.Namespace) -> int:
    env = Env.of(args.venv)
    chosen = [PATCHES[n] for n in (args.only or PATCHES)]
    if args.action == "revert":
        with env.record_lock():
            for patch in chosen:
                print(patch.revert(env))
        return 0
    tier = resolve_tier(env, args.tier)
    if args.action == "apply":
        with env.record_lock():
            for patch in chosen:
                print(patch.apply(env, tier))
        return 0
    return print_status_json(env, tier, chosen) if args.json else print_status(env, tier, chosen)


def print_status(env: Env, tier: str, chosen: list[ModuleType]) -> int:
    worst = 0
    for patch in chosen:
        state, detail = patch.status(env, tier)
        print(f"{patch.NAME:14s} {state:11s} {detail}")
        worst = max(worst, 0 if state in GOOD else 1)
    for name, entry in env.layers().items():  # what bootstrap added beside the patched packages: not patched
        what = entry.get("lock") or f"whisper.cpp {entry.get('whisper.cpp', '?')} ({entry.get('build', '?')} build)"
        print(f"{name + ' layer':14s} {'unpatched':11s} {what}: nothing of it needs a patch")
    return worst


def print_status_json(env: Env, tier: str, chosen: list[ModuleType]) -> int:
    """One JSON object: venv, tier, ok, and per patch its name, state, detail and ok. A patch whose state
    cannot be read is "unknown", with the reason, so the others are still reported."""
    found = []
    for patch in chosen:
        try:
            state, detail = patch.status(env, tier)
        except TtsrigError as exc:
            state, detail = "unknown", str(exc)
        found.append({"name": patch.NAME, "state": state, "detail": detail, "ok": state in GOOD})
    ok = all(p["ok"] for p in found)
    print(json.dumps({"venv": str(env.prefix), "tier": tier, "ok": ok, "patches": found, "layers": env.layers()},
                     indent=2))
    return 0 if ok else 1


def run_trust(args: argparse.Namespace) -> int:
    from patches.trust import TrustList

    trust = TrustList.load(Path(args.trust_file).expanduser() if args.trust_file else None)
    if args.trust_action == "add":
        for name in args.files:
            trust_file(trust, Path(name).expanduser(), args.note)
    elif args.trust_action == "remove":
        for name in args.files:
            print(f"removed {', '.join(trust.remove(name))} from {trust.path}")
    else:
        if not trust.entries:
            print(f"no trusted checkpoints ({trust.path})")
        for digest, entry in sorted(trust.entries.items(), key=lambda kv: str(kv[1].get("added", ""))):
            note = f"  ({entry['note']})" if entry.get("note") else ""
            via = f" (via {entry['via']})" if entry.get("via") else ""
            print(f"{digest}  {entry.get('added', '?')}  {entry.get('path', '?')}{via}{note}")
    return 0


def trust_file(trust: TrustList, path: Path, note: str) -> None:
    """Read the file once: the verdict shown and the sha256 trusted are of the same bytes."""
    from patches.checkpoints import describe_checkpoint, read_checkpoint

    checkpoint = read_checkpoint(path)
    print(describe_checkpoint(checkpoint))
    digest = trust.add(checkpoint.path, note, digest=checkpoint.sha256)
    print(f"trusted {digest} in {trust.path}")


def run_convert(args: argparse.Namespace) -> int:
    from patches.checkpoints import convert

    out = convert(args.file, args.output, trust=args.trust_checkpoint)
    print(f"wrote {out} (safetensors; loads without unpickling; records the source's sha256)")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    from patches.checkpoints import describe

    for name in args.files:
        print(describe(name))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from patches.checkpoints import add_trust_argument

    parser = arguments.Parser(prog="python -m patches", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for action, text in (("apply", "apply the patches this tier needs"),
                         ("status", "applied / not needed / missing / stale, per patch"),
                         ("revert", "restore every patched file byte for byte")):
        p = sub.add_parser(action, help=text)
        p.set_defaults(run=run_patches, action=action)
        p.add_argument("--venv", help="the venv to act on (default: the one running this Python)")
        p.add_argument("--tier", choices=TIER_NAMES, help="default: the tier bin/bootstrap recorded, else probed")
        p.add_argument("--only", choices=sorted(PATCHES), action="append", help="act on this patch only")
        if action == "status":
            p.add_argument("--json", action="store_true", help="print one JSON object (what envcheck reads)")

    trust = sub.add_parser("trust", help="manage the list of legacy checkpoints you trust to unpickle")
    trust.set_defaults(run=run_trust)
    trust.add_argument("--trust-file", help="default: $TTSRIG_TRUST_FILE or ~/.config/ttsrig/trusted-checkpoints.json")
    tsub = trust.add_subparsers(dest="trust_action", required=True, metavar="ACTION")
    add = tsub.add_parser("add", help="trust these files (by sha256)")
    add.add_argument("files", nargs="+")
    add.add_argument("--note", default="", help="why you trust it (e.g. where you downloaded it)")
    remove = tsub.add_parser("remove", help="stop trusting (a file, or a sha256)")
    remove.add_argument("files", nargs="+")
    tsub.add_parser("list", help="show the trusted checkpoints")

    conv = sub.add_parser("convert", help="write a checkpoint as safetensors (once; later loads unpickle nothing)")
    conv.set_defaults(run=run_convert)
    conv.add_argument("file")
    conv.add_argument("-o", "--output", help="default: the same name with .safetensors")
    add_trust_argument(conv)

    insp = sub.add_parser("inspect", help="what a checkpoint would import when unpickled (read, not run)")
    insp.set_defaults(run=run_inspect)
    insp.add_argument("files", nargs="+")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except TtsrigError as exc:
        print(f"patches: {exc}", file=sys.stderr)
        return 2
