"""bin/bootstrap's plan and its failure messages, without installing anything."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from envcheck import (bootstrap, bootstrap_common, bootstrap_install, bootstrap_plan, bootstrap_python,
                      bootstrap_summary, bootstrap_venv, bootstrap_wheels, locks)
from envcheck.errors import TtsrigError

ROOT = Path(__file__).resolve().parents[2]
PY = f"{sys.version_info[0]}.{sys.version_info[1]}"  # the Python these tests run on, the only one on their PATH


def lock(tier: str, python: str = PY) -> str:
    """The lock bootstrap picks for tier and Python, as it names it (relative to the checkout)."""
    return f"requirements/py{python}/{tier}.txt"


@pytest.fixture(autouse=True)
def own_wheel_cache(tmp_path, monkeypatch):
    """The user's wheel cache and wheelhouse setting stay out of these tests."""
    monkeypatch.setenv(bootstrap_wheels.WHEEL_CACHE_ENV, str(tmp_path / "wheel-cache"))
    monkeypatch.delenv(bootstrap_wheels.WHEELHOUSE_ENV, raising=False)
    monkeypatch.setenv("TTSRIG_PYTHON_DIR", str(tmp_path / "managed-python"))  # --python-install's folder


@pytest.fixture(autouse=True)
def only_this_python_on_path(tmp_path_factory, monkeypatch):
    """PATH holds git and this Python as python3.X only, so that the Pythons of the machine running the tests
    do not decide which one bootstrap picks. Tests that need others put fakes on PATH themselves."""
    folder = tmp_path_factory.mktemp("path")
    (folder / f"python{PY}").symlink_to(os.path.realpath(sys.executable))
    if shutil.which("git"):
        (folder / "git").symlink_to(shutil.which("git"))
    monkeypatch.setenv("PATH", str(folder))
    return folder


@pytest.fixture(autouse=True)
def no_gpu(monkeypatch):
    """The plans here are the CPU's: no GPU, whatever card the machine running the tests has."""
    monkeypatch.setattr(bootstrap, "probe_gpu", lambda: bootstrap.gpu.GpuView())


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
    assert f"python: CPython {'.'.join(map(str, sys.version_info[:3]))}" in out
    assert f"lock: {lock('pre-v2')}" in out
    assert f"--require-hashes --no-deps -r {lock('pre-v2')}" in out
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
    lock = req / f"py{PY}/pre-v2.txt"
    lock.write_text(lock.read_text().replace("numpy==1.26.4 \\\n", "numpy==1.26.4\n", 1).replace(
        "numpy==1.26.4\n    --hash", "numpy==1.26.4\n#    --hash", 1))
    monkeypatch.setattr(bootstrap_common, "REQUIREMENTS", req)
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
    plan = bootstrap_plan.Plan("v3", "v3", ROOT / lock("v3"), ROOT / "requirements/nodeps.txt",
                          tmp_path, sys.executable, "uv", False, "x")
    script = f"import sys; print({output!r}); sys.exit(3)"
    with pytest.raises(TtsrigError, match=expected):
        bootstrap_install.run([sys.executable, "-c", script], plan, "installing something")


@pytest.mark.parametrize("version", ["3 9", "3 9 18", "3 14 0", "3 8 10"])
def test_unsupported_python_is_named_with_the_fix(tmp_path, version):
    fake = tmp_path / "python3"
    fake.write_text(f"#!/bin/sh\necho 'CPython {version}'\n")
    fake.chmod(0o755)
    with pytest.raises(TtsrigError) as caught:
        bootstrap_python.check_python(str(fake))
    message = str(caught.value)
    assert f"is CPython {version.replace(' ', '.')}; ttsrig's locks are for CPython 3.10 to 3.13. Pass --python" in message
    assert "sudo apt-get install python3 python3-venv" in message and "\n" not in message


