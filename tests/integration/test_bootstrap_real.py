"""bin/bootstrap for real: the host tier's lock into a venv, then re-runs."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from envcheck import locks
from envcheck.venv import site_packages

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration

IMPORTS = ("import torch, torchaudio, numpy, transformers, soundfile, monotonic_align, archspec, "
           "phonemizer, espeakng_loader, x_transformers, vocos, torchdiffeq, safetensors, envcheck; "
           "from styletts2 import models, losses; print(torch.__version__, numpy.__version__)")


def state(venv):
    return json.loads((venv / "ttsrig-state.json").read_text())


def tier_lock(tier: str) -> Path:
    """The lock conftest's bootstrap (--python this interpreter) installs for `tier`."""
    return locks.lock_path(tier, sys.version_info[:2])


def test_the_venv_matches_the_lock(host_venv, host_tier):
    pins = {**locks.parse_lock(tier_lock(host_tier)),
            **locks.parse_lock(ROOT / "requirements/nodeps.txt")}
    have = locks.installed(site_packages(host_venv))
    result = locks.conformance(pins, have, [], {"pip", "ttsrig"})
    assert result.ok, result
    assert state(host_venv)["complete"] is True
    assert state(host_venv)["tier"] == host_tier


def test_the_stack_imports_and_computes(host_venv, host_tier):
    out = subprocess.run([str(host_venv / "bin/python"), "-c", IMPORTS], capture_output=True, text=True,
                         cwd="/tmp")
    assert out.returncode == 0, out.stderr[-3000:]
    torch_pin = locks.parse_lock(tier_lock(host_tier))["torch"].version
    assert out.stdout.startswith(torch_pin)


def test_compile_all_leaves_every_installed_module_compiled(host_venv):
    # The test venvs are built with --compile all (conftest): under PYTHONDONTWRITEBYTECODE, without .pyc files
    # every import would recompile torch and f5_tts, twice as slow and far worse emulated.
    site = site_packages(host_venv)
    tag = site.parent.name.replace("python", "cpython-").replace(".", "")  # lib/python3.12 -> cpython-312
    for module in ("torch/__init__.py", "f5_tts/model/cfm.py", "transformers/__init__.py"):
        source = site / module
        cached = list((source.parent / "__pycache__").glob(f"{source.stem}.{tag}*.pyc"))
        assert cached, f"no bytecode for {module}"


def test_envcheck_entry_point_exists_after_bootstrap(host_venv, host_tier):
    out = subprocess.run([str(host_venv / "bin/envcheck"), "probe", "--json"], capture_output=True, text=True,
                         cwd="/tmp")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["tier"] == host_tier


def test_monotonic_align_was_built_against_the_pinned_numpy(host_venv):
    code = ("import numpy, torch; from monotonic_align import maximum_path; "
            "p = maximum_path(torch.randn(1, 5, 3), torch.ones(1, 5, 3)); print(int(p.sum()), numpy.__version__)")
    out = subprocess.run([str(host_venv / "bin/python"), "-c", code], capture_output=True, text=True, cwd="/tmp")
    assert out.returncode == 0, out.stderr[-2000:]
    # Layout [batch, mel frames, text]: every one of the 5 frames is aligned to exactly one token.
    assert out.stdout.split()[0] == "5"


def test_rerun_on_a_complete_environment_changes_nothing(host_venv, run_bootstrap):
    before = (host_venv / "ttsrig-state.json").read_bytes()
    out = run_bootstrap("--venv", str(host_venv))
    assert "changes:   nothing changed" in out.stdout
    assert "versions:  all equal the lock" in out.stdout
    assert (host_venv / "ttsrig-state.json").read_bytes() == before


def test_an_interrupted_install_is_completed_by_the_next_run(host_venv, run_bootstrap):
    # What a kill half-way leaves: the state says "installing" and a package is missing.
    st = state(host_venv)
    (host_venv / "ttsrig-state.json").write_text(json.dumps({**st, "complete": False, "installing": "x"}))
    subprocess.run([str(host_venv / "bin/uv"), "pip", "uninstall", "--python", str(host_venv / "bin/python"),
                    "munch"], check=True, capture_output=True)
    out = run_bootstrap("--venv", str(host_venv))
    assert "continuing an installation that did not finish" in out.stderr
    assert "versions:  all equal the lock" in out.stdout
    assert "munch" in locks.installed(site_packages(host_venv))
    assert state(host_venv)["complete"] is True


def test_a_changed_lock_is_applied_and_what_it_dropped_is_removed(host_venv, run_bootstrap):
    # An earlier lock that also held iniconfig: the current one dropped it, so the re-run removes it.
    subprocess.run([str(host_venv / "bin/uv"), "pip", "install", "--python", str(host_venv / "bin/python"),
                    "--no-deps", "iniconfig==2.0.0"], check=True, capture_output=True)
    st = state(host_venv)
    (host_venv / "ttsrig-state.json").write_text(json.dumps(
        {**st, "lock_digest": "an-older-lock", "packages": st["packages"] + ["iniconfig"]}))
    out = run_bootstrap("--venv", str(host_venv))
    assert "the lock changed since the last run; applying it" in out.stderr
    assert "removed iniconfig" in out.stdout
    assert "iniconfig" not in locks.installed(site_packages(host_venv))
    assert state(host_venv)["lock_digest"] != "an-older-lock"


def test_removing_a_dropped_package_removes_only_its_files_in_the_venv(host_venv, tmp_path):
    """bootstrap removes what an older lock installed by name; the installer deletes only what the
    package's RECORD lists inside the venv, so a RECORD that points out of it costs the user nothing."""
    import sys

    from envcheck import bootstrap_install, bootstrap_plan

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (venv / "bin/uv").symlink_to(host_venv / "bin/uv")  # the host venv's uv, only read
    site = site_packages(venv)
    outside = tmp_path / "home"
    outside.mkdir()
    (outside / "thesis.tex").write_text("mine")
    meta = site / "oldpkg-1.0.dist-info"
    meta.mkdir()
    (site / "oldpkg.py").write_text("")
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: oldpkg\nVersion: 1.0\n\n")
    (meta / "INSTALLER").write_text("uv\n")
    (meta / "RECORD").write_text("oldpkg.py,,\noldpkg-1.0.dist-info/METADATA,,\noldpkg-1.0.dist-info/RECORD,,\n"
                                 "oldpkg-1.0.dist-info/INSTALLER,,\n../../../../home/thesis.tex,,\n"
                                 f"{outside / 'thesis.tex'},,\n")
    plan = bootstrap_plan.Plan("v3", "v3", tier_lock("v3"), ROOT / "requirements/nodeps.txt", venv,
                               sys.executable, "uv", False, "d", pins=locks.parse_lock(tier_lock("v3")))
    remove = bootstrap_install.packages_to_remove(plan, ["oldpkg", "pip", "uv"], locks.installed(site))
    assert remove == ["oldpkg"]
    bootstrap_install.run(bootstrap_install.uninstall_cmd(plan, remove), plan, "removing oldpkg")
    assert "oldpkg" not in locks.installed(site) and not (site / "oldpkg.py").exists()
    assert (outside / "thesis.tex").read_text() == "mine"
