"""Lock integrity: every pin hashed, nothing forbidden, the .in constraints hold."""
from __future__ import annotations

import os
import re
import subprocess
import sys
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


H = {k: k * 64 for k in "abcdef"}  # stand-in sha256 digests


def lock_text(*pins: tuple[str, str, list[str]]) -> str:
    out = "#\n# header\n#\n"
    for name, version, hashes in pins:
        out += f"{name}=={version} \\\n" + " \\\n".join(f"    --hash=sha256:{H[h]}" for h in hashes) + "\n    # via x\n"
    return out


def test_pins_know_the_line_of_their_name_and_of_each_hash():
    pins = locks.parse_lock_text(lock_text(("torch", "2.7.0", ["a", "b"]), ("numpy", "1.26.4", ["c"])), "x.txt")
    assert (pins["torch"].line, pins["torch"].hash_lines) == (4, (5, 6))
    assert (pins["numpy"].line, pins["numpy"].hash_lines) == (8, (9,))
    assert pins["torch"] == locks.Pin("torch", "2.7.0", (H["a"], H["b"]))  # lines do not change what a pin is


def test_hand_edits_are_told_apart_from_a_regenerated_lock():
    committed = locks.parse_lock_text(lock_text(("torch", "2.7.0", ["a", "b"]), ("numpy", "1.26.4", ["c", "d"])), "c")

    def edits(*pins):
        return [(e.line, e.what) for e in locks.hand_edits(locks.parse_lock_text(lock_text(*pins), "x"), committed)]

    numpy = ("numpy", "1.26.4", ["c", "d"])
    # The version changed, the hashes did not: the same files cannot be another release.
    assert edits(("torch", "2.8.0", ["a", "b"]), numpy) == [
        (4, "torch 2.8.0 carries the hashes of torch 2.7.0 (the version was changed by hand)")]
    # One hash replaced: named on its own line.
    assert edits(("torch", "2.7.0", ["a", "e"]), numpy) == [
        (6, f"the hash sha256:{H['e'][:12]}... of torch 2.7.0 was changed (it is not one of that release's files)")]
    assert edits(("torch", "2.7.0", ["a"]), numpy) == [(4, "hashes of torch 2.7.0 were removed")]
    # Hashes moved from one package to another.
    assert edits(("torch", "2.7.0", ["a", "c"]), ("numpy", "1.26.4", ["d"]))[0][1].startswith(
        "torch 2.7.0 carries the hashes of numpy 1.26.4")
    # bin/lock's work: a new release with its own hashes, a new upload beside old files, a new package.
    assert edits(("torch", "2.8.0", ["e", "f"]), ("numpy", "1.26.4", ["c", "d", "e"]), ("uv", "1", ["f"])) == []


def test_refuse_hand_edits_names_file_line_package_and_the_way_back():
    committed = locks.parse_lock_text(lock_text(("torch", "2.7.0", ["a", "b"])), "c")
    edited = locks.parse_lock_text(lock_text(("torch", "2.7.1", ["a", "b"])), "x")
    with pytest.raises(TtsrigError) as caught:
        locks.refuse_hand_edits("requirements/pre-v2.txt", edited, committed)
    assert str(caught.value) == (
        "requirements/pre-v2.txt line 4: torch 2.7.1 carries the hashes of torch 2.7.0 (the version was changed by "
        "hand): the lock was edited by hand. Restore it with `git checkout -- requirements/` or regenerate it with "
        "bin/lock.")


def test_a_package_pinned_twice_is_refused_with_both_lines():
    text = lock_text(("torch", "2.7.0", ["a"]), ("numpy", "1", ["c"]), ("Torch", "2.8.0", ["b"]))
    with pytest.raises(TtsrigError, match=r"x.txt line 10: Torch is pinned a second time \(first on line 4\)"):
        locks.parse_lock_text(text, "x.txt")


def test_a_lock_that_is_not_utf8_is_one_line_naming_the_line(tmp_path):
    lock = tmp_path / "v3.txt"
    lock.write_bytes(lock_text(("torch", "2.7.0", ["a"])).encode() + b"# caf\xe9\n")
    with pytest.raises(TtsrigError, match=r"v3.txt line 7: not UTF-8 text.*git checkout -- requirements/"):
        locks.parse_lock(lock)


