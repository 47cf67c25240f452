"""The files the locks name, checked before they are used: the locks against the checkout's commit, this system's
glibc against their wheels, and the wheels kept on disk for installing without the index (the wheel cache of
the installer's own wheels, a --wheelhouse folder of every file), each file checked against its lock's hashes.

Standard library only (bin/bootstrap runs on any Python 3.8 or newer).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from envcheck import bootstrap_common as common
from envcheck import locks, python_command, wheels
from envcheck.bootstrap_common import log, rel
from envcheck.digests import file_sha256
from envcheck.errors import TtsrigError

if TYPE_CHECKING:  # for annotations only: bootstrap_plan imports this module (default_wheel_cache)
    from envcheck.bootstrap_plan import Plan

WHEELHOUSE_ENV = "TTSRIG_WHEELHOUSE"
WHEEL_CACHE_ENV = "TTSRIG_WHEEL_CACHE"


def default_wheel_cache() -> Path:
    """Where bootstrap keeps the installer's own wheels so that an offline run finds them."""
    if os.environ.get(WHEEL_CACHE_ENV):
        return Path(os.environ[WHEEL_CACHE_ENV]).expanduser().absolute()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser().absolute() / "ttsrig" / "wheels"


def committed_pins(path: Path, repo: Path | None = None) -> dict[str, locks.Pin] | None:
    """The lock as the checkout's last commit has it, when the file differs from it; None without git."""
    repo = repo or common.ROOT
    try:
        name = path.resolve().relative_to(repo.resolve()).as_posix()
    except ValueError:
        return None
    if not (repo / ".git").exists() or not shutil.which("git"):
        return None
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    try:
        out = subprocess.run(["git", "-C", str(repo), "show", f"HEAD:{name}"], capture_output=True, env=env,
                             timeout=60)
        text = out.stdout.decode("utf-8")
        if out.returncode != 0 or text == path.read_text(encoding="utf-8"):
            return None
        return locks.parse_lock_text(text, f"HEAD:{name}")
    except (OSError, subprocess.TimeoutExpired, UnicodeDecodeError, TtsrigError):
        return None  # no usable reference: the installer's hash check still stands


def read_locks(paths: list[Path]) -> dict[Path, dict[str, locks.Pin]]:
    """Parse each lock and refuse one whose versions or hashes were edited against the committed copy."""
    found = {}
    for path in paths:
        found[path] = locks.parse_lock(path)
        reference = committed_pins(path)
        if reference:
            locks.refuse_hand_edits(rel(path), found[path], reference)
    return found


def check_glibc(plan: Plan, have: tuple[int, int] | None) -> None:
    """Refuse before anything is built when this system's glibc is older than a pin's wheels need (torch 2.7's
    are manylinux_2_28) and there is no source to build instead: the installer would only say that it found no
    matching distribution, after the venv and the small packages were in place."""
    if have is None:  # not glibc (musl): no manylinux wheel fits, and the installer says so itself
        return
    target = wheels.Target(locks.major_minor(plan.python_version), have)
    too_old = []
    for pin in plan.pins.values():
        found = wheels.fit(wheels.files_for(pin.name, pin.version) or [], target)
        if found.wheel is None and found.sdist is None and found.oldest_glibc and found.oldest_glibc > have:
            too_old.append((found.oldest_glibc, f"{pin.name} {pin.version}"))
    if too_old:
        (major, minor), what = max(too_old)
        more = f" and {len(too_old) - 1} more" if len(too_old) > 1 else ""
        raise TtsrigError(f"this system's glibc {have[0]}.{have[1]} is older than {major}.{minor}, which the wheels "
                          f"of {what}{more} in {locks.display(plan.lock)} need (manylinux_{major}_{minor}): ttsrig "
                          f"runs on distributions with glibc {major}.{minor} or newer (Debian 10, Ubuntu 20.04, "
                          "RHEL 8 and later). Upgrade the system, or run ttsrig in a container of such a distribution")


def installable_here(filename: str) -> bool:
    """A file for the only platform of the locks (Linux x86-64, glibc), or for any platform."""
    if not filename.endswith(".whl"):
        return True
    platform = filename[:-4].split("-")[-1]
    return platform == "any" or ("x86_64" in platform and "linux" in platform and "musllinux" not in platform)


def pin_files(pins: dict[str, locks.Pin], folders: list[Path]) -> dict[str, list[Path]]:
    """Each pin's files in the folders, by name and version (their hashes are not read here)."""
    found: dict[str, list[Path]] = {name: [] for name in pins}
    for folder in folders:
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            key = locks.file_pin(entry.name)
            if (key and key[0] in pins and key[1].lower() == pins[key[0]].version.lower()
                    and installable_here(entry.name) and entry.is_file()):
                found[key[0]].append(entry)
    return found


def verified_wheels(pins: dict[str, locks.Pin], folders: list[Path]) -> tuple[dict[str, Path], list[Path]]:
    """Per pin, a file whose sha256 its lock allows; and the files named like one that do not match."""
    good: dict[str, Path] = {}
    bad: list[Path] = []
    for name, files in pin_files(pins, folders).items():
        for path in files:
            if file_sha256(path) in pins[name].hashes:
                good.setdefault(name, path)
            else:
                bad.append(path)
    return good, bad


