"""`bin/bootstrap --python-install`: a CPython that uv installs for the baseline x86-64 level.

For machines without a supported Python on PATH. uv comes from its hash-verified wheel (a zip holding the
static binary), so no Python of the right version and no venv is needed to run it. uv installs a
python-build-standalone CPython into ttsrig's own folder (never the user's PATH), and only the build for
the baseline x86-64 level: the x86_64_v2/v3/v4 builds die with SIGILL on CPUs below that level, which is
every CPU ttsrig is for. uv checks each archive against the sha256 it carries for it.

Offline, the archive is copied into a folder (TTSRIG_PYTHON_DOWNLOADS, or --python-downloads, or the
--wheelhouse) and served to uv as a file:// mirror. A failed install removes what it made in the folder.

Standard library only, and runs on Python 3.8 (it runs before any supported Python exists).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote

from envcheck import paths
from envcheck.errors import TtsrigError

MINOR = (3, 11)  # the CPython --python-install brings: every tier has a lock for it
BASELINE = "x86_64"  # uv's name for the x86-64 baseline level; x86_64_v2..v4 are the others
REQUEST = f"cpython-{MINOR[0]}.{MINOR[1]}-linux-{BASELINE}-gnu"  # exact: uv picks no other level for it
PYTHON_DIR_ENV = "TTSRIG_PYTHON_DIR"
DOWNLOADS_ENV = "TTSRIG_PYTHON_DOWNLOADS"
UV_IN_WHEEL = re.compile(r"^uv-[^/]+\.data/scripts/uv$")
# The level in a uv key (cpython-3.11.18-linux-x86_64_v3-gnu) or an archive name (...-x86_64_v3-unknown-linux...).
LEVEL = re.compile(r"[-+](x86_64(?:_v[234])?)-(?:gnu|unknown)")
# What uv prints when it could not get the archive: no network, a mirror folder without the file, --offline.
UNREACHABLE = ("failed to query metadata of file", "Failed to download", "dns error", "Network connectivity is "
               "disabled", "error sending request", "Connection refused", "Network is unreachable", "timed out")


def default_python_dir() -> Path:
    """ttsrig's own folder for the Pythons uv installs (uv's own default is left to the user's uv)."""
    if os.environ.get(PYTHON_DIR_ENV):
        return Path(os.environ[PYTHON_DIR_ENV]).expanduser().absolute()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser().absolute() / "ttsrig" / "python"


def default_downloads_dir() -> Path:
    """Where a user copies the archive for an offline --python-install."""
    if os.environ.get(DOWNLOADS_ENV):
        return Path(os.environ[DOWNLOADS_ENV]).expanduser().absolute()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser().absolute() / "ttsrig" / "python"


def level_of(name: str) -> str:
    """'x86_64', 'x86_64_v3', ... from a uv key or an archive name; '' when it names none."""
    found = LEVEL.search(name)
    return found.group(1) if found else ""


def refuse_above_baseline(what: str, level: str) -> None:
    if level != BASELINE:
        raise TtsrigError(f"{what} is built for {level or 'an unknown level'}, not the baseline x86-64 level: such a "
                          "build dies with SIGILL on CPUs below its level, so --python-install takes only the "
                          f"baseline build ({REQUEST}). Remove it and re-run bin/bootstrap --python-install.")


@dataclass(frozen=True)
class Download:
    """One archive uv knows (key, URL and, inside uv, its sha256)."""

    key: str  # cpython-3.11.18-linux-x86_64-gnu
    url: str

    @property
    def filename(self) -> str:
        return unquote(self.url.rsplit("/", 1)[-1])

    @property
    def release(self) -> str:
        """The python-build-standalone release (20261110): the folder a mirror keeps the file in."""
        return self.url.rsplit("/", 2)[-2]


# --- uv, from its verified wheel ------------------------------------------