def test_parse_errors_name_the_line(tmp_path):
    lock = tmp_path / "x.txt"
    lock.write_text("# a\n\nnumpy==1.26.4 \\\n    --hash=sha256:" + "a" * 64 + "\ntorch==2.7.0\n")
    with pytest.raises(TtsrigError, match=r"x.txt line 5: torch==2.7.0 has no --hash.*git checkout -- requirements/"):
        locks.parse_lock(lock)


# --- nodeps.txt: bin/lock writes it through envcheck.locks ----------------------------------------

NODEPS_FILES = {"f5_tts-1.1.22-py3-none-any.whl": b"f5", "styletts2-0.1.6-py3-none-any.whl": b"styletts2",
                "monotonic_align-1.0.0.tar.gz": b"mas"}


def downloads(folder: Path) -> Path:
    folder.mkdir()
    for name, data in NODEPS_FILES.items():
        (folder / name).write_bytes(data)
    (folder / "pins").write_text("not a package file\n")
    return folder


def test_nodeps_lock_text_has_the_committed_layout(tmp_path):
    import hashlib

    text = locks.nodeps_lock_text(REQ / "nodeps.in", downloads(tmp_path / "dl"))
    committed = (REQ / "nodeps.txt").read_text()
    fake = iter(hashlib.sha256(data).hexdigest() for data in NODEPS_FILES.values())
    assert text == re.sub(r"(?<=sha256:)[0-9a-f]{64}", lambda _: next(fake), committed)
    assert set(locks.parse_lock_text(text, "nodeps.txt")) == set(locks.parse_lock(REQ / "nodeps.txt"))


FAKE_PIP = """#!/bin/sh
# pip download -q --no-deps -d DIR -r FILE: copy the stand-in files into DIR, or fail like a lost network.
[ -n "$FAKE_PIP_FAIL" ] && { echo "ERROR: network is unreachable" >&2; exit 1; }
while [ "$1" != "-d" ]; do shift; done
cp "$FAKE_DOWNLOADS"/* "$2"/
"""


def lock_checkout(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A checkout with bin/lock, envcheck, requirements/nodeps.in and stand-in pip tools."""
    import shutil

    root = tmp_path / "checkout"
    (root / "bin").mkdir(parents=True)
    shutil.copy(REQ.parent / "bin/lock", root / "bin/lock")
    shutil.copytree(REQ.parent / "envcheck", root / "envcheck", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "requirements").mkdir()
    shutil.copy(REQ / "nodeps.in", root / "requirements/nodeps.in")
    tools = tmp_path / "tools/bin"
    tools.mkdir(parents=True)
    for name, text in (("pip-compile", "#!/bin/sh\nexit 1\n"), ("pip", FAKE_PIP)):
        (tools / name).write_text(text)
        (tools / name).chmod(0o755)
    env = {**os.environ, "TTSRIG_LOCK_TOOLS": str(tools.parent), "PYTHON": sys.executable,
           "FAKE_DOWNLOADS": str(downloads(tmp_path / "dl"))}
    return root, env


def test_bin_lock_leaves_no_temporary_file_when_a_step_fails(tmp_path):
    root, env = lock_checkout(tmp_path)
    failed = subprocess.run([str(root / "bin/lock"), "nodeps"], capture_output=True, text=True,
                            env={**env, "FAKE_PIP_FAIL": "1"})
    assert failed.returncode != 0 and "network is unreachable" in failed.stderr
    assert sorted(p.name for p in (root / "requirements").iterdir()) == ["nodeps.in"]
    written = subprocess.run([str(root / "bin/lock"), "nodeps"], capture_output=True, text=True, env=env)
    assert written.returncode == 0, written.stderr
    assert sorted(p.name for p in (root / "requirements").iterdir()) == ["nodeps.in", "nodeps.txt"]
    assert (root / "requirements/nodeps.txt").read_text() == locks.nodeps_lock_text(
        REQ / "nodeps.in", Path(env["FAKE_DOWNLOADS"]))
