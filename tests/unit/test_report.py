"""The envcheck report on a fake venv: sections, verdicts, explanations, exit status, JSON."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from envcheck import locks, probes
from envcheck import report as rep
from envcheck.errors import TtsrigError
from envcheck.isolated import CRASHED, FAILED, OK, TIMED_OUT, Check

REQ = locks.REQUIREMENTS
ROOT = REQ.parent


def fake_venv(root: Path, tier: str, *, versions: dict[str, str] | None = None, state: bool = True,
              python: str = "3.11.7") -> Path:
    """A venv of `python` whose site-packages has a dist-info for every pin of the tier's lock for that Python
    (or the given versions)."""
    venv = root / "venv"
    minor = ".".join(python.split(".")[:2])
    site = venv / f"lib/python{minor}/site-packages"
    site.mkdir(parents=True)
    (venv / "bin").mkdir()
    (venv / "bin/python").symlink_to(sys.executable)
    home = Path(os.path.realpath(sys.executable)).parent  # so the venv's python finds its own standard library
    (venv / "pyvenv.cfg").write_text(f"home = {home}\nversion = {python}\n")
    (site / "ttsrig.pth").write_text(f"{ROOT}\n")  # what bootstrap's editable install of ttsrig gives
    supported = locks.major_minor(python) in locks.SUPPORTED_PYTHONS
    lock = locks.lock_path(tier, python if supported else "3.11")
    pins = {**locks.parse_lock(lock), **locks.parse_lock(REQ / "nodeps.txt")}
    have = {n: p.version for n, p in pins.items()}
    have.update(versions or {})
    for name, version in have.items():
        if version is None:
            continue
        meta = site / f"{name.replace('-', '_')}-{version}.dist-info"
        meta.mkdir()
        (meta / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n")
    if state:
        (venv / "ttsrig-state.json").write_text(json.dumps(
            {"complete": True, "tier": tier, "lock": locks.display(lock), "installed_at": "today"}))
    return venv


def cpu_is(tier: str):
    def rows(report):
        report.cpu = {"tier": tier, "level": "x", "microarch": "k10", "model_name": "test CPU",
                      "missing_for_next_tier": [], "next_tier": None}
        return [rep.Row("cpu", "cpu tier", OK, tier)]
    return rows


@pytest.fixture
def checks(monkeypatch):
    """Replace the real probes (they need torch) with small programs that end each possible way."""
    imports = [Check("numpy", "import os, signal; os.kill(os.getpid(), signal.SIGILL)", package="numpy"),
               Check("soundfile", "print('0.14.0')")]
    smoke = [Check("float32 CPU matmul", "import os, signal; os.kill(os.getpid(), signal.SIGFPE)", package="torch"),
             Check("tiny F5 DiT forward", "raise ValueError('mel shape (1, 40, 80) does not match')"),
             Check("slow", "import time; time.sleep(30)", timeout=0.5)]
    monkeypatch.setattr(probes, "IMPORTS", imports)
    monkeypatch.setattr(probes, "SMOKE", smoke)
    monkeypatch.setattr(rep, "has_nvidia_driver", lambda: False)


def rows_by_name(report) -> dict[str, rep.Row]:
    return {r.name: r for r in report.rows}


def test_every_outcome_is_named_and_crashes_are_explained(tmp_path, monkeypatch, checks):
    # a v3 venv (numpy 2.4.6) on a pre-v2 CPU
    venv = fake_venv(tmp_path, "v3")
    monkeypatch.setattr(rep, "cpu_rows", cpu_is("pre-v2"))
    report = rep.build(str(venv), checkpoints=tmp_path)
    rows = rows_by_name(report)
    assert not report.ok
    numpy = rows["numpy"]
    assert (numpy.status, numpy.signal) == (CRASHED, "SIGILL")
    assert "numpy 2.4.6 needs tier v2, this CPU is pre-v2" in numpy.detail
    assert f"bin/bootstrap --venv {venv} --tier pre-v2" in numpy.detail
    assert rows["float32 CPU matmul"].signal == "SIGFPE" and "sitecustomize" in rows["float32 CPU matmul"].detail
    assert rows["tiny F5 DiT forward"].status == FAILED
    assert rows["tiny F5 DiT forward"].detail == "ValueError: mel shape (1, 40, 80) does not match"
    assert rows["slow"].status == TIMED_OUT
    assert rows["soundfile"].status == OK
    assert rows["venv tier fits the CPU"].status == FAILED
    assert [r.section for r in report.rows] == sorted((r.section for r in report.rows), key=rep.SECTIONS.index)
    text = rep.render(report)
    for title in ("CPU and tier", "Python and venv", "Lock conformance", "Patches", "Import probes",
                  "Smoke checks", "GPU", "Disk"):
        assert title in text
    assert "CRASHED" in text and "TIMED OUT" in text


def test_json_has_ok_and_checks_with_name_status_detail(tmp_path, monkeypatch, checks):
    venv = fake_venv(tmp_path, "pre-v2")
    monkeypatch.setattr(rep, "cpu_rows", cpu_is("pre-v2"))
    data = json.loads(json.dumps(rep.build(str(venv), checkpoints=tmp_path).to_json()))
    assert data["ok"] is False and data["tier"] == "pre-v2"
    for check in data["checks"]:
        assert {"name", "status", "detail"} <= set(check)
        assert check["status"] in (OK, CRASHED, FAILED, TIMED_OUT)


def test_a_conforming_venv_passes_the_static_sections(tmp_path, monkeypatch):
    venv = fake_venv(tmp_path, "pre-v2")
    report = rep.Report(venv, str(venv / "bin/python"), None, cpu={"tier": "pre-v2"})
    state = json.loads((venv / "ttsrig-state.json").read_text())
    rows = rep.venv_rows(report, state) + rep.lock_rows(report, state)
    assert all(r.status == OK for r in rows), rows


@pytest.mark.parametrize("python", ["3.10.12", "3.12.3", "3.13.5"])
def test_a_venv_of_any_supported_python_is_compared_with_its_own_lock(tmp_path, python):
    venv = fake_venv(tmp_path, "pre-v2", python=python)
    report = rep.Report(venv, str(venv / "bin/python"), None, cpu={"tier": "pre-v2"})
    state = json.loads((venv / "ttsrig-state.json").read_text())
    rows = {r.name: r for r in rep.venv_rows(report, state) + rep.lock_rows(report, state)}
    assert all(r.status == OK for r in rows.values()), rows
    assert rows["python"].detail == f"CPython {python} in {venv}"
    minor = ".".join(python.split(".")[:2])
    assert f"equal requirements/py{minor}/pre-v2.txt + nodeps.txt" in rows["versions equal the lock"].detail
    # The 3.11 lock's numpy would be wrong on 3.13: the comparison really follows the venv's Python.
    if minor == "3.13":
        assert "numpy" not in rows["versions equal the lock"].detail
        drifted = fake_venv(tmp_path / "other", "pre-v2", python=python, versions={"numpy": "1.26.4"})
        report = rep.Report(drifted, str(drifted / "bin/python"), None, cpu={"tier": "pre-v2"})
        drift = {r.name: r for r in rep.lock_rows(report, state)}["versions equal the lock"]
        assert drift.status == FAILED and "numpy 1.26.4 (lock 2.3.5)" in drift.detail


def test_an_unsupported_python_or_one_its_lock_does_not_name_is_failed(tmp_path):
    venv = fake_venv(tmp_path, "v3", python="3.9.18")
    report = rep.Report(venv, str(venv / "bin/python"), None, cpu={"tier": "v3"})
    state = json.loads((venv / "ttsrig-state.json").read_text())
    python = rep.venv_rows(report, state)[0]
    assert python.status == FAILED and "ttsrig's locks are for CPython 3.10 to 3.13" in python.detail
    assert "bin/bootstrap --venv NEW --python python3.X" in python.detail
    [lock] = rep.lock_rows(report, state)
    assert lock.status == FAILED and "no locks for Python 3.9" in lock.detail
    # A 3.12 venv whose record names the 3.11 lock: something changed the venv after bootstrap.
    other = fake_venv(tmp_path / "other", "v3", python="3.12.3")
    report = rep.Report(other, str(other / "bin/python"), None, cpu={"tier": "v3"})
    python = rep.venv_rows(report, {**state, "lock": "requirements/py3.11/v3.txt"})[0]
    assert python.status == FAILED and "a lock for CPython 3.11" in python.detail
    # A record from before the Python folders (requirements/v3.txt, always 3.11) is not called a mismatch.
    assert rep.venv_rows(report, {**state, "lock": "requirements/v3.txt"})[0].status == OK


def test_lock_drift_forbidden_and_extra_packages(tmp_path):
    venv = fake_venv(tmp_path, "pre-v2", versions={"numpy": "2.4.6", "munch": None, "pyarrow": "26.0.1",
                                                    "leftover-tool": "1.0"})
    report = rep.Report(venv, str(venv / "bin/python"), None, cpu={"tier": "pre-v2"})
    rows = {r.name: r for r in rep.lock_rows(report, {"tier": "pre-v2"})}
    drift = rows["versions equal the lock"]
    assert drift.status == FAILED and "numpy 2.4.6 (lock 1.26.4)" in drift.detail and "munch missing" in drift.detail
    assert "bin/bootstrap" in drift.detail
    forbidden = rows["forbidden packages absent"]
    assert forbidden.status == FAILED and "pyarrow: SIGILL at import" in forbidden.detail
    extra = rows["extra packages"]
    assert extra.status == OK and not extra.needed and "leftover-tool 1.0" in extra.detail


def test_venv_not_built_by_bootstrap_or_interrupted(tmp_path):
    venv = fake_venv(tmp_path, "v3", state=False)
    report = rep.Report(venv, str(venv / "bin/python"), None, cpu={"tier": "v3"})
    [python, built] = rep.venv_rows(report, {})
    assert python.status == OK and built.status == FAILED and "bin/bootstrap --venv" in built.detail
    rows = rep.venv_rows(report, {"complete": False, "tier": "v3"})
    assert rows[1].status == FAILED and "interrupted" in rows[1].detail


def test_lower_tier_venv_on_a_higher_cpu_is_fine(tmp_path):
    venv = fake_venv(tmp_path, "pre-v2")
    report = rep.Report(venv, str(venv / "bin/python"), None, cpu={"tier": "v3"})
    fits = rep.venv_rows(report, {"complete": True, "tier": "pre-v2"})[-1]
    assert fits.status == OK and "below the CPU's v3" in fits.detail


def test_no_venv_says_how_to_make_one(tmp_path):
    with pytest.raises(TtsrigError, match="bin/bootstrap"):
        rep.resolve_venv(str(tmp_path / "nothing"))


def test_emulation_without_qemu_says_how_to_install_it(tmp_path, monkeypatch):
    venv = fake_venv(tmp_path, "v3")
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(TtsrigError, match="apt-get install qemu-user"):
        rep.build(str(venv), emulate="phenom")


def test_too_little_disk_for_a_checkpoint(tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(100e9, 98e9, 2e9))
    [row] = rep.disk_rows(tmp_path / "runs" / "new")
    assert row.status == FAILED and "2.0 GB free" in row.detail and "--checkpoints" in row.detail


def test_gpu_checks_run_only_with_a_driver(tmp_path, monkeypatch, checks):
    venv = fake_venv(tmp_path, "v3")
    monkeypatch.setattr(rep, "cpu_rows", cpu_is("v3"))
    monkeypatch.setattr(probes, "GPU", [Check("CUDA device", "raise SystemExit('torch sees no CUDA device')")])
    without = rows_by_name(rep.build(str(venv), checkpoints=tmp_path, only=["soundfile"]))
    assert without["CUDA device"].status == OK and not without["CUDA device"].needed
    monkeypatch.setattr(rep, "has_nvidia_driver", lambda: True)
    with_driver = rows_by_name(rep.build(str(venv), checkpoints=tmp_path, only=["soundfile", "CUDA device"]))
    assert with_driver["CUDA device"].status == FAILED and with_driver["CUDA device"].needed
    assert "no CUDA device" in with_driver["CUDA device"].detail


def test_sigfpe_mentions_a_switched_off_patch(tmp_path, monkeypatch, checks):
    venv = fake_venv(tmp_path, "pre-v2")
    monkeypatch.setattr(rep, "cpu_rows", cpu_is("pre-v2"))
    monkeypatch.setenv("TTSRIG_SITE", "0")
    rows = rows_by_name(rep.build(str(venv), checkpoints=tmp_path, only=["float32 CPU matmul"]))
    assert "TTSRIG_SITE=0 in this environment switches it off" in rows["float32 CPU matmul"].detail


FAKE_CPUID = """class CpuidInfoCollector:
    # archspec's CPUID reader, standing in for the CPU the venv runs on (under --emulate: qemu's)
    vendor = "GenuineIntel"
    features = {features!r}

    def brand_string(self):
        return "stand-in CPU"