def extract_uv(wheel: Path, folder: Path) -> Path:
    """The uv binary of a (hash-verified) uv wheel, written to folder/uv."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            member = next((name for name in archive.namelist() if UV_IN_WHEEL.match(name)), None)
            if member is None:
                raise TtsrigError(f"{wheel} holds no uv program (uv-*.data/scripts/uv). Replace it with the wheel "
                                  "requirements/bootstrap.txt names and re-run bin/bootstrap --python-install.")
            target = folder / "uv"
            with archive.open(member) as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out)
    except (zipfile.BadZipFile, OSError) as exc:
        raise TtsrigError(f"cannot read uv from {wheel}: {exc}. Remove it and re-run bin/bootstrap "
                          "--python-install.") from None
    target.chmod(0o755)
    return target


def uv_env() -> dict[str, str]:
    """The user's uv settings (other mirrors, other download lists, other folders) must not choose the build."""
    return {key: value for key, value in os.environ.items() if not key.startswith("UV_") or key == "UV_CACHE_DIR"}


def uv_output(cmd: list[str]) -> tuple[int, str]:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, env=uv_env(), timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 1, str(getattr(exc, "strerror", None) or exc)
    return out.returncode, out.stdout + out.stderr


def find_download(uv: Path) -> Download:
    """The newest baseline-level CPython 3.11 build uv knows, from the list built into uv (no network)."""
    code, output = uv_output([str(uv), "python", "list", "--no-config", "--offline", "--only-downloads",
                              "--output-format", "json", REQUEST])
    try:
        found = json.loads(output) if code == 0 else []
    except ValueError:
        found = []
    if not found:
        last = (output.strip().splitlines() or ["no output"])[-1]
        raise TtsrigError(f"uv knows no download for {REQUEST} ({last}). Install a CPython "
                          f"{MINOR[0]}.{MINOR[1]} another way and pass --python.")
    download = Download(found[0]["key"], found[0]["url"])
    refuse_above_baseline(f"uv's download {download.key}", level_of(download.key))
    return download


# --- the installation -------------------------------------------------------


def installed_python(folder: Path) -> Path | None:
    """The baseline CPython 3.11 uv installed into `folder`, if any (uv links the minor version to the newest
    patch it installed; builds of other levels are never picked)."""
    exe = f"python{MINOR[0]}.{MINOR[1]}"
    linked = folder / REQUEST / "bin" / exe
    if linked.is_file():
        return linked
    pattern = re.compile(rf"^cpython-{MINOR[0]}\.{MINOR[1]}\.(\d+)-linux-{BASELINE}-gnu$")
    found = sorted(((int(match[1]), entry) for entry in (folder.iterdir() if folder.is_dir() else [])
                    for match in [pattern.match(entry.name)] if match and (entry / "bin" / exe).is_file()),
                   key=lambda pair: pair[0])
    return found[-1][1] / "bin" / exe if found else None


def local_archive(download: Download, folders: list[Path]) -> Path | None:
    """The archive, copied by the user into one of `folders` under its own name."""
    for folder in folders:
        if (folder / download.filename).is_file():
            return folder / download.filename
    return None


def refuse_other_levels(download: Download, folders: list[Path]) -> None:
    """A build of another level copied instead of the baseline one is named, never used."""
    prefix = download.filename.split(f"-{BASELINE}-", 1)[0]  # cpython-3.11.18+20261110
    for folder in folders:
        for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
            if entry.name.startswith(prefix) and level_of(entry.name) not in ("", BASELINE):
                raise TtsrigError(f"{entry} is built for {level_of(entry.name)}, not the baseline x86-64 level: "
                                  "such a build dies with SIGILL on CPUs below its level. Remove it, download "
                                  f"{download.filename} ({download.url}) into {folder}, and re-run "
                                  "bin/bootstrap --python-install.")


