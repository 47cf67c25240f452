"""What one bin/bootstrap run will do (Plan): tier, lock, venv, Python, installer, and where packages come from.

envcheck.bootstrap makes it (make_plan); every step reads it, and --dry-run prints it (Plan.describe).
Standard library only (bin/bootstrap runs on any Python 3.8 or newer).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from envcheck import bootstrap_common as common
from envcheck import bootstrap_wheels, gpu_choice, locks
from envcheck.bootstrap_layers import Layer
from envcheck.bootstrap_common import forbidden, rel
from envcheck.venv import STATE_NAME

# Which bytecode bootstrap compiles: none (each module is compiled on its first import), every installed module
# (the installer's --compile-bytecode), or only what ttsrig's commands import (envcheck.warm_up: one interpreter
# imports it all, which writes its .pyc files). tests/bench/bench_bootstrap.py measures the trade-off
# (tests/bench/README.md): on 2 cores, none makes a fresh bootstrap 8 s instead of 31 s (all) or 36 s (used),
# and the first command's imports take 18 s longer natively, 82 s under qemu -cpu phenom, once.
COMPILE_CHOICES = ("none", "all", "used")
DEFAULT_COMPILE = "none"


@dataclass
class Plan:
    tier: str
    probed_tier: str | None
    lock: Path
    nodeps: Path
    venv: Path
    python: str
    installer: str
    offline: bool
    lock_digest: str
    warnings: list[str] = field(default_factory=list)
    cpu: str = "unknown"
    pins: dict[str, locks.Pin] = field(default_factory=dict)  # the tier lock and nodeps.txt together
    cpuid_read: bool = False  # did the probe read CPUID (it needs archspec, which the venv brings)?
    wheelhouse: Path | None = None  # a folder of every file of the locks: install from it, never the index
    wheel_cache: Path = field(default_factory=bootstrap_wheels.default_wheel_cache)
    # The version of `python`, e.g. '3.12.1' (make_plan sets it; a Plan made by hand gets this process's).
    python_version: str = field(default_factory=lambda: ".".join(map(str, sys.version_info[:3])))
    compile: str = DEFAULT_COMPILE  # which .pyc files bootstrap writes: COMPILE_CHOICES
    gpu_class: str = gpu_choice.CPU_ONLY  # the GPU class the lock was chosen for (envcheck.gpu_choice)
    gpu_why: str = ""  # why that lock, in one phrase
    gpu_lines: list[str] = field(default_factory=list)  # what the GPU probe saw (envcheck.gpu.summary)
    layers: list[Layer] = field(default_factory=list)  # --with (and what the venv had): envcheck.bootstrap_layers

    def layer_records(self) -> dict[str, dict]:
        """The layers as the venv's record keeps them."""
        return {layer.name: layer.record() for layer in self.layers}

    @property
    def python_minor(self) -> str:
        """'3.12': the Python of the lock and of the venv's lib/python3.X."""
        return locks.python_name(locks.major_minor(self.python_version))

    @property
    def venv_python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def wheel_folders(self) -> list[Path]:
        """Where pip looks for the installer's own wheels (requirements/bootstrap.txt)."""
        return [*([self.wheelhouse] if self.wheelhouse else []), self.wheel_cache]

    def source_args(self) -> list[str]:
        """The installer options that say where packages come from: the index, uv's cache, a wheelhouse."""
        offline = ["--offline" if self.installer == "uv" else "--no-index"] if self.offline else []
        if self.wheelhouse:
            return ["--no-index", "--find-links", str(self.wheelhouse), *(offline if self.installer == "uv" else [])]
        return offline

    def describe(self) -> str:
        tier = self.tier if self.tier == self.probed_tier else f"{self.tier} (probed: {self.probed_tier or 'unknown'})"
        links = " ".join(f"--find-links {folder}" for folder in self.wheel_folders)
        sources = "".join(f" {arg}" for arg in self.source_args())
        fetch = "" if self.offline or self.wheelhouse else f" (downloaded into {self.wheel_cache} once, if missing)"
        steps = [
            f"create the venv {self.venv} with {self.python} (if missing; only a venv holding bootstrap's "
            f"{STATE_NAME} is ever rebuilt, and files bootstrap did not make are left)",
            f"pip install --require-hashes --no-deps --no-index {links} -r {rel(common.REQUIREMENTS / 'bootstrap.txt')}"
            + fetch,
            f"{self.installer} install{sources} --require-hashes --no-deps -r {rel(self.lock)}",
            f"{self.installer} install{sources} --require-hashes --no-deps --no-build-isolation -r "
            f"{rel(self.nodeps)} (builds monotonic-align against the pinned numpy)",
            *(layer.describe() + (" (kept: installed by an earlier run)" if layer.kept else "")
              for layer in self.layers),
            f"remove what tier {self.tier} forbids: {', '.join(forbidden(self.tier)) or 'nothing'}",
            f"install ttsrig itself (editable) so `{self.venv}/bin/envcheck` exists",
            "apply patches (python -m patches apply)",
            "verify: installed versions equal the lock; CPU probe",
        ]
        lines = [f"cpu:  {self.cpu}", f"tier: {tier}", *self.gpu_lines,
                 f"python: CPython {self.python_version} ({self.python})",
                 f"lock: {rel(self.lock)} (for GPU class {self.gpu_class}: {self.gpu_why})", "plan:"]
        lines += [f"  {i}. {s}" for i, s in enumerate(steps, 1)]
        return "\n".join([*(f"warning: {w}" for w in self.warnings), *lines])
