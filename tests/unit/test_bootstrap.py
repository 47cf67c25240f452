"""bin/bootstrap's plan and its failure messages, without installing anything."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from envcheck import bootstrap, locks
from envcheck.errors import TtsrigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def probed(monkeypatch):
    """Pretend the CPU probe said a tier (the real probe has its own tests)."""
    def set_tier(tier, warnings=()):
        cpu = {"tier": tier, "warnings": list(warnings), "model_name": "Test CPU", "microarch": "k10",
               "level": "x86-64", "sources": {"cpuid": {"ok": True}}}
        monkeypatch.setattr(bootstrap, "probe_cpu", lambda venv, python: cpu)
    set_tier("pre-v2")
    return set_tier


def test_dry_run_prints_the_plan_and_changes_nothing(probed, tmp_path, capsys):
    venv = tmp_path / "venv"
    assert bootstrap.main(["--dry-run", "--venv", str(venv)]) == 0
    out = capsys.readouterr().out
    assert "cpu:  Test CPU (k10, x86-64)" in out
    assert "tier: pre-v2" in out
    assert "lock: requirements/pre-v2.txt" in out
    assert "--require-hashes --no-deps -r requirements/pre-v2.txt" in out
    assert "--no-build-isolation -r requirements/nodeps.txt" in out
    assert "bitsandbytes, datasets, pandas, pyarrow, pyarrow-hotfix, torchcodec" in out
    assert "dry run: nothing was changed" in out
    assert not venv.exists()


def test_tier_above_the_probed_one_warns(probed, tmp_path, capsys):
    assert bootstrap.main(["--dry-run", "--tier", "v3", "--venv", str(tmp_path / "v")]) == 0
    out = capsys.readouterr().out
    assert "tier: v3 (probed: pre-v2)" in out
    assert "warning: --tier v3 is above this CPU's tier (pre-v2)" in out
    assert "SIGILL" in out


def test_tier_below_the_probed_one_is_quiet(probed, tmp_path, capsys):
    probed("v3")
    assert bootstrap.main(["--dry-run", "--tier", "pre-v2", "--venv", str(tmp_path / "v")]) == 0
    assert "warning" not in capsys.readouterr().out


def test_hand_edited_lock_is_refused_before_anything_happens(probed, tmp_path, monkeypatch, capsys):
    req = tmp_path / "requirements"
    shutil.copytree(ROOT / "requirements", req)
    lock = req / "pre-v2.txt"
    lock.write_text(lock.read_text().replace("numpy==1.26.4 \\\n", "numpy==1.26.4\n", 1).replace(
        "numpy==1.26.4\n    --hash", "numpy==1.26.4\n#    --hash", 1))
    monkeypatch.setattr(bootstrap, "REQUIREMENTS", req)
    venv = tmp_path / "venv"
    assert bootstrap.main(["--venv", str(venv)]) == 2
    err = capsys.readouterr().err
    assert "numpy==1.26.4 has no --hash" in err and "bin/lock" in err
    assert not venv.exists()


@pytest.mark.parametrize(
    "output, expected",
    [
        ("ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE.\nHash mismatch", "edited by hand"),
        ("error: Failed to fetch: `https://pypi.org/simple/torch/`\n  dns error", "could not be reached"),
        ("OSError: [Errno 28] No space left on device", "the disk is full"),
        ("error: command 'gcc' failed: No such file or directory", "needs a C compiler"),
        ("something nobody has seen", "exit 3"),
    ],
)
def test_installer_failures_become_clear_messages(tmp_path, output, expected):
    plan = bootstrap.Plan("v3", "v3", ROOT / "requirements/v3.txt", ROOT / "requirements/nodeps.txt",
                          tmp_path, sys.executable, "uv", False, "x")
    script = f"import sys; print({output!r}); sys.exit(3)"
    with pytest.raises(TtsrigError, match=expected):
        bootstrap.run([sys.executable, "-c", script], plan, "installing something")


def test_unsupported_python_is_named_with_the_fix(tmp_path):
    fake = tmp_path / "python3.9"
    fake.write_text("#!/bin/sh\necho 'CPython 3 9'\n")
    fake.chmod(0o755)
    with pytest.raises(TtsrigError, match=r"is CPython 3.9; .*CPython 3.11 only.*--python"):
        bootstrap.check_python(str(fake))


def test_python_without_venv_module_is_named_with_the_fix(tmp_path):
    fake = tmp_path / "python3.11"
    fake.write_text("#!/bin/sh\necho 'CPython 3 11'\necho \"ModuleNotFoundError: No module named 'ensurepip'\" >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(TtsrigError, match="no working `venv` module.*python3.11-venv"):
        bootstrap.check_python(str(fake))


def test_missing_python_is_named(tmp_path):
    with pytest.raises(TtsrigError, match="not found.*CPython 3.11"):
        bootstrap.check_python(str(tmp_path / "nope"))


def test_this_python_is_accepted():
    if sys.version_info[:2] != (3, 11):
        pytest.skip("the tests run on 3.11 under tox")
    assert bootstrap.check_python(sys.executable)


def test_never_installs_into_a_python_installation(tmp_path):
    plan = bootstrap.Plan("v3", "v3", Path("x"), Path("y"), Path(sys.base_prefix), sys.executable, "uv", False, "d")
    with pytest.raises(TtsrigError, match="never installs into the system's site-packages"):
        bootstrap.ensure_venv(plan)


def test_refuses_a_folder_that_is_not_a_venv(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    plan = bootstrap.Plan("v3", "v3", Path("x"), Path("y"), tmp_path, sys.executable, "uv", False, "d")
    with pytest.raises(TtsrigError, match="exists and is not a virtual environment"):
        bootstrap.ensure_venv(plan)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_full_disk_is_caught_before_installing(tmp_path, monkeypatch):
    monkeypatch.setattr(bootstrap.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(100, 99, 10**9))
    with pytest.raises(TtsrigError, match=r"only 1.0 GB free.*--venv PATH"):
        bootstrap.check_disk(tmp_path / "venv")


def test_shim_refuses_a_missing_python(tmp_path):
    out = subprocess.run([str(ROOT / "bin/bootstrap"), "--python", str(tmp_path / "nope"), "--dry-run"],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert "ttsrig needs CPython 3.11" in out.stderr


def test_first_run_installs_archspec_before_deciding_the_tier(tmp_path, monkeypatch, capsys):
    """Without a venv the probe cannot read CPUID; the tier is decided again once archspec is there."""
    calls = []
    answers = iter([
        {"tier": "v3", "warnings": ["cpuid view unavailable"], "model_name": "Host", "microarch": "unknown",
         "level": "x86-64-v4", "sources": {"cpuid": {"ok": False}}},
        {"tier": "pre-v2", "warnings": [], "model_name": "Old CPU", "microarch": "k10",
         "level": "x86-64", "sources": {"cpuid": {"ok": True}}},
    ])
    monkeypatch.setattr(bootstrap, "probe_cpu", lambda venv, python: (calls.append("probe"), next(answers))[1])
    monkeypatch.setattr(bootstrap, "check_disk", lambda venv: None)
    monkeypatch.setattr(bootstrap, "ensure_venv", lambda plan: calls.append("venv"))
    monkeypatch.setattr(bootstrap, "ensure_bootstrap_tools", lambda plan: calls.append("archspec"))

    def install(plan, state):
        calls.append(f"install {plan.tier}")
        raise TtsrigError("stop here")

    monkeypatch.setattr(bootstrap, "install", install)
    assert bootstrap.main(["--venv", str(tmp_path / "venv")]) == 2
    assert calls == ["probe", "venv", "archspec", "probe", "install pre-v2"]
    assert "cpuid view unavailable" not in capsys.readouterr().err