@contextmanager
def mirror_of(archive: Path | None, download: Download) -> Iterator[list[str]]:
    """uv's --mirror option serving `archive` as file://DIR/<release>/<name>; no option without one."""
    if archive is None:
        yield []
        return
    with tempfile.TemporaryDirectory(prefix="ttsrig-python-mirror-") as mirror:
        (Path(mirror) / download.release).mkdir()
        (Path(mirror) / download.release / download.filename).symlink_to(archive.resolve())
        yield ["--mirror", Path(mirror).as_uri()]


@contextmanager
def removed_if_failed(folder: Path) -> Iterator[None]:
    """What a failed step adds to `folder` (and the folder, when it made it) is removed again: uv can leave
    a half-extracted Python there when an archive is damaged."""
    if not folder.exists():
        with paths.removed_on_failure(folder, lambda: False):  # it, and the parents made for it
            yield
        return
    before = {entry.name for entry in folder.iterdir()}
    try:
        yield
    except BaseException:
        if folder.is_dir():
            for entry in folder.iterdir():
                if entry.name not in before:
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink()
        raise


def failure_message(output: str, download: Download, archive: Path | None, downloads: Path) -> str:
    """One line: what went wrong with uv's install, and what to do next."""
    rerun = "re-run bin/bootstrap --python-install"
    if "Hash mismatch" in output:
        where = archive or download.url
        return (f"{where} does not match the sha256 uv has for {download.key}: it is damaged or not the official "
                f"build. Remove it, download {download.filename} again from {download.url} into {downloads}, and "
                f"{rerun}.")
    if any(needle in output for needle in UNREACHABLE):
        return (f"could not download {download.key} (no network?): on a connected machine download "
                f"{download.url}, copy the file {download.filename} into {downloads} (or set {DOWNLOADS_ENV}), "
                f"and {rerun} (add --offline to skip the network).")
    last = (output.strip().splitlines() or ["no output"])[-1].strip()
    return f"uv could not install {download.key}: {last}. Fix the cause and {rerun}."


def install(uv: Path, download: Download, folder: Path, archive: Path | None, offline: bool,
            downloads: Path) -> Path:
    """uv installs `download` into `folder`; returns its python3.11. Nothing is left of a failed install."""
    with removed_if_failed(folder), mirror_of(archive, download) as mirror:
        # --no-bin: nothing goes into ~/.local/bin; the request is the exact key, so no other level is chosen.
        code, output = uv_output([str(uv), "python", "install", "--no-config", "--no-bin", "--install-dir",
                                  str(folder), *mirror, *(["--offline"] if offline else []), download.key])
        if code != 0:
            raise TtsrigError(failure_message(output, download, archive, downloads))
        python = installed_python(folder)
        if python is None:
            raise TtsrigError(f"uv said it installed {download.key}, but {folder} holds no baseline "
                              f"python{MINOR[0]}.{MINOR[1]}. Remove {folder} and re-run bin/bootstrap --python-install.")
    return python


def planned_download(uv_wheel: Path) -> Download:
    """What --python-install would download (for --dry-run): uv's own list, nothing installed."""
    with tempfile.TemporaryDirectory(prefix="ttsrig-uv-") as scratch:
        return find_download(extract_uv(uv_wheel, Path(scratch)))


def ensure_python(uv_wheel: Path, folder: Path, archive_folders: list[Path], offline: bool) -> Path:
    """The baseline CPython 3.11 in `folder`, installed by uv from the wheel first when it is missing.

    archive_folders: where a copied archive is looked for, the first being the one messages name.
    """
    python = installed_python(folder)
    if python:
        return python
    with tempfile.TemporaryDirectory(prefix="ttsrig-uv-") as scratch:
        uv = extract_uv(uv_wheel, Path(scratch))
        download = find_download(uv)
        archive = local_archive(download, archive_folders)
        if archive is None:
            refuse_other_levels(download, archive_folders)
        return install(uv, download, folder, archive, offline, archive_folders[0])
