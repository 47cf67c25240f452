"""The GPU probe, the GPU table and the lock choice, on recorded answers of real cards.

tests/gpus/nvml/ holds what NVML answers for each card (the stand-in library's format: driver, then
name|major|minor|total bytes|free bytes|uuid) and tests/gpus/nvidia-smi/ what `nvidia-smi --query-gpu` prints for
it; each file is named by the class the card must get. The NVML answers go through the probe's real ctypes
path: tests/gpus/nvml_standin.c is compiled here (gcc) into a libnvidia-ml.so.1 that the loader finds.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from envcheck import gpu, gpu_choice, gpu_table, locks
from envcheck.errors import TtsrigError

ROOT = Path(__file__).resolve().parents[2]
RECORDED = ROOT / "tests" / "gpus"
NVML_CARDS = sorted((RECORDED / "nvml").glob("*.txt"))
SMI_CARDS = sorted((RECORDED / "nvidia-smi").glob("*.csv"))


def expected(path: Path) -> list[str]:
    """The classes the file's name promises, card by card ('mixed': a P40 beside an RTX 3060)."""
    promise = path.stem.split("--")[1]
    return ["maxwell-pascal", "volta-hopper"] if promise == "mixed" else [promise]


def view_of(path: Path) -> gpu.GpuView:
    """A recorded NVML answer as the probe would return it (for the decisions that follow the probe)."""
    driver, *cards = path.read_text().splitlines()
    gpus = [gpu.Gpu(i, name, (int(major), int(minor)), int(total) >> 20, int(free) >> 20, uuid)
            for i, (name, major, minor, total, free, uuid) in enumerate(line.split("|") for line in cards)]
    return gpu.GpuView(driver, gpus, source="recorded")


@pytest.fixture(scope="module")
def standin(tmp_path_factory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the stand-in libnvidia-ml.so.1 (bin/test installs it)")
    folder = tmp_path_factory.mktemp("nvml")
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-o", str(folder / gpu.NVML_LIBRARY),
                    str(RECORDED / "nvml_standin.c")], check=True)
    return folder


def probe_json(standin: Path, cards: Path | None, **env: str) -> dict:
    """`python -m envcheck probe --json` with the stand-in NVML on the loader's path."""
    inherited = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}  # only a test's own setting
    full = {**inherited, "PYTHONPATH": str(ROOT), "LD_LIBRARY_PATH": str(standin), "PATH": "/usr/bin:/bin",
            **({"NVML_STANDIN_FILE": str(cards)} if cards else {}), **env}
    out = subprocess.run([sys.executable, "-m", "envcheck", "probe", "--json"], capture_output=True, text=True,
                         env=full, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["gpu"]


@pytest.mark.parametrize("cards", NVML_CARDS, ids=[p.stem for p in NVML_CARDS])
def test_every_recorded_card_through_the_real_nvml_path(standin, cards):
    seen = probe_json(standin, cards)
    driver, *lines = cards.read_text().splitlines()
    assert seen["source"] == "nvml" and seen["driver"] == driver
    assert [g["class"] for g in seen["gpus"]] == expected(cards)
    for card, line in zip(seen["gpus"], lines):
        name, major, minor, total, _free, uuid = line.split("|")
        assert (card["name"], card["capability"], card["uuid"]) == (name, f"{major}.{minor}", uuid)
        assert card["memory_mib"] == int(total) >> 20


@pytest.mark.parametrize("cards", SMI_CARDS, ids=[p.stem for p in SMI_CARDS])
def test_every_recorded_card_through_nvidia_smi(cards):
    text = cards.read_text()
    driver, found = gpu.from_nvidia_smi(run=lambda cmd: (0, text))
    assert [gpu_table.load().class_of(g.capability).name for g in found] == expected(cards)
    assert driver == text.split(",")[-1].strip()


def test_a_470_driver_without_compute_cap_is_asked_again_and_the_name_decides():
    answers = iter([(6, 'Field "compute_cap" is not a valid field to query.\n'),
                    (0, "0, GPU-1, NVIDIA GeForce GTX 970, 4096, 4011, 470.256.02\n")])
    asked: list[list[str]] = []
    driver, [card] = gpu.from_nvidia_smi(run=lambda cmd: (asked.append(cmd), next(answers))[1])
    assert "compute_cap" in asked[0][1] and "compute_cap" not in asked[1][1]
    assert (driver, card.capability, card.memory_mib) == ("470.256.02", (5, 2), 4096)


@pytest.mark.parametrize("text, reason", [
    ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA "
     "driver is installed and running.\n\n", "couldn't communicate with the NVIDIA driver"),
    ("Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 535.183\n",
     "Driver/library version mismatch"),
])
def test_nvidia_smi_printing_an_error_is_one_line_and_the_cpu_path(text, reason):
    def smi(cmd):
        return 255, text

    view = gpu.probe(sources=(("nvidia-smi", lambda: gpu.from_nvidia_smi(run=smi)),), env={})
    assert view.source is None and not view.gpus
    [line] = gpu.summary(view)
    assert reason in line and line.endswith("the CPU path") and "reboot" in line


