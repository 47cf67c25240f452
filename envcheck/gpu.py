"""Which NVIDIA GPUs this machine has, without torch: their names, compute capability and memory, and the
driver's version. bin/bootstrap asks before any venv exists, so this is standard library only.

Three sources, in order, each a small function that returns what it saw or says why it could not:
NVML (libnvidia-ml.so.1, installed with the driver, through ctypes), `nvidia-smi --query-gpu`, and the
driver's /proc/driver/nvidia files (names only: the capability is then looked up by name in
envcheck/data/gpus.json). No driver or no GPU: an empty view, and the CPU path as before. A GPU that
CUDA_VISIBLE_DEVICES hides is listed as hidden and never decides anything.
"""
from __future__ import annotations

import ctypes
import os
import re
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, List, Tuple

from envcheck import gpu_table


@dataclass(frozen=True)
class Gpu:
    index: int  # NVML's (PCI bus) order
    name: str
    capability: tuple[int, int]
    memory_mib: int
    free_mib: int | None = None
    uuid: str = ""

    @property
    def sm(self) -> str:
        return f"sm_{self.capability[0]}{self.capability[1]}"

    def to_json(self) -> dict:
        table = gpu_table.load()
        return {"index": self.index, "name": self.name, "capability": "%d.%d" % self.capability, "sm": self.sm,
                "memory_mib": self.memory_mib, "free_mib": self.free_mib, "uuid": self.uuid,
                "class": table.class_of(self.capability).name,
                "precision": table.precision(self.capability, self.name).dtype}


@dataclass
class GpuView:
    driver: str | None = None  # "535.183.01"
    gpus: list[Gpu] = field(default_factory=list)  # the ones CUDA programs of this process will see
    hidden: list[Gpu] = field(default_factory=list)  # present, hidden by CUDA_VISIBLE_DEVICES
    source: str | None = None  # nvml, nvidia-smi, /proc/driver/nvidia
    problems: list[str] = field(default_factory=list)  # why a source said nothing, one line each

    def to_json(self) -> dict:
        return {"driver": self.driver, "source": self.source, "gpus": [g.to_json() for g in self.gpus],
                "hidden": [g.to_json() for g in self.hidden], "problems": self.problems}


class SourceError(Exception):
    """A source that could not answer; its text says why, in one line."""


# -- NVML ------------------------------------------------------------------------------------------

NVML_LIBRARY = "libnvidia-ml.so.1"
NVML_SUCCESS = 0


class _Memory(ctypes.Structure):
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]


def from_nvml(library: str = NVML_LIBRARY) -> tuple[str, list[Gpu]]:
    """(driver version, every GPU) from NVML; SourceError with NVML's own reason otherwise."""
    try:
        nvml = ctypes.CDLL(library)
    except OSError as exc:
        raise SourceError(f"no NVML ({library}: {exc})") from None
    nvml.nvmlErrorString.restype = ctypes.c_char_p

    def call(name: str, *args: object) -> None:
        try:
            function = getattr(nvml, name)
        except AttributeError:
            raise SourceError(f"NVML lacks {name} (a driver too old for this probe)") from None
        code = function(*args)
        if code != NVML_SUCCESS:
            reason = nvml.nvmlErrorString(code)
            raise SourceError(f"NVML {name}: {reason.decode(errors='replace') if reason else code}")

    call("nvmlInit_v2")
    try:
        text = ctypes.create_string_buffer(96)
        call("nvmlSystemGetDriverVersion", text, ctypes.c_uint(len(text)))
        driver = text.value.decode(errors="replace")
        count = ctypes.c_uint()
        call("nvmlDeviceGetCount_v2", ctypes.byref(count))
        gpus = []
        for index in range(count.value):
            handle = ctypes.c_void_p()
            call("nvmlDeviceGetHandleByIndex_v2", ctypes.c_uint(index), ctypes.byref(handle))
            call("nvmlDeviceGetName", handle, text, ctypes.c_uint(len(text)))
            name = text.value.decode(errors="replace")
            call("nvmlDeviceGetUUID", handle, text, ctypes.c_uint(len(text)))
            uuid = text.value.decode(errors="replace")
            major, minor = ctypes.c_int(), ctypes.c_int()
            call("nvmlDeviceGetCudaComputeCapability", handle, ctypes.byref(major), ctypes.byref(minor))
            memory = _Memory()
            call("nvmlDeviceGetMemoryInfo", handle, ctypes.byref(memory))
            gpus.append(Gpu(index, name, (major.value, minor.value), memory.total >> 20, memory.free >> 20, uuid))
        return driver, gpus
    finally:
        nvml.nvmlShutdown()


# -- nvidia-smi ------------------------------------------------------------------------------------

SMI_FIELDS = ("index", "uuid", "name", "compute_cap", "memory.total", "memory.free", "driver_version")
Runner = Callable[[List[str]], Tuple[int, str]]  # (typing's: Python 3.8 runs bootstrap)


def run_command(cmd: list[str]) -> tuple[int, str]:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        return 127, f"{cmd[0]} not found"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 1, str(exc)
    return done.returncode, done.stdout + done.stderr


