"""Run one check in its own interpreter, optionally under qemu-x86_64, and say how it ended.

A SIGILL or SIGFPE kills only that subprocess; the caller gets a verdict with
the signal and its meaning instead of dying with it.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from envcheck import python_command
from envcheck.errors import TtsrigError

OK, CRASHED, FAILED, TIMED_OUT = "ok", "crashed", "failed", "timed out"

EMULATION_UNSET = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

SIGNAL_MEANING = {
    "SIGILL": "an instruction this CPU lacks (the wheel was built for a higher x86-64 level)",
    "SIGFPE": "an arithmetic fault; on old AMD CPUs the known oneDNN fault of torch 2.7 "
              "(the sitecustomize patch disables oneDNN there)",
    "SIGSEGV": "a segmentation fault",
    "SIGBUS": "a bus error",
    "SIGABRT": "an abort in native code",
}


# Time-outs are stretched by this much under qemu: an emulated import is several times slower, more on a
# loaded machine (the report's checks and `envcheck evidence --emulate`).
EMULATION_SLOWDOWN = 8


@dataclass(frozen=True)
class Check:
    name: str
    code: str  # Python source; prints one line of detail on success
    timeout: float = 120.0
    program: tuple[str, ...] = ()  # instead of code: an executable beside the venv's python, with arguments
    package: str = ""  # the distribution it exercises, named (with the tier it needs) when it crashes
    # May share one interpreter with the other shareable checks of a run (envcheck.together): it imports,
    # computes and prints, and nothing it leaves behind decides another check's verdict.
    shareable: bool = False


@dataclass(frozen=True)
class Verdict:
    name: str
    status: str
    detail: str
    seconds: float
    signal: str | None = None
    output: str = ""  # everything the check printed (detail holds its last line)


def qemu_command(cpu: str) -> list[str]:
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        raise TtsrigError("qemu-x86_64 is not installed: install Debian's qemu-user "
                          "(`sudo apt-get install qemu-user`) to emulate an old CPU.")
    return [qemu, "-cpu", cpu]


def environment(env: dict[str, str] | None, emulate: str | None) -> dict[str, str]:
    """The checks' environment: the caller's with env on top; under emulation without the OpenBLAS overrides."""
    full_env = {**os.environ, **(env or {})}
    if emulate:
        # OPENBLAS_CORETYPE pins OpenBLAS's kernels to a named core (some machines set it to
        # Haswell); an emulated older CPU must let OpenBLAS detect it, or the AVX2 kernels SIGILL.
        for key in EMULATION_UNSET:
            full_env.pop(key, None)
    return full_env


def signal_name(returncode: int) -> str | None:
    """The fatal signal an exit status stands for, or None."""
    # A killed child shows -N; a shell or qemu may report 128+N instead.
    signum = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else None
    if not signum:
        return None
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def timed_out(check: Check, seconds: float) -> Verdict:
    return Verdict(check.name, TIMED_OUT, f"no answer within {check.timeout:.0f} s", seconds)


def run_check(check: Check, python: str, *, emulate: str | None = None,
              env: dict[str, str] | None = None) -> Verdict:
    target = ([str(Path(python).parent / check.program[0]), *check.program[1:]] if check.program
              else python_command.code(python, check.code))
    cmd = (qemu_command(emulate) if emulate else []) + target
    full_env = environment(env, emulate)
    start = time.monotonic()
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=check.timeout, env=full_env)
    except subprocess.TimeoutExpired:
        return timed_out(check, time.monotonic() - start)
    except OSError as exc:  # e.g. a program check in a venv that lacks that program
        return Verdict(check.name, FAILED, f"cannot run {cmd[0]}: {exc.strerror or exc}", time.monotonic() - start)
    seconds = time.monotonic() - start
    code = out.returncode
    name = signal_name(code)
    if name:
        meaning = SIGNAL_MEANING.get(name, "a fatal signal")
        return Verdict(check.name, CRASHED, f"killed by {name}: {meaning}", seconds, name)
    if code != 0:
        lines = [ln for ln in out.stderr.strip().splitlines() if not ln.startswith("qemu-x86_64: warning")]
        return Verdict(check.name, FAILED, lines[-1] if lines else f"exit status {code}", seconds,
                       output=out.stdout)
    lines = out.stdout.strip().splitlines()
    return Verdict(check.name, OK, lines[-1] if lines else "", seconds, output=out.stdout)