@pytest.mark.parametrize("failure, words", [("nvmlInit_v2:18", "Driver/library version mismatch"),
                                            ("nvmlInit_v2:9", "Driver Not Loaded"),
                                            ("nvmlDeviceGetCudaComputeCapability:999", "Unknown Error")])
def test_a_broken_nvml_is_named_and_the_next_source_asked(standin, failure, words):
    seen = probe_json(standin, RECORDED / "nvml" / "rtx-3060--volta-hopper.txt", NVML_STANDIN_FAIL=failure)
    assert seen["source"] is None and seen["gpus"] == []  # no nvidia-smi on this PATH, no /proc/driver/nvidia
    assert any(words in problem for problem in seen["problems"]), seen["problems"]


def test_without_a_driver_the_probe_says_so_in_one_line():
    view = gpu.probe(sources=(("nvml", lambda: gpu.from_nvml("libnvidia-ml-absent.so.1")),
                              ("nvidia-smi", lambda: gpu.from_nvidia_smi(run=lambda cmd: (127, ""))),
                              ("/proc/driver/nvidia", lambda: gpu.from_proc(Path("/nonexistent")))), env={})
    assert gpu.summary(view) == ["gpu:        none (no NVIDIA driver): the CPU path"]


def test_proc_names_the_cards_and_the_table_gives_their_capability(tmp_path):
    (tmp_path / "gpus" / "0000:01:00.0").mkdir(parents=True)
    (tmp_path / "version").write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.183.01  Sun May 12 "
                                      "19:39:15 UTC 2024\nGCC version:  gcc version 12.2.0\n")
    (tmp_path / "gpus" / "0000:01:00.0" / "information").write_text(
        "Model: \t\t NVIDIA GeForce GTX 1080 Ti\nIRQ:   \t\t 130\nGPU UUID: \t GPU-x\n")
    driver, [card] = gpu.from_proc(tmp_path)
    assert (driver, card.name, card.capability) == ("535.183.01", "NVIDIA GeForce GTX 1080 Ti", (6, 1))


@pytest.mark.parametrize("setting, shown", [(None, [0, 1]), ("1", [1]), ("", []), ("-1", []), ("1,0", [1, 0]),
                                             ("0,7,1", [0]), ("GPU-4149ec76", [1]), ("GPU-", [])])
def test_cuda_visible_devices_hides_cards_as_cuda_does(setting, shown):
    view = view_of(RECORDED / "nvml" / "p40-and-rtx-3060--mixed.txt")
    seen, hidden = gpu.visible(view.gpus, setting)
    assert [g.index for g in seen] == shown and len(seen) + len(hidden) == 2


