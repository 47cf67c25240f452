"""The emulated evidence behind the locks (requirements/evidence/py3.X/<tier>-<cpu>.txt, written by bin/evidence):
each record is of its own lock (the versions it measured are the lock's pins), on a CPU of its tier, and every
package imports and computes there. A lock changed without new evidence fails here."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from envcheck import gpu_table, locks, tiers

EVIDENCE = locks.REQUIREMENTS / "evidence"
RECORDS = sorted(EVIDENCE.glob("py3.*/*-*.txt"))
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
