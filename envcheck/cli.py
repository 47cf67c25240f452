"""`envcheck` (or `python -m envcheck`): is this environment working on this CPU?

  envcheck [--venv PATH] [--emulate CPU_MODEL] [--json]   the full report; exit 0 only if all needed works
  envcheck probe [--json]                                   the CPU and its tier, the GPUs and their class
  envcheck scan REQUIREMENTS_FILE [--tier T] [--python X.Y] [--json]
                                                            pins known not to run on a tier, or with no
                                                            wheel for this Python, before install
  envcheck evidence [--emulate CPU_MODEL]                   the import-and-compute record behind the locks
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from envcheck import arguments, python_command
from envcheck import probe as probe_mod
from envcheck.errors import TtsrigError


def build_parser() -> argparse.ArgumentParser:
    parser = arguments.Parser(prog="envcheck", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--venv", help="the venv to check (default: the one envcheck runs in, else ./.venv)")
    parser.add_argument("--emulate", metavar="CPU_MODEL",
                        help="run the CPU probe and every check under qemu-x86_64 -cpu CPU_MODEL "
                             "(e.g. phenom, core2duo, Nehalem, SandyBridge, Haswell)")
    parser.add_argument("--json", action="store_true", help="print one JSON object (ok, checks, cpu)")
    parser.add_argument("--checkpoints", metavar="DIR", help="where checkpoints go, for the disk check "
                        "(default: runs/ in the checkout)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these probes and smoke checks")
    parser.add_argument("--jobs", type=arguments.whole(1), help="checks run at once (default: the number of cores)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = commands.add_parser("probe", help="classify this CPU into a ttsrig tier (pre-v2, v2, v3), and list the "
                            "NVIDIA GPUs, their compute capability and class")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    e = commands.add_parser("evidence", help="import and compute with every compiled package, each in its "
                            "own interpreter (the record behind the pins in requirements/)")
    e.add_argument("--python", default=sys.executable, help="the interpreter of the venv to check")
    e.add_argument("--emulate", metavar="CPU_MODEL", help="run under qemu-x86_64 -cpu CPU_MODEL")
    e.add_argument("--only", nargs="+", metavar="NAME", help="run only these checks")
    e.add_argument("--checks", choices=("locks", "asr", "whisper.cpp", "cuda-arch"), default="locks",
                   help="locks: the compiled packages of the locks (default); asr: faster-whisper and its wheels "
                        "(CTranslate2, PyAV, onnxruntime, tokenizers), in a venv the user installed them into; "
                        "whisper.cpp: the whisper-cli build named by --whisper-cli, run as ttsrig runs it (with "
                        "--emulate, only that binary is emulated); cuda-arch: which GPUs (sm_XY) the venv's torch "
                        "has kernels for, read from the wheel (no GPU needed)")
    e.add_argument("--whisper-cli", metavar="PATH", help="the whisper.cpp binary --checks whisper.cpp runs")
    e.add_argument("--out", help="also write the record to this file (atomically)")
    s = commands.add_parser("scan", help="list the pins of a requirements or lock file known not to run on a tier")
    s.add_argument("file", help="a pip requirements file or lock (hashes, -r includes and markers understood)")
    s.add_argument("--tier", choices=("pre-v2", "v2", "v3"), help="default: this CPU's tier")
    s.add_argument("--python", metavar="X.Y", help="the CPython the file is for: markers are read and wheels "
                   "looked for as on it (default: 3.X of a requirements/py3.X/ lock, else the Python running envcheck)")
    s.add_argument("--glibc", metavar="X.Y", help="the glibc wheels must run on (default: this machine's)")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def scan_target(args: argparse.Namespace, path: Path) -> "wheels.Target":
    from envcheck import locks, wheels

    if args.python:
        python = locks.major_minor(args.python)
    else:
        folder = re.fullmatch(r"py(\d+\.\d+)", path.resolve().parent.name)
        python = locks.major_minor(folder[1]) if folder else sys.version_info[:2]
    glibc = wheels.parse_glibc(args.glibc) if args.glibc else wheels.host_glibc()
    if args.glibc and glibc is None:
        raise TtsrigError(f"--glibc {args.glibc} is not a version: give it as X.Y, e.g. --glibc 2.31")
    return wheels.Target(python, glibc)


def run_scan(args: argparse.Namespace) -> int:
    from envcheck import knowledge

    tier = args.tier or probe_mod.probe().tier
    path = Path(args.file)
    target = scan_target(args, path)
    lines = knowledge.read_requirements(path)
    findings = knowledge.scan(lines, tier, target.python)
    wheel_findings, unknown = knowledge.scan_wheels(lines, target)
    blocking = [f for f in findings if f.entry.outcome != "patched"] + [w for w in wheel_findings if w.blocking]
    if args.json:
        print(json.dumps({"file": str(path), "tier": tier, "ok": not blocking,
                          "python": "%d.%d" % target.python,
                          "glibc": "%d.%d" % target.glibc if target.glibc else None,
                          "findings": [f.to_json() for f in findings],
                          "wheels": [w.to_json() for w in wheel_findings], "wheels_not_known": unknown}, indent=2))
    else:
        print(knowledge.render(findings, tier, path))
        print(knowledge.render_wheels(wheel_findings, unknown, target))
    return 1 if blocking else 0


def run_report(args: argparse.Namespace) -> int:
    from envcheck import report as report_mod

    result = report_mod.build(args.venv, emulate=args.emulate, only=args.only, jobs=args.jobs,
                              checkpoints=Path(args.checkpoints).expanduser() if args.checkpoints else None,
                              say=lambda line: print(f"envcheck: {line}", file=sys.stderr, flush=True))
    print(json.dumps(result.to_json(), indent=2) if args.json else report_mod.render(result))
    return 0 if result.ok else 1


def check_interpreter(python: Path) -> None:
    """--python must be an interpreter: otherwise every check would fail with the same OSError."""
    if not python.exists():
        raise TtsrigError(f"--python {python} does not exist: name a venv's interpreter, e.g. "
                          "--python .venv/bin/python")
    if python.is_dir():
        raise TtsrigError(f"--python {python} is a folder: name the interpreter in it, e.g. "
                          f"{python / 'bin' / 'python'}")
    if not os.access(python, os.X_OK):
        raise TtsrigError(f"--python {python} is not executable: name a venv's interpreter, e.g. .venv/bin/python")


def python_version(python: str) -> str:
    """The interpreter's full version, run natively: the record names which CPython's wheels it measured."""
    import subprocess

    out = subprocess.run(python_command.code(python, "import platform; print(platform.python_version())"),
                         capture_output=True, text=True)
    return out.stdout.strip() or "version unknown"


def whisper_cli(path: str | None) -> str:
    """--whisper-cli, checked before any check runs."""
    if not path:
        raise TtsrigError("--checks whisper.cpp needs --whisper-cli PATH: the whisper-cli binary you built "
                          "(build/bin/whisper-cli in a whisper.cpp checkout)")
    binary = Path(path)
    if not binary.is_file() or not os.access(binary, os.X_OK):
        raise TtsrigError(f"--whisper-cli {path} is not an executable file: name the whisper-cli binary "
                          "(build/bin/whisper-cli in a whisper.cpp checkout)")
    return str(binary.resolve())


def run_evidence(args: argparse.Namespace) -> int:
    import dataclasses
    import platform
    import time
    from envcheck import digests, evidence, isolated, paths, together
    from envcheck.atomic import write_output

    check_interpreter(Path(args.python))
    if args.out:  # refused now, not after minutes of checks
        paths.output_file(Path(args.out), "--out")
    if args.checks == "whisper.cpp":
        binary = whisper_cli(args.whisper_cli)
        candidates, python_emulated = evidence.whisper_cpp_checks(binary, args.emulate), None
    else:
        candidates, python_emulated = evidence.CHECK_SETS[args.checks], args.emulate
    checks = [c for c in candidates if not args.only or c.name in args.only]
    if args.emulate:  # a time-out under a loaded qemu is not a finding
        checks = [dataclasses.replace(c, timeout=c.timeout * isolated.EMULATION_SLOWDOWN) for c in checks]
    started = time.strftime("%Y-%m-%d")
    verdicts = together.run_all(checks, args.python, emulate=python_emulated)
    header = [f"# envcheck evidence, {started}",
              f"# python: {args.python} (CPython {python_version(args.python)})",
              f"# cpu: {'qemu-x86_64 -cpu ' + args.emulate if args.emulate else 'host ' + platform.machine()}"]
    if args.checks == "whisper.cpp":
        header.insert(2, f"# whisper-cli: {binary} (sha256 {digests.file_sha256(Path(binary))}), the only "
                         "emulated program")
    rows = [f"{v.name:34s} {v.status:9s} {v.seconds:6.1f}s  {v.detail}" for v in verdicts]
    text = "\n".join(header + rows) + "\n"
    print(text, end="")
    if args.out:
        try:
            write_output(Path(args.out), text.encode(), "--out")
        except OSError as exc:  # e.g. the disk filled during the checks
            raise TtsrigError(f"cannot write --out {args.out} ({exc.strerror or exc}); the record is printed "
                              "above. Free space or choose another --out") from None
    return 0 if all(v.status == isolated.OK for v in verdicts) else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "probe":
            from envcheck import gpu

            result, cards = probe_mod.probe(), gpu.probe()
            print(json.dumps({**result.to_json(), "gpu": cards.to_json()}, indent=2) if args.json
                  else "\n".join([probe_mod.render(result), *gpu.summary(cards)]))
            return 0
        if args.command == "evidence":
            return run_evidence(args)
        if args.command == "scan":
            return run_scan(args)
        return run_report(args)
    except TtsrigError as exc:
        print(f"envcheck: {exc}", file=sys.stderr)
        return 2
    return 1