def test_a_gpu_hidden_by_cuda_visible_devices_decides_nothing(standin):
    seen = probe_json(standin, RECORDED / "nvml" / "p40-and-rtx-3060--mixed.txt", CUDA_VISIBLE_DEVICES="1")
    assert [g["name"] for g in seen["gpus"]] == ["NVIDIA GeForce RTX 3060"] and len(seen["hidden"]) == 1


# -- the table ----------------------------------------------------------------------------------------

def test_the_classes_cover_every_capability_once():
    table = gpu_table.load()
    for major in range(1, 14):
        for minor in range(10):
            found = [c for c in table.classes if c.low <= (major, minor) < c.high]
            assert len(found) == 1, (major, minor, found)


@pytest.mark.parametrize("capability, name, dtype", [
    ((5, 2), "NVIDIA GeForce GTX 970", "fp32"), ((6, 1), "Tesla P40", "fp32"), ((6, 0), "Tesla P100", "fp32"),
    ((7, 0), "Tesla V100", "fp16"), ((7, 5), "Tesla T4", "fp16"), ((7, 5), "NVIDIA GeForce RTX 2080", "fp16"),
    ((7, 5), "NVIDIA GeForce GTX 1650", "fp32"), ((7, 5), "NVIDIA GeForce GTX 1660 SUPER", "fp32"),
    ((8, 0), "NVIDIA A100", "bf16"), ((8, 6), "NVIDIA GeForce RTX 3060", "bf16"), ((12, 0), "RTX 5090", "bf16")])
def test_the_precision_follows_the_capability_and_tensor_cores(capability, name, dtype):
    assert gpu_table.load().precision(capability, name).dtype == dtype


@pytest.mark.parametrize("arch, capability, runs", [
    (("sm_50", "sm_60"), (6, 1), True), (("sm_50", "sm_60"), (5, 2), True), (("sm_60",), (5, 2), False),
    (("sm_70", "sm_86"), (8, 9), True), (("sm_90",), (12, 0), False), (("sm_120",), (12, 1), True),
    (("sm_86",), (8, 0), False)])
def test_a_kernel_runs_on_its_major_at_its_minor_or_higher(arch, capability, runs):
    assert gpu_table.TorchBuild("x", "12", arch, "525.60.13").runs_on(capability) is runs


# -- which lock ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("tier", ["pre-v2", "v2", "v3"])
@pytest.mark.parametrize("cards", NVML_CARDS, ids=[p.stem for p in NVML_CARDS])
def test_the_lock_chosen_for_every_tier_and_card_has_kernels_for_it(tier, cards):
    """Whatever lock is chosen, its torch (by its recorded arch list) runs on every card; a refusal happens only
    when no lock of the tier does, and it is one line with the choices."""
    view, table = view_of(cards), gpu_table.load()
    lock_files = [locks.lock_path(name, "3.11") for name in [tier, *(lock.name for lock in table.locks_for(tier))]]
    builds = [table.build(gpu_choice.torch_pin(p)) for p in lock_files]
    can = [b for b in builds if all(b.runs_on(g.capability) for g in view.gpus)]
    if can and all(table.class_of(g.capability).served for g in view.gpus) and can[0].driver_ok(view.driver):
        choice = gpu_choice.choose(tier, "3.11", view)
        assert table.build(choice.torch) in can
        assert choice.gpu_class == "+".join(dict.fromkeys(expected(cards)))
    else:
        with pytest.raises(TtsrigError) as refused:
            gpu_choice.choose(tier, "3.11", view)
        message = str(refused.value)
        assert "\n" not in message and ("--gpu none" in message)


def test_no_gpu_gets_the_tiers_own_lock():
    choice = gpu_choice.choose("v3", "3.11", gpu.GpuView())
    assert choice.path == locks.lock_path("v3", "3.11") and choice.gpu_class == gpu_choice.CPU_ONLY


