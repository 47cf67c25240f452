"""Lock integrity: every pin hashed, nothing forbidden, the .in constraints hold."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from envcheck import locks, tiers
from envcheck.errors import TtsrigError

REQ = locks.REQUIREMENTS
TIERS = list(tiers.TIER_NAMES)
ALL_LOCKS = sorted(REQ.glob("*.txt"))


def in_requirements(path: Path) -> list[Requirement]:
    """Requirements of an .in file, following -r and -c includes."""
    found = []
    for raw in path.read_text().splitlines():
        line = raw.split("#")[0].strip()
        if not line:
            continue
        if line.startswith(("-r ", "-c ")):
            target = REQ / line[3:].strip()
            if target.suffix == ".in":
                found += in_requirements(target)
            continue
        found.append(Requirement(line))
    return found


def test_there_is_a_lock_per_tier_plus_bootstrap_nodeps_and_dev():
    names = {p.stem for p in ALL_LOCKS}
    assert names >= {*TIERS, "bootstrap", "nodeps", "dev"}
    for name in names:
        assert (REQ / f"{name}.in").is_file(), f"{name}.txt has no {name}.in"


@pytest.mark.parametrize("lock", ALL_LOCKS, ids=lambda p: p.name)
def test_every_pin_is_exact_and_hashed(lock):
    pins = locks.parse_lock(lock)  # raises on an unhashed or inexact pin
    assert pins and all(len(p.hashes) >= 1 for p in pins.values())


@pytest.mark.parametrize("lock", ALL_LOCKS, ids=lambda p: p.name)
def test_lock_names_no_path_of_this_machine(lock):
    text = lock.read_text()
    assert not re.search(r"file://|/opt/|--find-links|--extra-index-url|--index-url|/root/|/home/", text)


@pytest.mark.parametrize("tier", TIERS)
def test_tier_lock_holds_no_forbidden_package(tier):
    pins = {**locks.parse_lock(REQ / f"{tier}.txt"), **locks.parse_lock(REQ / "nodeps.txt")}
    forbidden = {locks.canonical(n) for n in tiers.load().tier(tier).forbidden}
    assert not forbidden & set(pins)


@pytest.mark.parametrize("name", [*TIERS, "bootstrap", "dev"])
def test_pins_satisfy_the_in_file(name):
    pins = locks.parse_lock(REQ / f"{name}.txt")
    for req in in_requirements(REQ / f"{name}.in"):
        pin = pins.get(locks.canonical(req.name))
        assert pin is not None, f"{req.name} from {name}.in is not in {name}.txt"
        assert req.specifier.contains(pin.version, prereleases=True), f"{req.name}=={pin.version} vs {req}"


@pytest.mark.parametrize("name", [*TIERS, "dev"])
def test_bootstrap_tools_have_the_same_version_everywhere(name):
    boot = locks.parse_lock(REQ / "bootstrap.txt")
    pins = locks.parse_lock(REQ / f"{name}.txt")
    for pkg, pin in boot.items():
        if pkg in pins:
            assert pins[pkg].version == pin.version


@pytest.mark.parametrize("tier", TIERS)
def test_pytest_for_the_tier_venv_changes_no_tier_package(tier):
    """tests/run_in_venv.py adds test-in-venv.txt with --no-deps to a tier venv: it may add, never replace."""
    extra = locks.parse_lock(REQ / "test-in-venv.txt")
    pins = locks.parse_lock(REQ / f"{tier}.txt")
    assert {"pytest", "pluggy", "iniconfig"} <= set(extra)
    for name, pin in extra.items():
        if name in pins:
            assert pins[name].version == pin.version, f"{name}: {tier}.txt {pins[name].version}, test-in-venv {pin.version}"


def test_every_tier_lock_holds_the_run_time_stack():
    needed = {"torch", "torchaudio", "transformers", "numpy", "soundfile", "cython", "archspec", "uv",
              "phonemizer", "espeakng-loader", "x-transformers", "vocos", "librosa", "safetensors", "tqdm"}
    for tier in TIERS:
        assert needed <= set(locks.parse_lock(REQ / f"{tier}.txt")), tier
    assert set(locks.parse_lock(REQ / "nodeps.txt")) == {"f5-tts", "styletts2", "monotonic-align"}


def test_pre_v2_pins_are_the_verified_set():
    pins = locks.parse_lock(REQ / "pre-v2.txt")
    assert {n: pins[n].version for n in ("torch", "torchaudio", "transformers", "numpy")} == {
        "torch": "2.7.0", "torchaudio": "2.7.0", "transformers": "4.57.3", "numpy": "1.26.4"}


def test_pre_v2_numpy_stays_below_2_4_which_needs_v2():
    from packaging.version import Version

    assert Version(locks.parse_lock(REQ / "pre-v2.txt")["numpy"].version) < Version("2.4")


def test_parse_lock_refuses_hand_edits(tmp_path):
    lock = tmp_path / "x.txt"
    lock.write_text("torch==2.7.0\n")
    with pytest.raises(TtsrigError, match="torch==2.7.0 has no --hash"):
        locks.parse_lock(lock)
    lock.write_text("torch>=2.7 \\\n    --hash=sha256:" + "a" * 64 + "\n")
    with pytest.raises(TtsrigError, match="not an exact pin"):
        locks.parse_lock(lock)


def test_conformance_reports_each_kind_of_difference():
    pins = {n: locks.Pin(n, v, ("x",)) for n, v in {"torch": "2.7.0", "numpy": "1.26.4", "uv": "1"}.items()}
    have = {"torch": "2.8.0", "numpy": "1.26.4", "pandas": "3.0", "rich": "13"}
    result = locks.conformance(pins, have, ["pandas"])
    assert result.mismatched == {"torch": ("2.7.0", "2.8.0")}
    assert result.missing == ["uv"]
    assert result.forbidden_present == ["pandas"]
    assert result.extra == ["rich"]
    assert not result.ok