@pytest.mark.parametrize("minor", ["3.11", "3.13"])
def test_python_without_venv_module_is_named_with_the_fix(tmp_path, minor):
    fake = tmp_path / f"python{minor}"
    fake.write_text(f"#!/bin/sh\necho 'CPython {minor.replace('.', ' ')} 2'\n"
                    "echo \"ModuleNotFoundError: No module named 'ensurepip'\" >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(TtsrigError, match=f"no working `venv` module.*python{minor}-venv"):
        bootstrap_python.check_python(str(fake))


def test_missing_python_is_named(tmp_path):
    with pytest.raises(TtsrigError, match="not found.*CPython 3.10 to 3.13"):
        bootstrap_python.check_python(str(tmp_path / "nope"))


def test_this_python_is_accepted():
    if sys.version_info[:2] not in locks.SUPPORTED_PYTHONS:
        pytest.skip("the tests run on a supported Python under tox")
    found = bootstrap_python.check_python(sys.executable)
    assert found.version == tuple(sys.version_info[:3]) and found.has_venv and found.supported


def test_never_installs_into_a_python_installation(tmp_path):
    plan = bootstrap_plan.Plan("v3", "v3", Path("x"), Path("y"), Path(sys.base_prefix), sys.executable, "uv", False,
                               "d")
    with pytest.raises(TtsrigError, match="never installs into the system's site-packages"):
        bootstrap_venv.ensure_venv(plan)


def test_refuses_a_folder_that_is_not_a_venv(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    plan = bootstrap_plan.Plan("v3", "v3", Path("x"), Path("y"), tmp_path, sys.executable, "uv", False, "d")
    with pytest.raises(TtsrigError, match="exists and is not a virtual environment"):
        bootstrap_venv.ensure_venv(plan)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_full_disk_is_caught_before_installing(tmp_path, monkeypatch):
    monkeypatch.setattr(bootstrap_venv.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(100, 99, 10**9))
    with pytest.raises(TtsrigError, match=r"only 1.0 GB free.*--venv PATH"):
        bootstrap_venv.check_disk(tmp_path / "venv")


def test_shim_refuses_a_missing_python(tmp_path):
    out = subprocess.run([str(ROOT / "bin/bootstrap"), "--python", str(tmp_path / "nope"), "--dry-run"],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert "not found. ttsrig builds its venv with CPython 3.10 to 3.13" in out.stderr


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
    monkeypatch.setattr(bootstrap_venv, "check_disk", lambda venv: None)
    monkeypatch.setattr(bootstrap_venv, "ensure_venv", lambda plan: calls.append("venv"))
    monkeypatch.setattr(bootstrap_install, "ensure_bootstrap_tools", lambda plan: calls.append("archspec"))

    def install(plan, state):
        calls.append(f"install {plan.tier}")
        raise TtsrigError("stop here")

    monkeypatch.setattr(bootstrap_install, "install", install)
    assert bootstrap.main(["--venv", str(tmp_path / "venv")]) == 2
    assert calls == ["probe", "venv", "archspec", "probe", "install pre-v2"]
    assert "cpuid view unavailable" not in capsys.readouterr().err


# --- bootstrap deletes only what it made --------------------------------------

FAKE_VENV_PYTHON = """#!/bin/sh
# A stand-in for CPython 3.11: answers check_python, and `-m venv DIR` lays out a venv's skeleton.
# It records whether bootstrap's state record was already in DIR when the venv was made.
# bootstrap runs `-m venv DIR` as -c code that runs the module venv (envcheck.python_command): read as -m.
case "${2-}" in *"run_module('venv'"*) set -- -m venv "$3" ;; esac
if [ "$1" = "-c" ]; then echo 'CPython 3 11'; exit 0; fi
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
    [ -f "$3/ttsrig-state.json" ] && echo yes >"$3/.record-came-first"
    mkdir -p "$3/bin" "$3/lib/python3.11/site-packages"
    echo "home = /nowhere" >"$3/pyvenv.cfg"
    exit ${FAKE_VENV_EXIT:-0}
fi
exit 3
"""


@pytest.fixture
def fake_python(tmp_path):
    path = tmp_path / "fake-python3.11"
    path.write_text(FAKE_VENV_PYTHON)
    path.chmod(0o755)
    return str(path)


def plan_for(venv: Path, python: str = sys.executable, **extra) -> bootstrap_plan.Plan:
    return bootstrap_plan.Plan("v3", "v3", ROOT / lock("v3"), ROOT / "requirements/nodeps.txt", venv, python,
                          "uv", False, "d", **extra)


def user_files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def no_installs(monkeypatch):
    """Nothing may reach an installer in these tests: record the step and stop there."""
    calls = []

    def stop(cmd, plan, what, *rest):
        calls.append(what)
        raise TtsrigError(f"stopped before: {what}")

    monkeypatch.setattr(bootstrap_install, "run", stop)
    return calls


def test_a_stray_pyvenv_cfg_beside_user_files_is_refused_and_nothing_is_lost(tmp_path, fake_python, no_installs):
    folder = tmp_path / "project"
    (folder / "lib").mkdir(parents=True)
    (folder / "pyvenv.cfg").write_text("home = /usr/bin\n")  # left by someone's `python -m venv .` long ago
    (folder / "thesis.tex").write_text("four years of work")
    (folder / "lib" / "data.csv").write_text("1,2,3")
    before = user_files(folder)
    with pytest.raises(TtsrigError) as caught:
        bootstrap_venv.ensure_venv(plan_for(folder, fake_python))
    message = str(caught.value)
    assert "\n" not in message
    assert str(folder) in message and "did not make" in message
    assert "Choose another --venv" in message and "remove" in message
    assert user_files(folder) == before
    assert not no_installs


def test_main_refuses_a_folder_it_did_not_make_in_one_line(probed, tmp_path, fake_python, no_installs, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (folder / "notes.txt").write_text("mine")
    assert bootstrap.main(["--venv", str(folder), "--python", fake_python]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("bootstrap: ") and str(folder) in err
    assert user_files(folder) == {"pyvenv.cfg": "home = /usr/bin\n", "notes.txt": "mine"}
    # --dry-run says so too, before anything would change.
    assert bootstrap.main(["--dry-run", "--venv", str(folder), "--python", fake_python]) == 2
    assert "did not make" in capsys.readouterr().err


def test_an_empty_folder_may_be_used_and_the_record_comes_before_the_venv(tmp_path, fake_python):
    folder = tmp_path / "empty"
    folder.mkdir()
    bootstrap_venv.ensure_venv(plan_for(folder, fake_python))
    assert (folder / "pyvenv.cfg").is_file()
    # The record was written first: a run killed while the venv is made leaves a folder the next run owns.
    assert (folder / ".record-came-first").read_text() == "yes\n"
    assert json.loads((folder / bootstrap_venv.STATE_NAME).read_text())["made_by"] == "bin/bootstrap"


@pytest.mark.parametrize("damage", ["only the record is left", "lib removed", "python not runnable",
                                    "pyvenv.cfg removed"])
def test_a_venv_bootstrap_made_with_a_broken_tree_is_rebuilt_keeping_other_files(tmp_path, fake_python, damage):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "lib/python3.11/site-packages/torch").mkdir(parents=True)
    (venv / "lib/python3.11/site-packages/torch/__init__.py").write_text("")
    (venv / "pyvenv.cfg").write_text("home = /gone\n")
    (venv / "bin/python").write_text("not a program")  # the base Python was removed: it no longer runs
    (venv / "ttsrig-patches.json").write_text("{}")
    (venv / bootstrap_venv.STATE_NAME).write_text(json.dumps({"complete": True, "tier": "v3", "packages": ["torch"]}))
    (venv / "my-notes.txt").write_text("kept")
    if damage == "only the record is left":
        for entry in ("bin", "lib", "pyvenv.cfg", "ttsrig-patches.json"):
            shutil.rmtree(venv / entry) if (venv / entry).is_dir() else (venv / entry).unlink()
    elif damage == "lib removed":
        (venv / "bin/python").unlink()
        (venv / "bin/python").symlink_to(sys.executable)
        shutil.rmtree(venv / "lib")
    elif damage == "pyvenv.cfg removed":
        (venv / "pyvenv.cfg").unlink()
    bootstrap_venv.ensure_venv(plan_for(venv, fake_python))
    assert (venv / "pyvenv.cfg").read_text() == "home = /nowhere\n"  # made again
    assert not (venv / "lib/python3.11/site-packages/torch").exists()
    assert not (venv / "ttsrig-patches.json").exists()  # the patch record of the old torch went with it
    assert (venv / "my-notes.txt").read_text() == "kept"  # not bootstrap's: left alone
    assert json.loads((venv / bootstrap_venv.STATE_NAME).read_text())["complete"] is False


def test_a_state_file_without_its_tree_is_rebuilt_by_main(probed, tmp_path, fake_python, no_installs, capsys):
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / bootstrap_venv.STATE_NAME).write_text(json.dumps({"complete": True, "tier": "pre-v2", "lock_digest": "x"}))
    assert bootstrap.main(["--venv", str(venv), "--python", fake_python]) == 2  # stopped at the first install
    err = capsys.readouterr().err
    assert "rebuilding it" in err and "Traceback" not in err
    assert (venv / "pyvenv.cfg").is_file()
    assert no_installs[0].startswith("downloading the installer's wheels")  # the first install step, stopped


def test_a_venv_made_by_bootstrap_with_a_working_python_is_kept(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (venv / bootstrap_venv.STATE_NAME).write_text("{}")
    marker = venv / f"lib/python{PY}/site-packages/marker.txt"
    marker.write_text("x")
    pip = venv / f"lib/python{PY}/site-packages/pip"
    pip.mkdir()
    (pip / "__init__.py").write_text("")
    bootstrap_venv.ensure_venv(plan_for(venv))
    assert marker.exists()
    # The check is for the plan's Python, not for 3.11: the same venv does not pass as another Python's.
    other = "3.13.0" if PY != "3.13" else "3.12.0"
    assert bootstrap_venv.venv_tree_ok(plan_for(venv))
    assert not bootstrap_venv.venv_tree_ok(plan_for(venv, python_version=other))


def test_a_killed_venv_creation_is_one_line_and_the_next_run_finishes_it(tmp_path, fake_python, monkeypatch):
    venv = tmp_path / "venv"
    monkeypatch.setenv("FAKE_VENV_EXIT", "1")
    with pytest.raises(TtsrigError, match=r"creating the venv .* failed.*re-run bin/bootstrap"):
        bootstrap_venv.ensure_venv(plan_for(venv, fake_python))
    assert (venv / bootstrap_venv.STATE_NAME).is_file()  # still bootstrap's folder
    monkeypatch.setenv("FAKE_VENV_EXIT", "0")
    bootstrap_venv.ensure_venv(plan_for(venv, fake_python))
    assert (venv / "pyvenv.cfg").is_file()


def test_venv_naming_a_file_is_one_line(probed, tmp_path, fake_python, no_installs, capsys):
    file = tmp_path / "notes.txt"
    file.write_text("mine")
    assert bootstrap.main(["--venv", str(file), "--python", fake_python]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"bootstrap: --venv {file} names a file, not a folder. Choose another --venv (a new or empty folder)."
    assert file.read_text() == "mine"
    assert bootstrap.main(["--venv", str(file / "venv"), "--python", fake_python]) == 2
    assert f"{file} is a file, not a folder" in capsys.readouterr().err


def test_home_the_root_and_the_checkout_are_never_a_venv_even_with_a_record(tmp_path, fake_python, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    (home / "pyvenv.cfg").write_text("home = /gone\n")  # `python -m venv ~` once, and a record in it
    (home / bootstrap_venv.STATE_NAME).write_text("{}")
    (home / "photos.txt").write_text("irreplaceable")
    for venv, what in ((home, "your home folder"), (Path("/"), "the root folder"), (ROOT, "the ttsrig checkout"),
                       (ROOT.parent, "a folder above the ttsrig checkout")):
        with pytest.raises(TtsrigError, match=f"is {what}; .*Choose another --venv"):
            bootstrap_venv.ensure_venv(plan_for(venv, fake_python))
    assert (home / "photos.txt").read_text() == "irreplaceable"


def test_a_symlink_is_judged_where_it_points(probed, tmp_path, fake_python, no_installs, capsys, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / "photos.txt").write_text("irreplaceable")
    monkeypatch.setenv("HOME", str(home))
    link = tmp_path / "venv-link"
    link.symlink_to(home)
    assert bootstrap.main(["--venv", str(link), "--python", fake_python]) == 2
    assert "is your home folder" in capsys.readouterr().err
    # A link to a place that does not exist yet is built there.
    target = tmp_path / "disk2" / "venv"
    target.parent.mkdir()
    link.unlink()
    link.symlink_to(target)
    bootstrap_venv.ensure_venv(plan_for(bootstrap_venv.resolve_venv(str(link)), fake_python))
    assert (target / "pyvenv.cfg").is_file() and link.is_symlink()


def test_removal_takes_only_installed_packages_and_never_bootstraps_own_tools(tmp_path):
    plan = plan_for(tmp_path, pins=locks.parse_lock(ROOT / lock("pre-v2")))
    plan.tier = "pre-v2"
    have = {"pip": "26", "setuptools": "84", "uv": "0.13.9", "archspec": "0.2.7", "ttsrig": "0.1.0",
            "iniconfig": "2.0.0", "pandas": "3.0", "torch": "2.7.0"}
    # A state record (hand-edited, or from a broken run) that names the tools themselves.
    previous = ["pip", "setuptools", "uv", "archspec", "ttsrig", "iniconfig", "not-installed", "torch", 7]
    assert bootstrap_install.packages_to_remove(plan, previous, have) == ["iniconfig", "pandas"]
    assert bootstrap_install.packages_to_remove(plan, "garbage", have) == ["pandas"]


# --- --offline into a new venv, the wheel cache and the wheelhouse --------


def fake_bootstrap_lock(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    """A requirements/ copy whose bootstrap.txt pins two small wheels the test makes (real hashes)."""
    req = tmp_path / "requirements"
    shutil.copytree(ROOT / "requirements", req)
    made = tmp_path / "made"
    made.mkdir()
    wheels, lines = {}, []
    for name, version in (("uv", "0.13.9"), ("archspec", "0.2.7")):
        wheel = made / f"{name}-{version}-py3-none-{'manylinux_2_17_x86_64' if name == 'uv' else 'any'}.whl"
        wheel.write_bytes(f"wheel {name} {version}".encode())
        wheels[name] = wheel
        lines.append(f"{name}=={version} \\\n    --hash=sha256:{hashlib.sha256(wheel.read_bytes()).hexdigest()}\n")
    (req / "bootstrap.txt").write_text("".join(lines))
    return req, wheels


@pytest.fixture
def offline_setup(tmp_path, monkeypatch):
    req, wheels = fake_bootstrap_lock(tmp_path)
    monkeypatch.setattr(bootstrap_common, "REQUIREMENTS", req)
    monkeypatch.setenv(bootstrap_wheels.WHEEL_CACHE_ENV, str(tmp_path / "cache"))
    calls = []

    def record(cmd, plan, what, *rest):
        calls.append(cmd)
        if "download" in cmd:  # pip download: what a connected machine gets
            dest = Path(cmd[cmd.index("--dest") + 1])
            for wheel in wheels.values():
                shutil.copy(wheel, dest / wheel.name)

    monkeypatch.setattr(bootstrap_install, "run", record)
    venv = tmp_path / "venv"
    (venv / "lib/python3.11/site-packages").mkdir(parents=True)
    return venv, wheels, calls, tmp_path / "cache"


def test_offline_with_nothing_cached_says_what_to_copy_where(offline_setup):
    venv, wheels, calls, cache = offline_setup
    plan = plan_for(venv)
    plan.offline = True
    with pytest.raises(TtsrigError) as caught:
        bootstrap_install.ensure_bootstrap_tools(plan)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("offline, and the installer's own wheels (archspec 0.2.7, uv 0.13.9")
    assert f"copy DIR's files into {cache}" in message
    assert "pip download --no-deps --require-hashes -d DIR -r" in message and "bootstrap.txt" in message
    assert calls == []  # nothing reached pip, which would have asked the index


def test_online_the_installer_wheels_are_kept_then_installed_from_disk(offline_setup):
    venv, wheels, calls, cache = offline_setup
    bootstrap_install.ensure_bootstrap_tools(plan_for(venv))
    download, install = calls
    assert "run_module('pip'" in download[2] and download[3] == "download" and "--require-hashes" in download
    assert sorted(p.name for p in cache.iterdir()) == sorted(w.name for w in wheels.values())  # no temp folder left
    assert "run_module('pip'" in install[2] and install[3] == "install"
    assert {"--no-index", "--require-hashes", "--no-deps"} <= set(install)
    # The next run, offline, finds them there and never downloads.
    calls.clear()
    plan = plan_for(venv)
    plan.offline = True
    bootstrap_install.ensure_bootstrap_tools(plan)
    assert len(calls) == 1 and "download" not in calls[0]


def test_a_wheelhouse_serves_the_installer_and_a_damaged_wheel_is_refused(offline_setup, tmp_path):
    venv, wheels, calls, cache = offline_setup
    house = tmp_path / "wheelhouse"
    house.mkdir()
    for wheel in wheels.values():
        shutil.copy(wheel, house / wheel.name)
    (house / "uv-0.13.9-py3-none-macosx_11_0_arm64.whl").write_bytes(b"another platform")
    plan = plan_for(venv, wheelhouse=house)
    bootstrap_install.ensure_bootstrap_tools(plan)
    (install,) = calls
    links = Path(install[install.index("--find-links") + 1])
    assert "--no-index" in install and "--require-hashes" in install
    # Damaged: same name, other bytes. pip would refuse it; bootstrap names it first and installs nothing.
    calls.clear()
    (house / wheels["uv"].name).write_bytes(b"tampered")
    with pytest.raises(TtsrigError, match=r"installing from the wheelhouse only.*uv-0.13.9-py3-none-manylinux"
                                          r"_2_17_x86_64.whl does not match the hash"):
        bootstrap_install.ensure_bootstrap_tools(plan)
    assert calls == [] and not links.exists()


def test_the_wheelhouse_plan_uses_it_for_every_step(probed, tmp_path, monkeypatch, capsys):
    house = tmp_path / "wheelhouse"
    house.mkdir()
    pins = {**locks.parse_lock(ROOT / lock("pre-v2")), **locks.parse_lock(ROOT / "requirements/nodeps.txt")}
    for pin in pins.values():  # empty stand-ins named as `pip download` names them
        name = pin.name.replace("-", "_")
        (house / (f"{name}-{pin.version}.tar.gz" if pin.name == "monotonic-align"
                  else f"{name}-{pin.version}-py3-none-any.whl")).write_bytes(b"")
    monkeypatch.setenv(bootstrap_wheels.WHEELHOUSE_ENV, str(house))
    assert bootstrap.main(["--dry-run", "--offline", "--venv", str(tmp_path / "v")]) == 0
    out = capsys.readouterr().out
    assert f"uv install --no-index --find-links {house} --offline --require-hashes --no-deps -r {lock('pre-v2')}" in out
    assert f"--no-index --find-links {house} --offline --require-hashes --no-deps --no-build-isolation -r requirements/nodeps.txt" in out
    assert f"pip install --require-hashes --no-deps --no-index --find-links {house} --find-links" in out
    plan = bootstrap.make_plan(bootstrap.build_parser().parse_args(["--venv", str(tmp_path / "v")]),
                               bootstrap_python.check_python(sys.executable))
    assert bootstrap_install.installer_cmd(plan, "-r", "x")[-5:] == ["--no-index", "--find-links", str(house), "-r",
                                                                    "x"]
    # One file missing: refused before anything changes, naming it and the folder.
    (house / "torch-2.7.0-py3-none-any.whl").unlink()
    assert bootstrap.main(["--offline", "--venv", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err
    assert f"the wheelhouse {house} lacks 1 of" in err and "(torch==2.7.0)" in err and "pip download" in err and "-r requirements/bootstrap.txt" in err
    assert not (tmp_path / "v").exists()


def test_pip_cannot_install_offline_without_a_wheelhouse(probed, tmp_path, capsys):
    assert bootstrap.main(["--offline", "--installer", "pip", "--venv", str(tmp_path / "v")]) == 2
    assert "--installer pip --offline has nothing to install from" in capsys.readouterr().err
    assert not (tmp_path / "v").exists()


@pytest.mark.parametrize("output, expected", [
    ("error: No solution found when resolving dependencies\n  cause: Because iniconfig was not found in the cache "
     "and you require iniconfig==2.0.0, we can conclude", "not in uv's cache.*--wheelhouse DIR"),
    ("cause: Network connectivity is disabled, but the requested data wasn't found in the cache: https://x",
     "not in uv's cache"),
])
def test_offline_cache_misses_become_clear_messages(tmp_path, output, expected):
    script = f"import sys; print({output!r}); sys.exit(1)"
    with pytest.raises(TtsrigError, match=expected):
        bootstrap_install.run([sys.executable, "-c", script], plan_for(tmp_path), "installing something")


# --- a hand-edited lock names its line ---------------------------------------


@pytest.fixture
def git_checkout(tmp_path, monkeypatch):
    """A committed copy of requirements/ in its own git repository, used as bootstrap's checkout."""
    if not shutil.which("git"):
        pytest.skip("git is not installed")
    repo = tmp_path / "checkout"
    shutil.copytree(ROOT / "requirements", repo / "requirements")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "requirements"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "locks"], check=True)
    monkeypatch.setattr(bootstrap_common, "ROOT", repo)
    monkeypatch.setattr(bootstrap_common, "REQUIREMENTS", repo / "requirements")
    return repo


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if line.startswith(text))


def test_a_version_changed_by_hand_is_named_by_line_in_the_dry_run(probed, git_checkout, tmp_path, capsys):
    pre_v2 = git_checkout / lock("pre-v2")
    pre_v2.write_text(pre_v2.read_text().replace("\ntorch==2.7.0 \\", "\ntorch==2.7.1 \\", 1))
    for args in (["--dry-run"], []):
        assert bootstrap.main([*args, "--venv", str(tmp_path / "v")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0
        assert f"{lock('pre-v2')} line {line_of(pre_v2, 'torch==')}: torch 2.7.1 carries the hashes of torch 2.7.0" in err
        assert "`git checkout -- requirements/`" in err and "bin/lock" in err
    assert not (tmp_path / "v").exists()


def test_a_hash_changed_by_hand_is_named_by_its_own_line(probed, git_checkout, tmp_path, capsys):
    lock = git_checkout / "requirements/nodeps.txt"
    text = lock.read_text()
    old = locks.parse_lock(lock)["styletts2"].hashes[0]
    lock.write_text(text.replace(old, "0" * 64))
    assert bootstrap.main(["--dry-run", "--venv", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err
    assert f"requirements/nodeps.txt line {line_of(lock, '    --hash=sha256:' + '0' * 64)}: the hash sha256:000000000000" \
           "... of styletts2 0.1.6 was changed" in err


def test_a_regenerated_lock_is_not_called_a_hand_edit(probed, git_checkout, tmp_path, capsys):
    lock = git_checkout / "requirements/nodeps.txt"
    pins = locks.parse_lock(lock)
    # bin/lock moved styletts2 to another release: a new version with new hashes.
    lock.write_text(lock.read_text().replace("styletts2==0.1.6", "styletts2==0.1.7").replace(
        pins["styletts2"].hashes[0], "a" * 64))
    assert bootstrap.main(["--dry-run", "--venv", str(tmp_path / "v")]) == 0


def test_an_installer_hash_mismatch_names_the_lock_line(tmp_path):
    output = "error: Failed to download `munch==2.5.0`\n  cause: Hash mismatch for `munch==2.5.0`\n"
    script = f"import sys; print({output!r}); sys.exit(1)"
    v3 = ROOT / lock("v3")
    line = locks.parse_lock(v3)["munch"].line
    with pytest.raises(TtsrigError, match=rf"{lock('v3')} line {line}: the file of munch==2.5.0 does not match"
                                          r".*edited by hand.*git checkout -- requirements/"):
        bootstrap_install.run([sys.executable, "-c", script], plan_for(tmp_path), "installing", (ROOT / "requirements/nodeps.txt", v3))
    pip_output = ("ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE.\n"
                  "    munch==2.5.0 from https://files.example/munch-2.5.0-py2.py3-none-any.whl (from -r x (line 1)):\n")
    script = f"import sys; print({pip_output!r}); sys.exit(1)"
    with pytest.raises(TtsrigError, match=rf"{lock('v3')} line {line}: the file of munch==2.5.0"):
        bootstrap_install.run([sys.executable, "-c", script], plan_for(tmp_path), "installing", (v3,))


def test_a_pin_the_index_does_not_have_is_called_an_edit_online_and_missing_offline(tmp_path):
    output = "  cause: Because there is no version of torch==2.7.9 and you require torch==2.7.9, we can conclude"
    script = f"import sys; print({output!r}); sys.exit(1)"
    v3 = ROOT / lock("v3")
    with pytest.raises(TtsrigError, match=rf"{lock('v3')} names a release the index does not have.*edited by hand"):
        bootstrap_install.run([sys.executable, "-c", script], plan_for(tmp_path), "installing", (v3,))
    house = plan_for(tmp_path, wheelhouse=tmp_path / "house")
    with pytest.raises(TtsrigError, match=rf"a file of {lock('v3')} is not in {tmp_path}/house: copy it there"):
        bootstrap_install.run([sys.executable, "-c", script], house, "installing", (v3,))


def test_a_venv_whose_python_cannot_run_is_probed_with_the_given_python(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin/python").write_text("garbage")
    (venv / "bin/python").chmod(0o644)  # exists, cannot be executed
    cpu = bootstrap.probe_cpu(venv, sys.executable)
    assert cpu["tier"] in ("pre-v2", "v2", "v3")


# --- which Python builds the venv --------------------------------------------

FAKE_PYTHON = """#!/bin/sh
# A stand-in for CPython {version}: answers bootstrap's probe; `-m venv DIR` lays out a {minor} venv's skeleton.
# bootstrap runs `-m venv DIR` as -c code that runs the module venv (envcheck.python_command): read as -m.
case "${{2-}}" in *"run_module('venv'"*) set -- -m venv "$3" ;; esac
if [ "$1" = "-c" ]; then
    echo 'CPython {words}'
    {venv_check}
fi
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
    mkdir -p "$3/bin" "$3/lib/python{minor}/site-packages"
    printf 'home = /nowhere\\nversion = {version}\\n' >"$3/pyvenv.cfg"
    exit 0
fi
exit 3
"""
NO_VENV = """echo "ModuleNotFoundError: No module named 'ensurepip'" >&2; exit 1"""


def fake_python_at(folder: Path, name: str, version: str, *, has_venv: bool = True) -> str:
    """A program called `name` in `folder` that says it is CPython `version`."""
    minor = ".".join(version.split(".")[:2])
    path = folder / name
    path.write_text(FAKE_PYTHON.format(version=version, minor=minor, words=version.replace(".", " "),
                                       venv_check="exit 0" if has_venv else NO_VENV))
    path.chmod(0o755)
    return str(path)


def not_a_python(folder: Path, name: str) -> None:
    """What pyenv puts on PATH for a version that is installed but not active: it does not run."""
    path = folder / name
    path.write_text(f"#!/bin/sh\necho 'pyenv: {name}: command not found' >&2\nexit 127\n")
    path.chmod(0o755)


@pytest.fixture
def path_dir(only_this_python_on_path):
    """The test's PATH folder, emptied of this Python: the test says what is on PATH."""
    (only_this_python_on_path / f"python{PY}").unlink()
    return only_this_python_on_path


def test_the_newest_supported_python_on_path_is_picked(path_dir, tmp_path, capsys):
    fake_python_at(path_dir, "python3", "3.9.2")
    fake_python_at(path_dir, "python3.10", "3.10.12")
    fake_python_at(path_dir, "python3.12", "3.12.3")
    not_a_python(path_dir, "python3.13")  # a pyenv shim: on PATH, does not run
    fake_python_at(path_dir, "python3.14", "3.14.0")  # too new: never a candidate
    chosen = bootstrap_python.choose_python(None, tmp_path / "venv")
    assert (Path(chosen.path).name, chosen.name) == ("python3.12", "CPython 3.12.3")
    with pytest.raises(TtsrigError, match=r"python3.13 does not run as a Python \(pyenv: python3.13: command not "
                                          r"found\)\. Pass --python with a CPython 3.10 to 3.13 that runs"):
        bootstrap_python.choose_python("python3.13", tmp_path / "venv")
    fake_python_at(path_dir, "python3.13", "3.13.5")
    assert Path(bootstrap_python.choose_python(None, tmp_path / "venv").path).name == "python3.13"
    # --python wins over PATH.
    assert bootstrap_python.choose_python("python3.10", tmp_path / "venv").name == "CPython 3.10.12"


def test_python3_counts_when_its_version_is_supported(path_dir, tmp_path):
    fake_python_at(path_dir, "python3", "3.12.3")  # Ubuntu 24.04 without the python3.12 name on PATH
    assert bootstrap_python.choose_python(None, tmp_path / "venv").name == "CPython 3.12.3"


def test_an_existing_venv_keeps_its_python_when_it_is_on_path(path_dir, tmp_path):
    fake_python_at(path_dir, "python3.11", "3.11.2")
    fake_python_at(path_dir, "python3.13", "3.13.5")
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / bootstrap_venv.STATE_NAME).write_text(json.dumps({"complete": True, "tier": "v3", "python": "3.11.2"}))
    assert bootstrap_python.choose_python(None, venv).name == "CPython 3.11.2"
    assert bootstrap_python.choose_python(None, tmp_path / "new").name == "CPython 3.13.5"


def test_the_newest_without_venv_gives_way_to_one_with_it(path_dir, tmp_path, capsys):
    fake_python_at(path_dir, "python3.13", "3.13.5", has_venv=False)
    fake_python_at(path_dir, "python3.11", "3.11.2")
    assert bootstrap_python.choose_python(None, tmp_path / "venv").name == "CPython 3.11.2"
    assert "python3.13 (CPython 3.13.5) cannot make a venv" in capsys.readouterr().err
    (path_dir / "python3.11").unlink()
    with pytest.raises(TtsrigError) as caught:
        bootstrap_python.choose_python(None, tmp_path / "venv")
    assert "has no working `venv` module" in str(caught.value)
    assert "`sudo apt-get install python3.13-venv`" in str(caught.value)


def test_no_supported_python_on_path_is_one_line_naming_what_to_install(path_dir, tmp_path, capsys):
    fake_python_at(path_dir, "python3", "3.9.2")
    not_a_python(path_dir, "python3.12")
    venv = tmp_path / "venv"
    assert bootstrap.main(["--venv", str(venv)]) == 2
    err = capsys.readouterr().err
    assert err == ("bootstrap: no supported Python on PATH: ttsrig builds its venv with CPython 3.10 to 3.13 "
                   "(python3 is CPython 3.9.2). Install one: `sudo apt-get install python3 python3-venv` (the "
                   "python3 of Ubuntu 22.04 and 24.04 and of Debian 12 and 13 is supported); or pass --python "
                   "/path/to/python3.X; or run `bin/bootstrap --python-install` to let uv fetch CPython 3.11 built "
                   f"for the baseline x86-64 level into {tmp_path / 'managed-python'}.\n")
    assert not venv.exists()


@pytest.mark.parametrize("python", ["3.10.12", "3.11.2", "3.12.3", "3.13.5"])
def test_the_plan_picks_the_lock_of_the_chosen_python(probed, path_dir, tmp_path, capsys, python):
    minor = ".".join(python.split(".")[:2])
    fake_python_at(path_dir, f"python{minor}", python)
    venv = tmp_path / "venv"
    assert bootstrap.main(["--dry-run", "--venv", str(venv)]) == 0
    out = capsys.readouterr().out
    assert f"python: CPython {python} ({path_dir}/python{minor})" in out
    assert f"lock: {lock('pre-v2', minor)}" in out and f"-r {lock('pre-v2', minor)}" in out
    assert not venv.exists()


def test_the_summary_names_the_lock_and_the_python(tmp_path):
    plan = plan_for(tmp_path, python="/usr/bin/python3.12", python_version="3.12.1")
    plan.lock = ROOT / lock("v3", "3.12")
    text = bootstrap_summary.summary(plan, locks.conformance({}, {}, []), [], "applied", 1.0)
    assert "lock:      requirements/py3.12/v3.txt, CPython 3.12.1 + requirements/nodeps.txt" in text
    assert "python:    CPython 3.12.1 (/usr/bin/python3.12)" in text


def test_a_missing_lock_for_the_chosen_python_is_one_line_before_anything(probed, path_dir, tmp_path, monkeypatch,
                                                                          capsys):
    req = tmp_path / "requirements"
    shutil.copytree(ROOT / "requirements", req, ignore=shutil.ignore_patterns("evidence"))
    (req / "py3.12/pre-v2.txt").unlink()
    monkeypatch.setattr(bootstrap_common, "REQUIREMENTS", req)
    fake_python_at(path_dir, "python3.12", "3.12.3")
    venv = tmp_path / "venv"
    assert bootstrap.main(["--venv", str(venv)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the lock of tier pre-v2 for CPython 3.12" in err
    assert "is missing: make it with `bin/lock --python 3.12 pre-v2`" in err
    assert not venv.exists()


def test_another_python_on_an_existing_venv_is_refused_in_one_line(probed, path_dir, tmp_path, no_installs,
                                                                     capsys):
    fake_python_at(path_dir, "python3.11", "3.11.2")
    python312 = fake_python_at(path_dir, "python3.12", "3.12.3")
    venv = tmp_path / "venv"
    venv.mkdir()
    record = {"complete": True, "made_by": "bin/bootstrap", "tier": "pre-v2", "python": "3.11.2",
              "lock": lock("pre-v2", "3.11")}
    (venv / bootstrap_venv.STATE_NAME).write_text(json.dumps(record))
    before = user_files(venv)
    for args in (["--dry-run"], []):
        assert bootstrap.main([*args, "--venv", str(venv), "--python", python312]) == 2
        err = capsys.readouterr().err
        assert err == (f"bootstrap: {venv} was built with CPython 3.11.2, and this run would use CPython 3.12.3 "
                       f"({python312}): a venv keeps its Python. Pass --python python3.11, build the new one "
                       f"elsewhere with --venv PATH, or remove {venv} (bin/bootstrap made it) and re-run.\n")
    assert user_files(venv) == before and not no_installs
    # A record from before bootstrap wrote the Python: pyvenv.cfg's version says it.
    (venv / bootstrap_venv.STATE_NAME).write_text(json.dumps({"complete": True, "tier": "pre-v2"}))
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\nversion = 3.11.7\n")
    assert bootstrap.main(["--dry-run", "--venv", str(venv), "--python", python312]) == 2
    assert "was built with CPython 3.11.7" in capsys.readouterr().err


@pytest.mark.parametrize("python", ["3.12.3", "3.13.5"])
def test_the_record_names_the_python_and_its_lock(tmp_path, monkeypatch, python):
    minor = ".".join(python.split(".")[:2])
    fake = fake_python_at(tmp_path, f"python{minor}", python)
    venv = tmp_path / "venv"
    plan = plan_for(venv, fake, python_version=python)
    plan.lock = ROOT / lock("v3", minor)
    bootstrap_venv.ensure_venv(plan)
    assert json.loads((venv / bootstrap_venv.STATE_NAME).read_text())["python"] == python  # written before the venv
    assert bootstrap_venv.site_packages(venv) == venv / f"lib/python{minor}/site-packages"
    monkeypatch.setattr(bootstrap_venv, "ensure_venv", lambda plan: None)
    monkeypatch.setattr(bootstrap_install, "ensure_bootstrap_tools", lambda plan: None)
    monkeypatch.setattr(bootstrap_install, "run", lambda *args, **kw: None)
    bootstrap_install.install(plan, {})
    state = json.loads((venv / bootstrap_venv.STATE_NAME).read_text())
    assert (state["python"], state["lock"], state["complete"]) == (python, lock("v3", minor), True)
    from envcheck.venv import recorded_python
    assert recorded_python(venv) == python


def test_the_module_runs_on_python_3_8_syntax():
    """bin/bootstrap may start the module with any python3 from 3.8 on: nothing newer than 3.8 may be needed to
    import it (the venv's own Python is checked separately)."""
    import ast

    for module in ("bootstrap", "bootstrap_common", "bootstrap_plan", "bootstrap_python", "bootstrap_venv",
                   "bootstrap_wheels", "bootstrap_install", "bootstrap_summary", "managed_python", "paths", "locks",
                   "tiers", "venv", "atomic", "digests", "errors", "wheels"):
        source = (ROOT / "envcheck" / f"{module}.py").read_text()
        ast.parse(source, feature_version=(3, 8))
        assert "removeprefix" not in source and "removesuffix" not in source, module


def test_the_shim_runs_on_any_python3_that_runs(path_dir, tmp_path):
    """A pyenv shim named python3 that does not run is passed over; with no Python 3.8+ at all, one line."""
    (path_dir / "dirname").symlink_to(shutil.which("dirname", path="/usr/bin:/bin"))
    not_a_python(path_dir, "python3")
    (path_dir / "python3.9").symlink_to(os.path.realpath(sys.executable))  # any 3.8+ may run the module
    env = {**os.environ, "PATH": str(path_dir)}
    out = subprocess.run([str(ROOT / "bin/bootstrap"), "--python", str(tmp_path / "nope"), "--dry-run"],
                         capture_output=True, text=True, env=env)
    assert (out.returncode, out.stderr.count("\n")) == (2, 1)
    assert "not found. ttsrig builds its venv with CPython 3.10 to 3.13" in out.stderr  # the module answered
    (path_dir / "python3.9").unlink()
    out = subprocess.run([str(ROOT / "bin/bootstrap"), "--dry-run"], capture_output=True, text=True, env=env)
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert out.stderr.startswith("bootstrap: no python3 (3.8 or newer) found to run bin/bootstrap")
    assert "sudo apt-get install python3 python3-venv" in out.stderr


def test_the_compiler_hint_names_the_dev_package_of_the_venvs_python(tmp_path):
    script = "import sys; print(\"error: command 'gcc' failed: No such file or directory\"); sys.exit(1)"
    plan = plan_for(tmp_path, python_version="3.13.5")
    with pytest.raises(TtsrigError, match=r"`sudo apt-get install build-essential python3.13-dev`"):
        bootstrap_install.run([sys.executable, "-c", script], plan, "installing something")


def managed_python_at(tmp_path: Path, version: str = "3.11.9") -> str:
    """What --python-install leaves in its folder (the autouse fixture's): uv's link to the baseline build."""
    folder = tmp_path / "managed-python" / "cpython-3.11-linux-x86_64-gnu" / "bin"
    folder.mkdir(parents=True)
    return fake_python_at(folder, "python3.11", version)


def test_the_python_install_made_is_used_by_later_runs_without_the_flag(path_dir, tmp_path):
    managed = managed_python_at(tmp_path)
    assert bootstrap_python.choose_python(None, tmp_path / "venv").path == managed  # nothing on PATH
    fake_python_at(path_dir, "python3.13", "3.13.5")
    assert bootstrap_python.choose_python(None, tmp_path / "new").name == "CPython 3.13.5"  # PATH's newest comes first
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / bootstrap_venv.STATE_NAME).write_text(json.dumps({"complete": True, "tier": "v3", "python": "3.11.9"}))
    # ...but a venv keeps the Python it was built with
    assert bootstrap_python.choose_python(None, venv).path == managed


def test_python_install_plans_with_the_installed_python_and_the_summary_says_whose_it_is(probed, path_dir,
                                                                                          tmp_path, capsys):
    managed = managed_python_at(tmp_path)
    assert bootstrap.main(["--python-install", "--dry-run", "--venv", str(tmp_path / "venv")]) == 0
    out = capsys.readouterr().out
    assert f"python: CPython 3.11.9 ({managed})" in out and f"lock: {lock('pre-v2', '3.11')}" in out
    plan = plan_for(tmp_path, python=managed, python_version="3.11.9")
    text = bootstrap_summary.summary(plan, locks.conformance({}, {}, []), [], "applied", 1.0)
    assert (f"python:    CPython 3.11.9 ({managed}; uv's baseline x86-64 build, in ttsrig's folder "
            f"{tmp_path / 'managed-python'})") in text


def test_a_glibc_older_than_the_wheels_need_is_refused_before_anything_is_built(probed, tmp_path, monkeypatch,
                                                                                 capsys):
    """torch 2.7's wheels are manylinux_2_28 and it has no source on the index: on glibc 2.27 (Ubuntu 18.04)
    nothing could install it, so bootstrap says so first instead of failing half-way."""
    monkeypatch.setattr(bootstrap.wheels, "host_glibc", lambda: (2, 27))
    venv = tmp_path / "venv"
    for args in (["--dry-run", "--venv", str(venv)], ["--venv", str(venv)]):
        assert bootstrap.main(args) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "this system's glibc 2.27 is older than 2.28" in err
        assert "torch" in err and "manylinux_2_28" in err and lock("pre-v2") in err
        assert not venv.exists()
    monkeypatch.setattr(bootstrap.wheels, "host_glibc", lambda: (2, 28))
    assert bootstrap.main(["--dry-run", "--venv", str(venv)]) == 0


def test_compile_choices_reach_the_installers(tmp_path):
    """all: the installer compiles every module; used and none: it compiles nothing (uv's default; pip is told).
    none is the default: tests/bench/README.md has the measured trade-off."""
    assert bootstrap.build_parser().parse_args([]).compile == "none" == plan_for(tmp_path / "v").compile
    default = bootstrap_install.installer_cmd(plan_for(tmp_path / "v"), "-r", "x")
    assert "--compile-bytecode" not in default
    for installer in ("uv", "pip"):
        for choice, flag in (("all", True), ("used", False), ("none", False)):
            plan = plan_for(tmp_path / "v", compile=choice)
            plan.installer = installer
            cmd = bootstrap_install.installer_cmd(plan, "-r", "x")
            if installer == "uv":
                assert ("--compile-bytecode" in cmd) is flag, (installer, choice)
            else:
                assert ("--no-compile" in cmd) is not flag, (installer, choice)


HOLD_LOCK = """
import sys, time
from pathlib import Path
from envcheck import run_lock
with run_lock.held("bootstrap", Path(sys.argv[1]), str):
    print("held", flush=True)
    sys.stdin.read()  # until the test closes our stdin
"""


def test_a_second_bootstrap_on_the_same_venv_is_refused_while_the_first_runs(probed, tmp_path, fake_python,
                                                                               no_installs, capsys):
    venv = tmp_path / "venv"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(venv)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        assert bootstrap.main(["--venv", str(venv), "--python", fake_python]) == 2
        err = capsys.readouterr().err.strip()
        assert err == (f"bootstrap: another bin/bootstrap (process {holder.pid}) is working on {venv} now; let it "
                       "finish (or stop it), then re-run bin/bootstrap if you still need to. Nothing was changed.")
        assert not venv.exists() and not no_installs
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    # The first run's end (however it ended) frees the venv: the next run goes on to its first step.
    assert bootstrap.main(["--venv", str(venv), "--python", fake_python]) == 2
    assert "another bin/bootstrap" not in capsys.readouterr().err
    assert no_installs


def test_the_lock_is_per_job_folder_and_user_and_outside_the_folder(tmp_path):
    from envcheck import run_lock

    first, second = run_lock.lock_file("bootstrap", tmp_path / "a"), run_lock.lock_file("bootstrap", tmp_path / "b")
    assert first != second and first == run_lock.lock_file("bootstrap", tmp_path / "x" / ".." / "a")
    assert first != run_lock.lock_file("audition-render", tmp_path / "a")
    assert str(os.getuid()) in first.name and tmp_path not in first.parents
    with run_lock.held("bootstrap", tmp_path / "a", str), run_lock.held("bootstrap", tmp_path / "b", str):
        assert first.read_text() == str(os.getpid())  # two venvs build side by side


def test_a_link_planted_at_the_lock_path_is_refused_and_its_target_untouched(tmp_path, monkeypatch):
    from envcheck import run_lock
    from envcheck.errors import TtsrigError

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)  # re-read TMPDIR
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    run_lock.lock_file("bootstrap", tmp_path / "venv").symlink_to(victim)
    with pytest.raises(TtsrigError, match="cannot open the lock file .*remove it if it is yours"):
        with run_lock.held("bootstrap", tmp_path / "venv", str):
            pass
    assert victim.read_text() == "precious"


# -- the GPU decides too (envcheck.gpu_choice; the probe's own tests are tests/unit/test_gpu.py) ---------

GPUS = Path(__file__).resolve().parents[1] / "gpus" / "nvml"


def cards(monkeypatch, recording: str) -> None:
    """The GPU probe answers as the recorded card(s) of tests/gpus/nvml/RECORDING.txt."""
    driver, *lines = (GPUS / f"{recording}.txt").read_text().splitlines()
    gpus = [bootstrap.gpu.Gpu(i, name, (int(major), int(minor)), int(total) >> 20, int(free) >> 20, uuid)
            for i, (name, major, minor, total, free, uuid) in enumerate(line.split("|") for line in lines)]
    monkeypatch.setattr(bootstrap, "probe_gpu", lambda: bootstrap.gpu.GpuView(driver, gpus, source="nvml"))


@pytest.mark.parametrize("recording, tier, chosen, gpu_class", [
    ("tesla-p40--maxwell-pascal", "v3", "v2-maxwell-pascal", "maxwell-pascal"),
    ("tesla-p40--maxwell-pascal", "pre-v2", "pre-v2", "maxwell-pascal"),
    ("p40-and-rtx-3060--mixed", "v2", "v2-maxwell-pascal", "maxwell-pascal+volta-hopper"),
    ("rtx-3060--volta-hopper", "v3", "v3", "volta-hopper"),
    ("rtx-5090--blackwell", "v3", "v3", "blackwell")])
def test_the_plan_names_the_gpu_class_and_the_lock_chosen_for_it(probed, tmp_path, monkeypatch, capsys, recording,
                                                                  tier, chosen, gpu_class):
    probed(tier)
    cards(monkeypatch, recording)
    assert bootstrap.main(["--dry-run", "--venv", str(tmp_path / "v")]) == 0
    out = capsys.readouterr().out
    assert f"lock: {lock(chosen)} (for GPU class {gpu_class}: torch " in out
    assert f"--require-hashes --no-deps -r {lock(chosen)}" in out and "gpu 0:" in out


@pytest.mark.parametrize("recording, tier, words", [
    ("tesla-k80--kepler-or-older", "v3", "Tesla K80 (sm_37, Kepler or older) has no lock"),
    ("rtx-5090--blackwell", "pre-v2", "has no lock for a pre-v2 CPU"),
    ("gtx-970--maxwell-pascal", "pre-v2", "the NVIDIA driver 470.256.02 is older than 525.60.13")])
def test_a_gpu_no_lock_serves_is_one_line_before_anything_is_made(probed, tmp_path, monkeypatch, capsys, recording,
                                                                  tier, words):
    probed(tier)
    cards(monkeypatch, recording)
    assert bootstrap.main(["--venv", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err
    assert words in err and "--gpu none" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "v").exists()


def test_gpu_none_and_a_capability_override_the_probe(probed, tmp_path, monkeypatch, capsys):
    probed("v3")
    cards(monkeypatch, "tesla-p40--maxwell-pascal")
    assert bootstrap.main(["--dry-run", "--gpu", "none", "--venv", str(tmp_path / "v")]) == 0
    assert f"lock: {lock('v3')} (for GPU class none:" in capsys.readouterr().out
    monkeypatch.setattr(bootstrap, "probe_gpu", lambda: bootstrap.gpu.GpuView())
    assert bootstrap.main(["--dry-run", "--gpu", "sm_61", "--venv", str(tmp_path / "v")]) == 0
    assert f"lock: {lock('v2-maxwell-pascal')} (for GPU class maxwell-pascal:" in capsys.readouterr().out
    assert bootstrap.main(["--dry-run", "--gpu", "banana", "--venv", str(tmp_path / "v")]) == 2
    assert "--gpu 'banana' names no GPU" in capsys.readouterr().err


def test_a_new_card_on_a_rerun_is_noticed_and_its_lock_applied(probed, tmp_path, monkeypatch, capsys):
    """A venv built for the CPU alone (or another card): the re-run sees the P40 and installs the lock for it."""
    probed("v3")
    cards(monkeypatch, "tesla-p40--maxwell-pascal")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text(f"home = /usr/bin\nversion = {'.'.join(map(str, sys.version_info[:3]))}\n")
    bootstrap_venv.write_state(venv, {"complete": True, "made_by": "bin/bootstrap", "tier": "v3", "lock": lock("v3"),
                                 "gpu_class": "none", "python": ".".join(map(str, sys.version_info[:3])),
                                 "lock_digest": "an earlier lock's"})
    installed = []

    def install(plan, state):
        installed.append(bootstrap_common.rel(plan.lock))
        raise TtsrigError("stop here")

    monkeypatch.setattr(bootstrap_install, "install", install)
    monkeypatch.setattr(bootstrap_venv, "check_disk", lambda venv: None)
    monkeypatch.setattr(bootstrap_python, "choose_python", lambda given, venv: bootstrap_python.Interpreter(
        sys.executable, "CPython", tuple(sys.version_info[:3])))
    assert bootstrap.main(["--venv", str(venv)]) == 2
    assert installed == [lock("v2-maxwell-pascal")]
    assert "the GPU changed since the last run (none, now maxwell-pascal)" in capsys.readouterr().err


# -- layers: --with asr (envcheck.bootstrap_layers) ------------------------------------------------------------

def made_venv(venv: Path, tier: str, **record) -> Path:
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text(f"home = /usr/bin\nversion = {'.'.join(map(str, sys.version_info[:3]))}\n")
    bootstrap_venv.write_state(venv, {"complete": True, "made_by": "bin/bootstrap", "tier": tier, "lock": lock(tier),
                                      "gpu_class": "none", "python": ".".join(map(str, sys.version_info[:3])),
                                      "lock_digest": "an earlier lock's", **record})
    return venv


def stop_at_install(monkeypatch) -> list:
    """bootstrap.main up to the install step: what it would install (the plan), then one line."""
    seen = []

    def install(plan, state):
        seen.append(plan)
        raise TtsrigError("stop here")

    monkeypatch.setattr(bootstrap_install, "install", install)
    monkeypatch.setattr(bootstrap_venv, "check_disk", lambda venv: None)
    monkeypatch.setattr(bootstrap_python, "choose_python", lambda given, venv: bootstrap_python.Interpreter(
        sys.executable, "CPython", tuple(sys.version_info[:3])))
    return seen


@pytest.mark.parametrize("tier", ["v2", "v3"])
def test_with_asr_on_v2_and_v3_installs_the_layer_lock_after_the_tiers(probed, tmp_path, capsys, tier):
    probed(tier)
    assert bootstrap.main(["--dry-run", "--with", "asr", "--venv", str(tmp_path / "v")]) == 0
    out = capsys.readouterr().out
    layer = lock(tier).replace(".txt", "-asr.txt")
    assert out.index(f"-r {lock(tier)}") < out.index(f"the asr layer: faster-whisper and what it needs, from {layer}")
    assert not (tmp_path / "v").exists()


def test_the_layer_pins_join_the_plan_and_its_lock_the_digest(probed, tmp_path, monkeypatch):
    probed("v3")
    seen = stop_at_install(monkeypatch)
    venv = made_venv(tmp_path / "venv", "v3")
    assert bootstrap.main(["--venv", str(venv)]) == 2
    assert bootstrap.main(["--venv", str(venv), "--with", "asr"]) == 2
    plain, layered = seen
    assert {"faster-whisper", "ctranslate2", "onnxruntime", "av"} <= set(layered.pins) - set(plain.pins)
    assert all(layered.pins[n].version == plain.pins[n].version for n in plain.pins)
    assert layered.lock_digest != plain.lock_digest
    assert layered.layer_records() == {"asr": {"lock": lock("v3").replace(".txt", "-asr.txt")}}


def test_a_rerun_without_with_keeps_the_layer_and_says_so_without_removes_it(probed, tmp_path, monkeypatch, capsys):
    probed("v3")
    seen = stop_at_install(monkeypatch)
    venv = made_venv(tmp_path / "venv", "v3", layers={"asr": {"lock": lock("v3").replace(".txt", "-asr.txt")}})
    assert bootstrap.main(["--venv", str(venv)]) == 2
    assert [layer.name for layer in seen[-1].layers] == ["asr"] and seen[-1].layers[0].kept
    assert "keeping the asr layer an earlier run installed (--without asr removes it)" in capsys.readouterr().err
    assert bootstrap.main(["--venv", str(venv), "--without", "asr"]) == 2
    assert seen[-1].layers == [] and "faster-whisper" not in seen[-1].pins
    assert bootstrap.main(["--venv", str(venv), "--with", "asr", "--without", "asr"]) == 2
    assert "--with asr and --without asr together: choose one" in capsys.readouterr().err


def test_dropping_the_layer_removes_its_packages_not_the_tiers(tmp_path):
    venv = tmp_path / "venv"
    plan = plan_for(venv, pins=locks.parse_lock(ROOT / lock("v3")))
    layered = {**plan.pins, **locks.parse_lock(ROOT / lock("v3").replace(".txt", "-asr.txt"))}
    have = {name: pin.version for name, pin in layered.items()}
    removed = bootstrap_install.packages_to_remove(plan, sorted(layered), have)
    assert removed == ["av", "ctranslate2", "faster-whisper", "flatbuffers", "onnxruntime"]


@pytest.mark.parametrize("probed_tier, build", [("pre-v2", "for this CPU"), ("v3", "for plain x86-64")])
def test_with_asr_on_pre_v2_builds_whisper_cpp_for_the_cpu_that_runs_it(probed, tmp_path, capsys, probed_tier, build):
    probed(probed_tier)
    args = ["--dry-run", "--with", "asr", "--venv", str(tmp_path / "v")] + (["--tier", "pre-v2"] if probed_tier != "pre-v2" else [])
    assert bootstrap.main(args) == 0
    out = capsys.readouterr().out
    assert f"whisper.cpp 1.8.5's whisper-cli and whisper-quantize, built from hash-pinned source into the venv's bin/ ({build}" in out


def test_a_pre_v2_build_without_its_tools_is_one_line_before_anything_changes(probed, tmp_path, monkeypatch, capsys):
    from envcheck import whispercpp_build

    probed("pre-v2")
    installs = stop_at_install(monkeypatch)
    venv = made_venv(tmp_path / "venv", "pre-v2")
    monkeypatch.setattr(whispercpp_build.shutil, "which", lambda tool: None if tool == "cmake" else "/usr/bin/" + tool)
    assert bootstrap.main(["--venv", str(venv), "--with", "asr"]) == 2
    err = capsys.readouterr().err
    assert "--with asr builds whisper.cpp on this CPU (no wheel of an ASR runs on tier pre-v2) and needs cmake " \
           "(sudo apt-get install cmake); install them, then re-run. Nothing was changed." in err
    assert installs == []


def test_a_pre_v2_build_offline_without_the_source_names_what_to_copy(probed, tmp_path, monkeypatch, capsys):
    from envcheck import whispercpp_build

    probed("pre-v2")
    installs = stop_at_install(monkeypatch)
    venv = made_venv(tmp_path / "venv", "pre-v2")
    monkeypatch.setattr(whispercpp_build.shutil, "which", lambda tool: "/usr/bin/" + tool)
    assert bootstrap.main(["--venv", str(venv), "--with", "asr", "--offline"]) == 2
    assert f"this run is offline: download {whispercpp_build.SOURCE_URL}" in capsys.readouterr().err
    assert installs == []
