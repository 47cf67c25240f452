"""Which lock a venv gets, from (Python, CPU tier, GPU): the tier's lock, or a lock for a GPU class whose cards
that lock's torch has no kernels for.

A tier's lock is requirements/py3.X/<tier>.txt; a GPU lock is requirements/py3.X/<tier>-<class>.txt (the class
named in the file name and in its header), listed in envcheck/data/gpus.json with the CPU tiers it serves.
The choice is made from evidence, not names: each candidate's torch pin is looked up in gpus.json, whose
arch lists are those read from the wheels (requirements/evidence/torch-cuda-arch.txt), and the first lock
whose torch runs on every GPU this process sees wins, the tier's own first. Standard library only:
bin/bootstrap decides before any venv exists.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from envcheck import gpu_table, locks
from envcheck.errors import TtsrigError
from envcheck.gpu import Gpu, GpuView

CPU_ONLY = "none"  # the GPU class of a machine without a usable GPU (or --gpu none)


@dataclass(frozen=True)
class LockChoice:
    path: Path
    gpu_class: str  # the class the GPUs belong to, "a+b" for mixed cards, or CPU_ONLY
    torch: str  # the lock's torch version
    why: str  # one phrase for the plan and the summary


def torch_pin(lock: Path) -> str:
    pins = locks.parse_lock(lock)
    if "torch" not in pins:
        raise TtsrigError(f"{locks.display(lock)} pins no torch: restore it with `git checkout -- requirements/`")
    return pins["torch"].version


def class_names(gpus: list[Gpu]) -> str:
    table = gpu_table.load()
    return "+".join(dict.fromkeys(table.class_of(g.capability).name for g in gpus))


def choose(tier: str, python_version: str | tuple[int, ...], view: GpuView,
           requirements: Path | None = None) -> LockChoice:
    """The lock for these GPUs (none: the tier's), or one TtsrigError naming the choices."""
    folder = locks.REQUIREMENTS if requirements is None else Path(requirements)
    base = locks.lock_path(tier, python_version, folder)
    if not view.gpus:
        why = "no GPU seen: the tier's lock (its torch also runs on the CPU)"
        return LockChoice(base, CPU_ONLY, torch_pin(base), why)
    table = gpu_table.load()
    unserved = [g for g in view.gpus if not table.class_of(g.capability).served]
    if unserved:
        raise TtsrigError(refusal(unserved, view, "has no lock"))
    for card in view.gpus:
        why = table.unproven_why(tier, table.class_of(card.capability).name)
        if why:
            raise TtsrigError(refusal([card], view, f"has no lock for a {tier} CPU ({why})"))
    candidates = [base] + [locks.lock_path(gpu_lock.name, python_version, folder)
                           for gpu_lock in table.locks_for(tier)]
    for lock in candidates:
        torch = torch_pin(lock)
        build = table.build(torch)
        if build is None:
            raise TtsrigError(f"{locks.display(lock)} pins torch {torch}, which envcheck/data/gpus.json does not "
                              "describe: record its arch list there (bin/evidence) or restore the lock")
        if all(build.runs_on(g.capability) for g in view.gpus):
            check_driver(view, build, lock)
            names = class_names(view.gpus)
            return LockChoice(lock, names, torch, f"torch {torch} (CUDA {build.cuda}) has kernels for "
                              + ", ".join(f"{g.name} ({g.sm})" for g in view.gpus))
    if len({table.class_of(g.capability).name for g in view.gpus}) > 1:
        raise TtsrigError(refusal(view.gpus, view, "are served by no single torch build"))
    raise TtsrigError(f"no lock of tier {tier} for CPython {locks.python_name(locks.major_minor(python_version))} "
                      f"has kernels for {view.gpus[0].name} ({view.gpus[0].sm}, {class_names(view.gpus)}): "
                      "restore requirements/ with `git checkout -- requirements/`, or bootstrap for the CPU "
                      "with --gpu none")


def refusal(gpus: list[Gpu], view: GpuView, what: str) -> str:
    """One line: which cards, why, and the choices (the other cards alone, or each card alone, or the CPU)."""
    table = gpu_table.load()
    cards = ", ".join(f"GPU {g.index} {g.name} ({g.sm}, {table.class_of(g.capability).label})" for g in gpus)
    others = [g for g in view.gpus if g not in gpus]
    alone = [others] if others else ([[g] for g in view.gpus] if len(view.gpus) > 1 else [])
    picks = " or ".join("CUDA_VISIBLE_DEVICES=" + ",".join(g.uuid or str(g.index) for g in group) for group in alone)
    options = f"choose the cards every command uses ({picks}, then bin/bootstrap again), or " if picks else ""
    return f"{cards} {what}: {options}bootstrap for the CPU with --gpu none"


def check_driver(view: GpuView, build: gpu_table.TorchBuild, lock: Path) -> None:
    if view.driver and not build.driver_ok(view.driver):
        raise TtsrigError(f"the NVIDIA driver {view.driver} is older than {build.min_driver}, which torch "
                          f"{build.version} (CUDA {build.cuda}, {locks.display(lock)}) needs: update the driver "
                          "(your distribution's nvidia-driver package, or NVIDIA's), or bootstrap for the CPU with "
                          "--gpu none")


def from_option(value: str, probed: GpuView) -> GpuView:
    """--gpu auto (the probe's view), none (no GPU), or sm_XY (one card of that capability, for a machine
    whose driver cannot be asked, or a venv built for another box)."""
    if value == "auto":
        return probed
    if value == CPU_ONLY:
        return GpuView(driver=probed.driver, hidden=probed.gpus + probed.hidden, source="--gpu none")
    match = re.fullmatch(r"sm_?(\d{1,2})(\d)", value)
    if not match:
        names = ", ".join(c.name for c in gpu_table.load().classes)
        raise TtsrigError(f"--gpu {value!r} names no GPU: give auto, none or a compute capability as sm_XY (sm_61 "
                          f"for a GTX 1080 or P40, sm_86 for an RTX 3060, sm_120 for an RTX 5090; classes: {names})")
    capability = (int(match[1]), int(match[2]))
    return GpuView(driver=probed.driver, gpus=[Gpu(0, f"a card given by --gpu {value}", capability, 0)],
                   source="--gpu")
