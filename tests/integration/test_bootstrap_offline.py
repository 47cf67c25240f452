"""bin/bootstrap --offline into new venvs, with the network really blocked.

The network is cut with `unshare -n` (a new network namespace without interfaces; it needs root) where
that works; elsewhere the installers are pointed at a closed local port through the proxy variables,
which pip and uv honour (bootstrap passes no PIP_*/UV_* setting on, so an index URL could not do it).
The host venv of conftest is what warms uv's cache; it is only used, never rebuilt or deleted here.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from envcheck import locks
from envcheck.venv import site_packages

ROOT = Path(__file__).resolve().parents[2]
CLOSED_PORT = "http://127.0.0.1:9"

pytestmark = pytest.mark.integration

# The first two steps of bin/bootstrap (what it runs before the tier is decided), with the real code.
FIRST_STEPS = """
import sys
from pathlib import Path
from envcheck import bootstrap, bootstrap_install, bootstrap_python, bootstrap_venv
args = bootstrap.build_parser().parse_args(sys.argv[1:2])
plan = bootstrap.make_plan(args, bootstrap_python.check_python(sys.executable))
if sys.argv[2:]:
    plan.offline, plan.wheelhouse = True, Path(sys.argv[2])
bootstrap_venv.ensure_venv(plan)
bootstrap_install.ensure_bootstrap_tools(plan)
"""


@pytest.fixture(scope="module")
def no_network() -> tuple[list[str], dict[str, str]]:
    """A command prefix and environment under which nothing can reach the network."""
    try:
        works = subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0
    except OSError:
        works = False
    if works:
        return ["unshare", "-n"], {}
    print("unshare -n does not work here: the network is blocked through a closed proxy port instead")
    proxies = {name: CLOSED_PORT for name in ("http_proxy", "https_proxy", "all_proxy")}
    return [], {**proxies, **{k.upper(): v for k, v in proxies.items()}, "no_proxy": "", "NO_PROXY": ""}


def environment(wheel_cache: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, "TTSRIG_WHEEL_CACHE": str(wheel_cache), **(extra or {})}


def offline(no_network, command: list[str], wheel_cache: Path) -> subprocess.CompletedProcess:
    prefix, blocked = no_network
    return subprocess.run([*prefix, *command], capture_output=True, text=True, cwd=ROOT,
                          env=environment(wheel_cache, blocked))


def bootstrap_cmd(*args: str) -> list[str]:
    return [str(ROOT / "bin/bootstrap"), "--python", sys.executable, *args]


def first_steps_cmd(venv: Path, wheelhouse: Path | None = None) -> list[str]:
    return [sys.executable, "-c", FIRST_STEPS, f"--venv={venv}", *([str(wheelhouse)] if wheelhouse else [])]


@pytest.fixture(scope="module")
def wheel_cache(tmp_path_factory) -> Path:
    """Online, once: a fresh bootstrap into a new venv keeps the installer's wheels in the wheel cache."""
    cache = tmp_path_factory.mktemp("ttsrig-wheels")
    venv = tmp_path_factory.mktemp("online") / "venv"
    out = subprocess.run(first_steps_cmd(venv), capture_output=True, text=True, cwd=ROOT,
                         env=environment(cache, {"PYTHONPATH": str(ROOT)}))
    assert out.returncode == 0, out.stderr[-3000:]
    bootstrap_pins = locks.parse_lock(ROOT / "requirements/bootstrap.txt")
    kept = {locks.canonical(p.name.split("-")[0]) for p in cache.glob("*.whl")}
    assert kept == set(bootstrap_pins), f"kept {kept}"
    return cache


def test_a_fresh_offline_bootstrap_builds_a_new_venv_from_the_caches(host_venv, host_tier, wheel_cache, tmp_path,
                                                                     no_network):
    # host_venv: the host tier was bootstrapped online, so uv's cache holds every file of its lock.
    venv = tmp_path / "offline-venv"
    out = offline(no_network, bootstrap_cmd("--offline", "--venv", str(venv)), wheel_cache)
    assert out.returncode == 0, out.stderr[-4000:]
    assert "versions:  all equal the lock" in out.stdout
    assert "downloading" not in out.stderr
    state = json.loads((venv / "ttsrig-state.json").read_text())
    assert state["complete"] is True and state["tier"] == host_tier
    pins = {**locks.parse_lock(locks.lock_path(host_tier, sys.version_info[:2])),  # bootstrap ran with --python this one
            **locks.parse_lock(ROOT / "requirements/nodeps.txt")}
    result = locks.conformance(pins, locks.installed(site_packages(venv)), [], {"pip", "ttsrig"})
    assert result.ok, result
    # bootstrap's default --compile none: no module was compiled while installing; the first import does it.
    assert "bytecode:  none written now: each module is compiled on its first import" in out.stdout
    torch_init = site_packages(venv) / "torch/__init__.py"
    assert not list((torch_init.parent / "__pycache__").glob("__init__.*.pyc"))
    run = subprocess.run([str(venv / "bin/python"), "-c", "import numpy, archspec, monotonic_align, envcheck"],
                         capture_output=True, text=True, cwd="/tmp",
                         env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"})
    assert run.returncode == 0, run.stderr[-2000:]
    numpy_init = site_packages(venv) / "numpy/__init__.py"
    assert list((numpy_init.parent / "__pycache__").glob("__init__.*.pyc"))  # written by that first import


def test_offline_with_nothing_cached_says_what_to_copy_where(tmp_path, no_network):
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    out = offline(no_network, bootstrap_cmd("--offline", "--venv", str(tmp_path / "venv")), empty)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("bootstrap: offline, and the installer's own wheels (archspec 0.2.7, uv 0.13.9, from "
                           f"requirements/bootstrap.txt) are not in {empty}")
    assert "pip download --no-deps --require-hashes -d DIR -r requirements/bootstrap.txt" in last
    assert f"copy DIR's files into {empty}" in last
    assert not any(empty.iterdir())  # nothing was fetched into the cache


def test_a_wheelhouse_serves_the_installer_with_the_network_blocked(wheel_cache, tmp_path, no_network):
    house = tmp_path / "wheelhouse"
    house.mkdir()
    for wheel in wheel_cache.glob("*.whl"):
        shutil.copy(wheel, house / wheel.name)
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    # The whole run wants a file for every pin: refused before anything is made, naming what to copy where.
    venv = tmp_path / "venv"
    out = offline(no_network, bootstrap_cmd("--offline", "--wheelhouse", str(house), "--venv", str(venv)), empty)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"the wheelhouse {house} lacks " in out.stderr and "pip download --no-deps --require-hashes" in out.stderr
    assert not venv.exists()
    # The installer's own step from the wheelhouse alone (the uv steps use it the same way; tests/unit
    # checks their commands, and that a damaged wheel is refused): pip installs uv and archspec,
    # hash-checked, without the network.
    env_steps = {"PYTHONPATH": str(ROOT)}
    prefix, blocked = no_network
    run = subprocess.run([*prefix, *first_steps_cmd(venv, house)], capture_output=True, text=True, cwd=ROOT,
                         env=environment(empty, {**blocked, **env_steps}))
    assert run.returncode == 0, run.stderr[-3000:]
    version = subprocess.run([str(venv / "bin/uv"), "--version"], capture_output=True, text=True)
    assert version.stdout.startswith("uv " + locks.parse_lock(ROOT / "requirements/bootstrap.txt")["uv"].version)
    assert not any(empty.iterdir())  # nothing was fetched into the cache
