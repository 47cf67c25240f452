"""Run a set of checks: the shareable ones together in one interpreter, the rest each in its own, in parallel.

Most of the report's checks import torch, and an interpreter of their own makes each pay for that import (14 s
under `qemu-x86_64 -cpu phenom`): the emulated report on a pre-v2 venv took 124 s on two cores with one
interpreter per check, and 44 s with the CPU checks sharing one (tests/bench/bench_envcheck.py, 2026-12-07).

A shared interpreter must not blur a verdict, so it concludes only what it can state exactly: a check that ended
well, or one that ran past its own time-out. A crash, an exception or an exit ends its say for that check and
every check after it; those run again, each alone (isolated.run_check), so a SIGILL is named for the check and
the package that crashed just as before, and a check that fails only beside another is not reported failed.
"""
from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from envcheck import python_command
from envcheck.isolated import OK, Check, Verdict, environment, qemu_command, run_check, timed_out

# The interpreter's side. Its stdout carries only the records (a JSON object a line): what native code prints to
# stdout goes to stderr instead, and what a check prints is collected into its record.
CHILD = r"""
import contextlib, io, json, os, sys, time
codes = json.load(sys.stdin)
records = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
def record(**fields):
    records.write(json.dumps(fields) + "\n")
    records.flush()
for index, code in enumerate(codes):
    record(start=index)
    printed, began, ok = io.StringIO(), time.monotonic(), True
    try:
        with contextlib.redirect_stdout(printed):
            exec(compile(code, "<check %d>" % index, "exec"), {"__name__": "__main__"})
    except SystemExit as exc:
        ok = exc.code in (None, 0)
    except BaseException:
        ok = False
    record(end=index, ok=ok, output=printed.getvalue(), seconds=time.monotonic() - began)
"""


def run_together(checks: list[Check], python: str, *, emulate: str | None = None,
                 env: dict[str, str] | None = None) -> list[Verdict | None]:
    """The checks one after another in one interpreter: a verdict for each check it concluded (ok, or past its
    time-out), None for each that must run alone."""
    verdicts: list[Verdict | None] = [None] * len(checks)
    if not checks:
        return verdicts
    cmd = (qemu_command(emulate) if emulate else []) + python_command.code(python, CHILD)
    try:
        child = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 text=True, env=environment(env, emulate))
    except OSError:
        return verdicts  # each check, run alone, says why
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    try:
        assert child.stdin is not None
        child.stdin.write(json.dumps([c.code for c in checks]))
        child.stdin.close()
    except OSError:  # it died before reading its checks
        pass
    current, began = 0, time.monotonic()
    try:
        while True:
            left = checks[current].timeout - (time.monotonic() - began)
            try:
                line = lines.get(timeout=max(left, 0.0))
            except queue.Empty:
                verdicts[current] = timed_out(checks[current], time.monotonic() - began)
                break
            if line is None:
                break
            try:
                record = json.loads(line)
            except ValueError:
                break
            if "start" in record:
                current, began = record["start"], time.monotonic()
            elif record.get("ok"):
                printed = record["output"].strip().splitlines()
                verdicts[record["end"]] = Verdict(checks[record["end"]].name, OK, printed[-1] if printed else "",
                                                  record["seconds"], output=record["output"])
            else:
                break  # this check and the rest run alone
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
    return verdicts


def run_all(checks: list[Check], python: str, *, emulate: str | None = None,
            env: dict[str, str] | None = None, jobs: int | None = None) -> list[Verdict]:
    """Run checks in parallel, bounded by the cores, the longest first (the time-out says which are heavy);
    results in the checks' order. The shareable ones run together in one interpreter beside the others, and
    those it did not conclude run again, each alone."""
    jobs = jobs or max(1, os.cpu_count() or 1)
    shared = [i for i, c in enumerate(checks) if c.shareable]
    if len(shared) < 2:
        shared = []  # one check gains nothing from the shared interpreter
    verdicts: list[Verdict | None] = [None] * len(checks)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        def alone(indices: list[int]) -> None:
            indices = sorted(indices, key=lambda i: -checks[i].timeout)
            ran = pool.map(lambda i: run_check(checks[i], python, emulate=emulate, env=env), indices)
            for i, verdict in zip(indices, ran):
                verdicts[i] = verdict

        shared_run = pool.submit(run_together, [checks[i] for i in shared], python, emulate=emulate, env=env)
        alone([i for i in range(len(checks)) if i not in shared])
        for i, verdict in zip(shared, shared_run.result()):
            verdicts[i] = verdict
        alone([i for i, v in enumerate(verdicts) if v is None])
    return [v for v in verdicts if v is not None]