def from_nvidia_smi(run: Runner = run_command) -> tuple[str, list[Gpu]]:
    """(driver version, every GPU) from nvidia-smi; drivers of the 470 series know no compute_cap field, so
    then the capability comes from the card's name."""
    fields = list(SMI_FIELDS)
    code, text = run(["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"])
    if code != 0 and "compute_cap" in text:
        fields.remove("compute_cap")
        code, text = run(["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"])
    if code == 127:
        raise SourceError("no nvidia-smi")
    rows = [line for line in text.splitlines() if line.strip()]
    if code != 0 or not rows or any(line.count(",") != len(fields) - 1 for line in rows):
        raise SourceError(f"nvidia-smi: {smi_problem(text)}")
    gpus, driver = [], ""
    for line in rows:
        values = dict(zip(fields, (v.strip() for v in line.split(","))))
        capability = (parse_capability(values["compute_cap"]) if "compute_cap" in values
                      else gpu_table.load().capability_of_name(values["name"]))
        if capability is None:
            raise SourceError(f"nvidia-smi gave no compute capability for {values['name']} and ttsrig does not know "
                              "that card's name")
        gpus.append(Gpu(int(values["index"]), values["name"], capability, int(float(values["memory.total"])),
                        int(float(values["memory.free"])), values["uuid"]))
        driver = values["driver_version"]
    return driver, gpus


def smi_problem(text: str) -> str:
    """nvidia-smi's own reason in one line (its messages run over several)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "no output"


def parse_capability(text: str) -> tuple[int, int] | None:
    match = re.fullmatch(r"(\d+)\.(\d+)", text.strip())
    return (int(match[1]), int(match[2])) if match else None


# -- /proc/driver/nvidia ---------------------------------------------------------------------------

PROC = Path("/proc/driver/nvidia")


def from_proc(root: Path = PROC) -> tuple[str, list[Gpu]]:
    """(driver version, every GPU by name) from the kernel module's files; memory is not known there."""
    try:
        version = (root / "version").read_text(errors="replace")
    except OSError:
        raise SourceError(f"no {root}/version (no NVIDIA kernel module loaded)") from None
    match = re.search(r"Kernel Module\s+(?:for \S+\s+)?(\d+\.\d+(?:\.\d+)?)", version)
    driver = match[1] if match else ""
    gpus = []
    for index, info in enumerate(sorted((root / "gpus").glob("*/information"))):
        model = re.search(r"^Model:\s*(.+)$", info.read_text(errors="replace"), re.M)
        name = model[1].strip() if model else "unknown"
        capability = gpu_table.load().capability_of_name(name)
        if capability is None:
            raise SourceError(f"{info} names {name}, a card ttsrig does not know by name")
        gpus.append(Gpu(index, name, capability, 0))
    return driver, gpus


# -- the view --------------------------------------------------------------------------------------

Source = Callable[[], Tuple[str, List[Gpu]]]
SOURCES: tuple[tuple[str, Source], ...] = (("nvml", from_nvml), ("nvidia-smi", from_nvidia_smi),
                                           ("/proc/driver/nvidia", from_proc))


def visible(gpus: list[Gpu], setting: str | None) -> tuple[list[Gpu], list[Gpu]]:
    """(shown, hidden) by CUDA_VISIBLE_DEVICES: indices (in PCI bus order, as with CUDA_DEVICE_ORDER=PCI_BUS_ID)
    or UUIDs (GPU-..., or a unique prefix), up to the first that names no GPU, as CUDA reads it."""
    if setting is None:
        return gpus, []
    shown: list[Gpu] = []
    for item in (part.strip() for part in setting.split(",")):
        found = [g for g in gpus if (item.isdigit() and g.index == int(item))
                 or (item.startswith("GPU-") and g.uuid.startswith(item))]
        if len(found) != 1 or found[0] in shown:
            break
        shown.append(found[0])
    return shown, [g for g in gpus if g not in shown]


def probe(sources: tuple[tuple[str, Source], ...] = SOURCES, env: dict[str, str] | None = None) -> GpuView:
    """What the first source that answers sees, with what each earlier one said instead."""
    env = os.environ if env is None else env
    view = GpuView()
    for name, source in sources:
        try:
            driver, gpus = source()
        except SourceError as exc:
            view.problems.append(str(exc))
            continue
        shown, hidden = visible(sorted(gpus, key=lambda g: g.index), env.get("CUDA_VISIBLE_DEVICES"))
        return replace(view, driver=driver or None, gpus=shown, hidden=hidden, source=name)
    return view


def hint(problem: str) -> str:
    """A source's failure, with what to do where the cause is known."""
    if "version mismatch" in problem.lower():
        return f"{problem}: the driver was updated without a reboot; reboot"
    if "couldn't communicate with the NVIDIA driver" in problem or "Driver Not Loaded" in problem:
        return f"{problem}: the kernel module is not loaded; reboot, or reinstall the driver"
    return problem


def summary(view: GpuView) -> list[str]:
    """What `envcheck probe` prints about the GPUs, a line each."""
    if view.source is None:
        failed = [p for p in view.problems if not p.startswith("no ")]  # a source there, but failing
        if not failed:
            return ["gpu:        none (no NVIDIA driver): the CPU path"]
        return [f"gpu:        the NVIDIA driver did not answer ({'; '.join(hint(p) for p in failed)}): the CPU path"]
    table = gpu_table.load()
    lines = [f"gpu driver: {view.driver or 'unknown version'} (from {view.source})"]
    for gpu in view.gpus:
        memory = f"{gpu.memory_mib / 1024:.0f} GiB" if gpu.memory_mib else "memory unknown"
        precision = table.precision(gpu.capability, gpu.name).dtype
        lines.append(f"gpu {gpu.index}:      {gpu.name}, compute capability {gpu.capability[0]}.{gpu.capability[1]} "
                     f"({gpu.sm}), {memory}: {table.class_of(gpu.capability).describe()}; trains in {precision}")
    for gpu in view.hidden:
        lines.append(f"gpu {gpu.index}:      {gpu.name} ({gpu.sm}), hidden by CUDA_VISIBLE_DEVICES: not considered")
    if not view.gpus:
        lines.append("gpu:        every GPU is hidden by CUDA_VISIBLE_DEVICES: the CPU path")
    return lines
