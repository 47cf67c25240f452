"""What ttsrig knows about NVIDIA GPUs, read from envcheck/data/gpus.json: the class of a compute capability,
which torch builds have kernels for it, which driver they need, the precision it computes well, and a
card's capability by its name (for drivers whose nvidia-smi cannot say). The data is the knowledge; this
module only loads and compares. Standard library only (bin/bootstrap asks it before any venv exists).
"""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Tuple

DATA_FILE = Path(__file__).with_name("data") / "gpus.json"
Capability = Tuple[int, int]  # (typing's: bin/bootstrap may run on Python 3.8)


def parse_version(text: str) -> tuple[int, ...]:
    """'535.183.01' -> (535, 183, 1); '12.0' -> (12, 0)."""
    return tuple(int(part) for part in text.split("."))


@dataclass(frozen=True)
class GpuClass:
    name: str
    low: Capability  # from this capability ...
    high: Capability  # ... up to, not including, this one
    label: str
    examples: str
    served: bool
    why: str = ""
    example: str = ""  # a compute capability of the class, as --gpu takes it (sm_61)

    def describe(self) -> str:
        if self.served:
            return f"{self.label} ({self.name})"
        return f"{self.label}: no lock serves it ({self.why})"


@dataclass(frozen=True)
class TorchBuild:
    version: str
    cuda: str
    arch: tuple[str, ...]  # the sm_XY it carries kernels for, as torch._C._cuda_getArchFlags() lists them
    min_driver: str

    def runs_on(self, capability: Capability) -> bool:
        """A kernel built for sm_XY runs on a card of major X and minor Y or higher (sm_61 runs sm_60 code)."""
        major, minor = capability
        return any(int(arch[3:-1]) == major and int(arch[-1]) <= minor for arch in self.arch)

    def driver_ok(self, driver: str) -> bool:
        return parse_version(driver) >= parse_version(self.min_driver)


@dataclass(frozen=True)
class GpuLock:
    """A lock of a tier for a GPU class whose cards the tier's torch has no kernels for: requirements/py3.X/<name>.txt,
    for the CPUs of `tiers` (a lower tier's lock runs on a higher tier's CPU)."""
    name: str
    tier: str
    tiers: tuple[str, ...]
    gpu_class: str


@dataclass(frozen=True)
class Precision:
    dtype: str  # bf16, fp16, fp32
    why: str


@dataclass(frozen=True)
class Table:
    classes: tuple[GpuClass, ...]
    torch: dict[str, TorchBuild]
    precision_rules: tuple[dict, ...]
    names: tuple[tuple[re.Pattern, Capability], ...]
    locks: tuple[GpuLock, ...] = ()
    unproven: tuple[dict, ...] = ()  # (tiers, class) pairs no lock is measured for yet, with the reason

    def unproven_why(self, tier: str, gpu_class: str) -> str | None:
        return next((u["why"] for u in self.unproven if tier in u["tiers"] and u["class"] == gpu_class), None)

    def locks_for(self, tier: str) -> list[GpuLock]:
        """The GPU locks a CPU of this tier may use, in the data's order."""
        return [lock for lock in self.locks if tier in lock.tiers]

    def lock(self, name: str) -> GpuLock | None:
        return next((lock for lock in self.locks if lock.name == name), None)

    def class_of(self, capability: Capability) -> GpuClass:
        for gpu_class in self.classes:
            if gpu_class.low <= tuple(capability) < gpu_class.high:
                return gpu_class
        return self.classes[0]  # below every range: the oldest class

    def build(self, torch_version: str) -> TorchBuild | None:
        return self.torch.get(torch_version.split("+")[0])

    def capability_of_name(self, name: str) -> Capability | None:
        for pattern, capability in self.names:
            if pattern.search(name):
                return capability
        return None

    def precision(self, capability: Capability, name: str = "") -> Precision:
        """The precision a card of this capability (and name) computes well, with the reason."""
        for rule in self.precision_rules:
            if tuple(capability) >= parse_capability(rule["from"]):
                if rule.get("unless_name") and re.search(rule["unless_name"], name):
                    continue  # e.g. a GTX 16xx: Turing without tensor cores
                return Precision(rule["dtype"], rule["why"])
        raise AssertionError("gpus.json: the last precision rule covers every capability")


def parse_capability(text: str) -> Capability:
    major, minor = (int(part) for part in text.split("."))
    return major, minor


@functools.lru_cache(maxsize=None)
def load(path: Path = DATA_FILE) -> Table:
    raw = json.loads(path.read_text(encoding="utf-8"))
    classes = tuple(GpuClass(c["name"], parse_capability(c["from"]), parse_capability(c["to"]), c["label"],
                             c["examples"], c["served"], c.get("why", ""), c.get("example", "")) for c in raw["classes"])
    torch = {version: TorchBuild(version, b["cuda"], tuple(b["arch"]), b["min_driver"])
             for version, b in raw["torch"].items()}
    names = tuple((re.compile(pattern, re.I), parse_capability(capability)) for pattern, capability in raw["names"])
    gpu_locks = tuple(GpuLock(lock["name"], lock["tier"], tuple(lock["tiers"]), lock["class"]) for lock in raw["locks"])
    return Table(classes, torch, tuple(raw["precision"]), names, gpu_locks, tuple(raw.get("unproven", ())))
