"""Which CPython and glibc a wheel installs on (envcheck.wheels), `envcheck scan` per Python, and the report's
row that holds the installed wheels against the interpreter and glibc that run them."""
from __future__ import annotations

import configparser
import json
import subprocess
import sys
from pathlib import Path

import pytest

from envcheck import knowledge, locks, tiers, wheels
from envcheck import report as rep
from envcheck.isolated import FAILED, OK

ROOT = Path(__file__).resolve().parents[2]
HERE = wheels.Target(sys.version_info[:2])


@pytest.mark.parametrize("filename, python, glibc, fits", [
    ("numpy-1.26.4-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", (3, 12), (2, 17), True),
    ("numpy-1.26.4-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", (3, 13), (2, 36), False),
    ("numpy-1.26.4-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", (3, 12), (2, 12), False),
    ("torch-2.7.0-cp313-cp313-manylinux_2_28_x86_64.whl", (3, 13), (2, 27), False),
    ("torch-2.7.0-cp313-cp313-manylinux_2_28_x86_64.whl", (3, 13), (2, 28), True),
    ("torch-2.7.0-cp313-cp313t-manylinux_2_28_x86_64.whl", (3, 13), (2, 36), False),  # free-threaded build
    ("cryptography-46.0.0-cp311-abi3-manylinux_2_28_x86_64.whl", (3, 13), (2, 36), True),  # stable ABI, newer Python
    ("cryptography-46.0.0-cp311-abi3-manylinux_2_28_x86_64.whl", (3, 10), (2, 36), False),  # stable ABI, older Python
    ("tqdm-4.67.1-py3-none-any.whl", (3, 10), None, True),
    ("soundfile-0.13.1-py2.py3-none-manylinux_2_28_x86_64.whl", (3, 12), (2, 31), True),
    ("pyyaml-6.0.2-cp311-cp311-musllinux_1_1_x86_64.whl", (3, 11), (2, 36), False),
    ("numpy-1.26.4-cp311-cp311-manylinux1_x86_64.whl", (3, 11), (2, 5), True),
    ("numpy-2.3.5-cp313-cp313-macosx_14_0_x86_64.whl", (3, 13), (2, 36), False),
])
def test_a_wheel_fits_by_its_python_abi_and_glibc_tags(filename, python, glibc, fits):
    assert any(wheels.tag_fits(t, wheels.Target(python, glibc)) for t in wheels.wheel_tags(filename)) is fits


def test_the_table_knows_every_pin_of_every_lock():
    """bin/lock refreshes it; a lock changed without a refresh fails here."""
    table = wheels.load()
    for lock in wheels.lock_files():
        for pin in locks.parse_lock(lock).values():
            files = wheels.files_for(pin.name, pin.version, table)
            assert files, f"{locks.display(lock)}: {pin.name}=={pin.version} is not in {wheels.DATA_FILE.name}"
            # Every file's own name says it is that version: the table holds no other release's files.
            assert {wheels.file_version(f) for f in files} == {pin.version}


@pytest.mark.parametrize("python", locks.SUPPORTED_PYTHONS, ids=locks.python_name)
@pytest.mark.parametrize("tier", tiers.TIER_NAMES)
def test_every_tier_lock_has_a_wheel_for_its_python_on_glibc_2_28(tier, python):
    """What the README promises: each lock installs from wheels alone on its CPython with glibc 2.28 or newer
    (torch 2.7's wheels are manylinux_2_28), apart from source-only pure-Python packages."""
    lines = knowledge.read_requirements(locks.lock_path(tier, python))
    found, unknown = knowledge.scan_wheels(lines, wheels.Target(python, (2, 28)))
    assert found == [] and unknown == 0
    below, _ = knowledge.scan_wheels(lines, wheels.Target(python, (2, 27)))
    assert {f.line.requirement.name for f in below if f.blocking} >= {"torch", "torchaudio"}


def tox_pythons() -> list[tuple[int, int]]:
    """The Pythons tox.ini lets the test environments run on (its base_python: the first one found wins)."""
    config = configparser.ConfigParser()
    config.read(ROOT / "tox.ini")
    names = config["testenv"]["base_python"].replace(",", " ").split()
    return [tuple(int(part) for part in name.removeprefix("python").split(".")) for name in names]


@pytest.mark.parametrize("python", tox_pythons(), ids=locks.python_name)
def test_the_dev_lock_installs_from_wheels_on_every_python_tox_may_pick(python):
    """bin/test installs requirements/dev.txt into the test tools and every tox environment, on whichever of
    tox.ini's base_python it finds: the lock must have a wheel for each of them."""
    lines = knowledge.read_requirements(locks.REQUIREMENTS / "dev.txt")
    found, unknown = knowledge.scan_wheels(lines, wheels.Target(python, (2, 28)))
    assert found == [] and unknown == 0


def test_the_3_11_pre_v2_lock_on_3_13_needs_numpy_built_from_source():
    """The case behind requirements/py3.13/pre-v2.txt: numpy 1.26.4 has no CPython 3.13 wheel."""
    lines = knowledge.read_requirements(locks.lock_path("pre-v2", "3.11"))
    found, _ = knowledge.scan_wheels(lines, wheels.Target((3, 13), (2, 36)))
    assert [(str(f.line.requirement), f.blocking) for f in found] == [("numpy==1.26.4", False)]
    assert "its wheels are for CPython 3.9 to 3.12" in found[0].detail and "numpy-1.26.4.tar.gz" in found[0].detail
    assert "requirements/py3.13/" in found[0].fix


