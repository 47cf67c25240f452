"""The emulated evidence behind the locks (requirements/evidence/py3.X/<tier>-<cpu>.txt, written by bin/evidence):
each record is of its own lock (the versions it measured are the lock's pins), on a CPU of its tier, and every
package imports and computes there. A lock changed without new evidence fails here."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from envcheck import gpu_table, locks, tiers

EVIDENCE = locks.REQUIREMENTS / "evidence"
LAYER_SUFFIXES = tuple(f"-{layer}" for layer in locks.LAYERS)
ALL_RECORDS = sorted(EVIDENCE.glob("py3.*/*-*.txt"))
# A layer's record (py3.X/<tier>-<layer>-<cpu>.txt, `envcheck evidence --checks asr`) is checked on its own below.
RECORDS = [r for r in ALL_RECORDS if not r.stem.rsplit("-", 1)[0].endswith(LAYER_SUFFIXES)]
LAYER_RECORDS = [r for r in ALL_RECORDS if r not in RECORDS]
# Rows whose detail starts with the version of this distribution.
VERSIONED = {"numpy": "numpy", "torch": "torch", "transformers": "transformers", "scipy": "scipy", "numba": "numba",
             "scikit-learn": "scikit-learn", "librosa": "librosa", "soundfile": "soundfile", "soxr": "soxr",
             "matplotlib": "matplotlib", "tokenizers": "tokenizers", "safetensors": "safetensors"}
# torch 2.7's oneDNN fault on old AMD CPUs, which the start-up hook removes: the record keeps it visible.
RAW_ONEDNN_FAULT = {"torch float32 matmul", "import torch._dynamo"}
ROW = re.compile(r"^(.{34}) (\S+(?: out)?)\s+([\d.]+)s  (.*)$")


def read(record: Path) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    header = dict(re.match(r"# (\w+): (.*)", line).groups() for line in record.read_text().splitlines()
                  if re.match(r"# (python|cpu): ", line))
    rows = {}
    for line in record.read_text().splitlines():
        match = ROW.match(line)
        if match:
            rows[match[1].strip()] = (match[2], match[4])
    return header, rows


def pair(record: Path) -> tuple[tuple[int, int], str, str]:
    """py3.12/pre-v2-phenom.txt -> ((3, 12), 'pre-v2', 'phenom')."""
    tier, cpu = record.stem.rsplit("-", 1)
    return locks.major_minor(record.parent.name[2:]), tier, cpu


@pytest.mark.parametrize("python", locks.SUPPORTED_PYTHONS, ids=locks.python_name)
@pytest.mark.parametrize("tier", tiers.TIER_NAMES)
def test_every_lock_has_a_record_on_its_tiers_cpu(tier, python):
    cpu = tiers.load().tier(tier).emulate
    record = EVIDENCE / f"py{locks.python_name(python)}" / f"{tier}-{cpu}.txt"
    # Every lock offered has its record: a new Python or tier lands with its evidence.
    assert record.exists(), (f"no evidence for {locks.display(locks.lock_path(tier, python))}: run "
                             f"TTSRIG_EVIDENCE_PYTHON=python{locks.python_name(python)} bin/evidence {tier}:{cpu}")
    assert pair(record)[1:] == (tier, cpu)


@pytest.mark.parametrize("python", locks.SUPPORTED_PYTHONS, ids=locks.python_name)
@pytest.mark.parametrize("gpu_lock", gpu_table.load().locks, ids=lambda lock: lock.name)
def test_every_gpu_lock_has_a_record_on_the_cpu_of_each_tier_it_serves(gpu_lock, python):
    for tier in gpu_lock.tiers:
        cpu = tiers.load().tier(tier).emulate
        record = EVIDENCE / f"py{locks.python_name(python)}" / f"{gpu_lock.name}-{cpu}.txt"
        assert record.exists(), (f"no evidence for {locks.display(locks.lock_path(gpu_lock.name, python))} on "
                                 f"{cpu}: run TTSRIG_EVIDENCE_PYTHON=python{locks.python_name(python)} bin/evidence "
                                 f"{gpu_lock.name}:{cpu}")


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: f"{r.parent.name}/{r.name}")
def test_each_record_is_of_its_lock_on_its_cpu_and_everything_ran(record):
    python, tier, cpu = pair(record)
    header, rows = read(record)
    assert header["cpu"] == f"qemu-x86_64 -cpu {cpu}"
    version = re.search(r"\(CPython (\d+\.\d+)\.\d+\)", header["python"])
    if version:  # records from before the header named it are the 3.11 ones
        assert locks.major_minor(version[1]) == python
    else:
        assert python == (3, 11)
    pins = locks.parse_lock(locks.lock_path(tier, python))
    for row, package in VERSIONED.items():
        status, detail = rows[row]
        assert status == "ok", f"{row}: {status}: {detail}"
        assert detail.split()[0].split("+")[0] == pins[package].version, (row, detail, pins[package].version)
    for row, (status, detail) in rows.items():
        if status == "crashed" and row in RAW_ONEDNN_FAULT and tier == "pre-v2":
            assert "SIGFPE" in detail
            assert rows[f"{row}, oneDNN off"][0] == "ok"  # and the hook's remedy works
            continue
        assert status == "ok", f"{record.name}: {row}: {status}: {detail}"


# -- lock layers: each layer lock on its tier's CPU, the layer's own checks (envcheck evidence --checks asr) -----

LAYER_ROWS = {"numpy": "numpy", "ctranslate2": "ctranslate2", "av (PyAV)": "av", "onnxruntime": "onnxruntime",
              "tokenizers": "tokenizers", "faster-whisper import": "faster-whisper"}


@pytest.mark.parametrize("python", locks.SUPPORTED_PYTHONS, ids=locks.python_name)
@pytest.mark.parametrize("layer, tier", [(layer, tier) for layer, served in locks.LAYERS.items() for tier in served])
def test_every_layer_lock_has_a_record_on_its_tiers_cpu(layer, tier, python):
    cpu = tiers.load().tier(tier).emulate
    record = EVIDENCE / f"py{locks.python_name(python)}" / f"{tier}-{layer}-{cpu}.txt"
    assert record in LAYER_RECORDS, f"no evidence for {locks.display(locks.layer_path(layer, tier, python))} on {cpu}"


@pytest.mark.parametrize("record", LAYER_RECORDS, ids=lambda r: f"{r.parent.name}/{r.name}")
def test_each_layer_record_is_of_its_lock_and_everything_ran(record):
    python = locks.major_minor(record.parent.name[2:])
    name, cpu = record.stem.rsplit("-", 1)
    tier, layer = name.rsplit("-", 1)
    header, rows = read(record)
    assert header["cpu"] == f"qemu-x86_64 -cpu {cpu}" and cpu == tiers.load().tier(tier).emulate
    assert locks.major_minor(re.search(r"\(CPython (\d+\.\d+)\.\d+\)", header["python"])[1]) == python
    pins = locks.parse_lock(locks.layer_path(layer, tier, python))
    for row, package in LAYER_ROWS.items():
        assert rows[row][1].split()[0] == pins[package].version, (row, rows[row], pins[package].version)
    assert {"faster-whisper VAD (onnxruntime)", "faster-whisper transcribe float32"} <= set(rows)
    assert all(status == "ok" for status, _detail in rows.values()), rows