"""


def venv_cpu(venv: Path, features: set[str]) -> None:
    detect = rep.site_packages(venv) / "archspec/cpu/detect.py"
    detect.parent.mkdir(parents=True, exist_ok=True)
    for package in (detect.parent.parent, detect.parent):
        (package / "__init__.py").write_text("")
    detect.write_text(FAKE_CPUID.format(features=features))


def test_the_patch_section_says_nnpack_is_off_and_why(tmp_path, monkeypatch):
    from envcheck import probe
    from patches import sitecustomize
    from patches.target import Env

    venv = fake_venv(tmp_path, "v2")
    sitecustomize.apply(Env(venv, rep.site_packages(venv)), "v2")
    monkeypatch.setattr(probe, "cpu_has_avx2", lambda: True)  # the machine running envcheck: not asked
    monkeypatch.setattr(sitecustomize, "cpu_has_avx2", lambda: True)
    for avx2, said in ((False, "NNPACK off: this CPU lacks AVX2, which NNPACK needs"),
                       (True, "NNPACK left on: this CPU has AVX2")):
        venv_cpu(venv, {"sse4_2", "avx2"} if avx2 else {"sse4_2"})
        report = rep.Report(venv, str(venv / "bin/python"), None, cpu={"tier": "v2", "avx2": avx2})
        row = {r.name: r for r in rep.patch_rows(report)}["sitecustomize"]
        assert row.status == OK and said in row.detail, row.detail


def test_the_patch_section_is_what_the_venvs_own_code_says(tmp_path, monkeypatch):
    # The venv's ttsrig is another checkout whose patches tool says something this checkout's never would.
    other = tmp_path / "other-checkout"
    (other / "patches").mkdir(parents=True)
    (other / "patches/__main__.py").write_text(
        "import json\nprint(json.dumps({'patches': [{'name': 'dynamo', 'state': 'stale', 'ok': False,\n"
        "    'detail': 'from the other checkout'}]}))\nraise SystemExit(1)\n")
    venv = fake_venv(tmp_path, "v3")
    (rep.site_packages(venv) / "ttsrig.pth").write_text(f"{other}\n")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # envcheck's own environment does not choose the code
    monkeypatch.chdir(ROOT)
    report = rep.Report(venv, str(venv / "bin/python"), None, cpu={"tier": "v3"})
    [row] = rep.patch_rows(report)
    assert (row.name, row.status) == ("dynamo", FAILED) and row.detail.startswith("stale: from the other checkout")
    assert report.patches == {"dynamo": "stale"}


def test_a_venv_that_cannot_answer_is_one_row_naming_the_way_back(tmp_path):
    venv = fake_venv(tmp_path, "v3")
    (rep.site_packages(venv) / "ttsrig.pth").unlink()  # ttsrig is not installed in it
    report = rep.Report(venv, str(venv / "bin/python"), None, cpu={"tier": "v3"})
    [row] = rep.patch_rows(report)
    assert row.status == FAILED and "No module named patches" in row.detail
    assert f"bin/bootstrap --venv {venv}" in row.detail


def test_the_cpu_probe_reports_avx2(tmp_path):
    # This interpreter runs the probe (no archspec here): the kernel's flags decide.
    report = rep.Report(fake_venv(tmp_path, "v3"), sys.executable, None)
    [row] = rep.cpu_rows(report)
    assert row.status == OK, row.detail
    flags = Path("/proc/cpuinfo").read_text().split("\nflags", 1)[1].split("\n", 1)[0].split()
    assert report.cpu["avx2"] is ("avx2" in flags)