def test_markers_are_read_as_the_target_python(tmp_path):
    path = tmp_path / "requirements.txt"
    path.write_text('numpy==1.26.4 ; python_version < "3.13"\nnumpy==2.3.5 ; python_version >= "3.13"\n')
    lines = knowledge.read_requirements(path)
    assert knowledge.scan_wheels(lines, wheels.Target((3, 13), (2, 36)))[0] == []
    assert knowledge.scan_wheels(lines, wheels.Target((3, 12), (2, 36)))[0] == []
    assert [str(f.line.requirement.specifier) for f in knowledge.scan(lines, "pre-v2", (3, 13))] == []
    # numpy 2.4 dies on pre-v2 only where the marker lets it in.
    path.write_text('numpy==2.4.0 ; python_version >= "3.13"\n')
    lines = knowledge.read_requirements(path)
    assert [f.entry.id for f in knowledge.scan(lines, "pre-v2", (3, 13))] == ["numpy-2.4-baseline"]
    assert knowledge.scan(lines, "pre-v2", (3, 12)) == []


def run_scan(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "envcheck", "scan", *args, "--json"], capture_output=True,
                          text=True, cwd=ROOT)


def test_scan_reads_the_python_from_the_locks_folder_and_blocks_what_cannot_install(tmp_path):
    own = json.loads(run_scan("requirements/py3.13/pre-v2.txt", "--tier", "pre-v2", "--glibc", "2.31").stdout)
    assert own["python"] == "3.13" and own["wheels"] == [] and own["ok"] is True
    user = tmp_path / "mine.txt"
    user.write_text("numpy==1.26.4\ntorch==2.7.0\nsome-private-package==1.0\n")
    out = run_scan(str(user), "--tier", "v3", "--python", "3.13", "--glibc", "2.27")
    data = json.loads(out.stdout)
    assert out.returncode == 1 and data["ok"] is False and data["glibc"] == "2.27"
    by_name = {w["requirement"]: w for w in data["wheels"]}
    assert by_name["numpy==1.26.4"]["blocking"] is False  # compiles from source
    assert by_name["torch==2.7.0"]["blocking"] is True and "glibc 2.28 or newer" in by_name["torch==2.7.0"]["detail"]
    assert data["wheels_not_known"] == 1
    bad = subprocess.run([sys.executable, "-m", "envcheck", "scan", str(user), "--tier", "v3", "--glibc", "new"],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "--glibc new is not a version" in bad.stderr


# -- the report row -----------------------------------------------------------------------------------

def venv_with_wheels(tmp_path: Path, tags: dict[str, str]) -> rep.Report:
    """A venv whose interpreter is the one running the tests, with dist-infos carrying these WHEEL tags."""
    venv = tmp_path / "venv"
    site = venv / f"lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages"
    site.mkdir(parents=True)
    (venv / "bin").mkdir()
    (venv / "bin/python").symlink_to(sys.executable)
    (venv / "pyvenv.cfg").write_text(f"version = {sys.version_info[0]}.{sys.version_info[1]}.0\n")
    for dist, tag in tags.items():
        meta = site / f"{dist}.dist-info"
        meta.mkdir()
        (meta / "WHEEL").write_text(f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: {tag}\n")
    return rep.Report(venv, str(venv / "bin/python"), None)


def test_the_report_passes_wheels_built_for_the_running_python_and_names_the_newest_glibc(tmp_path):
    cp = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    report = venv_with_wheels(tmp_path, {"torch-2.7.0": f"{cp}-{cp}-manylinux_2_28_x86_64",
                                         "numpy-2.2.6": f"{cp}-{cp}-manylinux_2_17_x86_64",
                                         "tqdm-4.67.1": "py3-none-any"})
    row = rep.wheels_row(report)
    if wheels.host_glibc() is None or wheels.host_glibc() < (2, 28):
        pytest.skip("this machine's glibc is older than torch's wheels ask for")
    assert row.status == OK, row.detail
    assert "all 3 installed wheels fit" in row.detail and "2.28 (torch 2.7.0)" in row.detail


def test_the_report_fails_wheels_of_another_python_and_says_to_rebuild(tmp_path):
    """A distribution upgrade that changes the Python under a venv leaves wheels of the old one."""
    other = "cp39" if sys.version_info[:2] != (3, 9) else "cp310"
    report = venv_with_wheels(tmp_path, {"numpy-1.26.4": f"{other}-{other}-manylinux_2_17_x86_64",
                                         "tqdm-4.67.1": "py3-none-any"})
    row = rep.wheels_row(report)
    assert row.status == FAILED and "1 installed wheel(s) do not run here: numpy 1.26.4" in row.detail
    assert f"run bin/bootstrap --venv {report.venv}" in row.detail


def test_the_report_fails_a_venv_whose_interpreter_is_gone(tmp_path):
    report = venv_with_wheels(tmp_path, {})
    (report.venv / "bin/python").unlink()
    (report.venv / "bin/python").symlink_to(tmp_path / "removed-python3.11")
    row = rep.wheels_row(report)
    assert row.status != OK and "does not run" in row.detail and "bin/bootstrap --venv" in row.detail


def test_a_damaged_table_is_one_line_naming_the_repair(tmp_path):
    from envcheck.errors import TtsrigError

    for text in ("{not json", '{"files": []}', '[]'):
        bad = tmp_path / "wheel-files.json"
        bad.write_text(text)
        with pytest.raises(TtsrigError, match=r"(cannot read|holds no file table).*git checkout -- envcheck/data/"):
            wheels.load(bad)