def download_hint(plan: Plan, *lock_files: Path) -> str:
    needs = " ".join(f"-r {rel(path)}" for path in lock_files)
    return (f"on a connected Linux x86-64 machine with CPython {plan.python_minor} run `pip download --no-deps "
            f"--require-hashes -d DIR {needs}`")


def check_wheelhouse(plan: Plan) -> None:
    """Before anything changes: a wheelhouse must hold a file for every pin of the locks it replaces."""
    house = plan.wheelhouse
    assert house is not None
    if not house.is_dir():
        raise TtsrigError(f"--wheelhouse {house} is not a folder. Pass the folder that holds the locks' files "
                          f"(or unset {WHEELHOUSE_ENV}).")
    installer_lock = common.REQUIREMENTS / "bootstrap.txt"
    pins = {**locks.parse_lock(installer_lock), **plan.pins}
    found = pin_files(pins, [house])
    missing = sorted(f"{pin.name}=={pin.version}" for name, pin in pins.items() if not found[name])
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise TtsrigError(f"the wheelhouse {house} lacks {len(missing)} of the {len(pins)} files the locks name "
                          f"({shown}): {download_hint(plan, installer_lock, plan.lock, plan.nodeps)}, copy DIR's files into {house} "
                          "and re-run bin/bootstrap.")


def missing_tools_message(plan: Plan, pins: dict[str, locks.Pin], good: dict[str, Path], bad: list[Path]) -> str:
    lock = common.REQUIREMENTS / "bootstrap.txt"
    wanted = ", ".join(f"{pin.name} {pin.version}" for name, pin in sorted(pins.items()) if name not in good)
    where = " or ".join(str(folder) for folder in plan.wheel_folders)
    why = "offline" if plan.offline else "installing from the wheelhouse only"
    damaged = (f" ({', '.join(str(path) for path in bad)} does not match the hash in {rel(lock)}: replace it)"
               if bad else "")
    return (f"{why}, and the installer's own wheels ({wanted}, from {rel(lock)}) are not in {where}{damaged}: "
            f"{download_hint(plan, lock)}, and copy DIR's files into {plan.wheelhouse or plan.wheel_cache}; or run "
            f"bin/bootstrap once online, which keeps them in {plan.wheel_cache}.")


def fetch_installer_wheels(python: str, cache: Path, step: Callable[[list[str]], None]) -> None:
    """`python -m pip download` of requirements/bootstrap.txt (hash-checked) into `cache`, run by `step`."""
    lock = common.REQUIREMENTS / "bootstrap.txt"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        download = Path(tempfile.mkdtemp(prefix=".download-", dir=cache))
    except OSError as exc:
        raise TtsrigError(f"cannot write the wheel cache {cache}: {exc.strerror}. Set {WHEEL_CACHE_ENV} to a "
                          "writable folder and re-run bin/bootstrap.") from None
    try:
        step(python_command.module(python, "pip", "download", "--no-input", "--require-hashes", "--no-deps",
                                   "--only-binary=:all:", "--dest", str(download), "-r", str(lock)))
        for wheel in download.iterdir():
            os.replace(wheel, cache / wheel.name)  # whole, verified files only: a killed download leaves none
    finally:
        shutil.rmtree(download, ignore_errors=True)


def uv_wheel(args: argparse.Namespace) -> Path:
    """The verified uv wheel of requirements/bootstrap.txt, downloaded into the wheel cache (with the Python
    running bootstrap, when it has pip) if it is not on disk yet."""
    lock = common.REQUIREMENTS / "bootstrap.txt"
    pins = {"uv": locks.parse_lock(lock)["uv"]}
    cache = default_wheel_cache()
    folders = [*([Path(args.wheelhouse).expanduser().absolute()] if args.wheelhouse else []), cache]
    good, bad = verified_wheels(pins, folders)
    if not good and not (args.offline or args.wheelhouse) and has_pip(sys.executable):
        fetch_installer_wheels(sys.executable, cache, run_download)
        good, bad = verified_wheels(pins, folders)
    if good:
        return good["uv"]
    damaged = f" ({', '.join(map(str, bad))} does not match the hash in {rel(lock)}: replace it)" if bad else ""
    how = (f"on a connected machine run `pip download --no-deps --require-hashes -d DIR -r {rel(lock)}` "
                   f"and copy DIR's files into {cache}")
    raise TtsrigError(f"--python-install runs uv from its wheel (uv {pins['uv'].version}, {rel(lock)}), which is "
                      f"not in {' or '.join(map(str, folders))}{damaged}: {how}, then re-run bin/bootstrap "
                      "--python-install.")


def has_pip(python: str) -> bool:
    try:
        return subprocess.run(python_command.module(python, "pip", "--version"), capture_output=True,
                              timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def run_download(cmd: list[str]) -> None:
    """pip download before any venv exists: its output in the log, a failure in one line."""
    log("downloading the installer's wheels into the wheel cache (kept for offline runs)")
    out = subprocess.run(cmd, capture_output=True, text=True,
                         env={**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    if out.returncode != 0:
        sys.stderr.write(out.stdout + out.stderr)
        last = (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]
        raise TtsrigError(f"downloading uv's wheel failed ({last}): connect and re-run bin/bootstrap "
                          "--python-install, or copy the wheel into the wheel cache as its message above says.")