@pytest.mark.parametrize("given, capability", [("sm_61", (6, 1)), ("sm_120", (12, 0)), ("sm86", (8, 6))])
def test_gpu_option_names_a_capability(given, capability):
    assert gpu_choice.from_option(given, gpu.GpuView()).gpus[0].capability == capability


@pytest.mark.parametrize("given", ["banana", "sm_", "61", "sm_1234"])
def test_gpu_option_that_names_no_class_is_one_line(given):
    with pytest.raises(TtsrigError, match=rf"--gpu '{given}' names no GPU: give auto, none or"):
        gpu_choice.from_option(given, gpu.GpuView())


def test_gpu_none_hides_every_card():
    view = gpu_choice.from_option("none", view_of(RECORDED / "nvml" / "rtx-3060--volta-hopper.txt"))
    assert view.gpus == [] and len(view.hidden) == 1
    assert gpu_choice.choose("v3", "3.11", view).gpu_class == gpu_choice.CPU_ONLY


def test_an_old_driver_is_one_line_naming_the_minimum():
    view = view_of(RECORDED / "nvml" / "rtx-3060--volta-hopper.txt")
    view.driver = "470.256.02"
    with pytest.raises(TtsrigError, match=r"driver 470.256.02 is older than 525.60.13, which torch 2.8.0 .*needs"):
        gpu_choice.choose("v3", "3.11", view)


# -- the table's torch builds are the wheels' own -----------------------------------------------------

ARCH_RECORDS = locks.REQUIREMENTS / "evidence" / "cuda-arch"


def recorded_arch(version: str) -> tuple[str, str, tuple[str, ...]]:
    """(full version, CUDA, arch list) as `envcheck evidence --checks cuda-arch` read it from the wheel."""
    row = next(line for line in (ARCH_RECORDS / f"torch-{version}.txt").read_text().splitlines()
               if line.startswith("torch CUDA arch list"))
    full, _cuda, cuda, *arch = row.split("  ")[-1].split()
    return full, cuda, tuple(arch)


LOCK_TORCH = sorted({gpu_choice.torch_pin(locks.lock_path(name, locks.python_name(python)))
                     for name in locks.lock_names() for python in locks.SUPPORTED_PYTHONS})


@pytest.mark.parametrize("version", LOCK_TORCH)
def test_every_locks_torch_has_its_arch_list_recorded_and_the_table_says_the_same(version):
    assert (ARCH_RECORDS / f"torch-{version}.txt").is_file(), (
        f"no record of torch {version}'s CUDA arch list: run `python -m envcheck evidence --checks cuda-arch --python "
        f"VENV/bin/python --out {ARCH_RECORDS.relative_to(ROOT)}/torch-{version}.txt` in a venv of a lock pinning it")
    full, cuda, arch = recorded_arch(version)
    build = gpu_table.load().build(version)
    assert full.split("+")[0] == version and (build.cuda, build.arch) == (cuda, arch)


@pytest.mark.parametrize("gpu_lock", gpu_table.load().locks, ids=lambda lock: lock.name)
def test_each_gpu_lock_serves_its_class_where_its_tiers_lock_does_not(gpu_lock):
    table = gpu_table.load()
    served = next(c for c in table.classes if c.name == gpu_lock.gpu_class)
    for python in locks.SUPPORTED_PYTHONS:
        lock = locks.lock_path(gpu_lock.name, locks.python_name(python))
        assert f"class {gpu_lock.gpu_class}" in lock.read_text().split("\n\n")[0] or gpu_lock.gpu_class in lock.name
        build = table.build(gpu_choice.torch_pin(lock))
        assert build.runs_on(served.low) and build.runs_on((served.high[0] - 1, 9))
        for tier in gpu_lock.tiers:
            own = table.build(gpu_choice.torch_pin(locks.lock_path(tier, locks.python_name(python))))
            assert not own.runs_on(served.low), f"{tier}'s own lock already serves {served.name}: no GPU lock needed"
