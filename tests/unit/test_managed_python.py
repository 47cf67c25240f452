"""bin/bootstrap --python-install, with the real uv of requirements/bootstrap.txt and no network.

No real python-build-standalone archive can be fetched here, so the successful install is shown with a
download list of uv's own format (--python-downloads-json-url, added by a wrapper around the real uv)
naming a small archive built from the Python running these tests. uv's built-in list is used everywhere
else: what it asks for, and what it refuses.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

from envcheck import bootstrap, bootstrap_python, bootstrap_wheels, locks, managed_python
from envcheck.errors import TtsrigError

ROOT = Path(__file__).resolve().parents[2]
RELEASE = "20990101"  # the made-up release of the test archive
TEST_ARCHIVE = f"cpython-3.11.7+{RELEASE}-x86_64-unknown-linux-gnu-install_only_stripped.tar.gz"
GITHUB = "https://github.com/astral-sh/python-build-standalone/releases/download"  # what uv's --mirror replaces


@pytest.fixture(scope="session")
def uv_wheel(tmp_path_factory, pytestconfig) -> Path:
    """The uv wheel of requirements/bootstrap.txt, hash-checked: from the user's wheel cache, else
    downloaded once (kept in pytest's cache)."""
    pins = {"uv": locks.parse_lock(ROOT / "requirements" / "bootstrap.txt")["uv"]}
    cache = getattr(pytestconfig, "cache", None)
    kept = Path(cache.mkdir("uv-wheel")) if cache else tmp_path_factory.mktemp("uv-wheel")
    good, _ = bootstrap_wheels.verified_wheels(pins, [bootstrap_wheels.default_wheel_cache(), kept])
    if not good:
        try:
            bootstrap_wheels.fetch_installer_wheels(sys.executable, kept, bootstrap_wheels.run_download)
        except TtsrigError as exc:
            pytest.skip(f"the uv wheel is not on disk and cannot be downloaded: {exc}")
        good, _ = bootstrap_wheels.verified_wheels(pins, [kept])
    return good["uv"]


@pytest.fixture
def uv(uv_wheel, tmp_path) -> Path:
    folder = tmp_path / "uv-bin"
    folder.mkdir()
    return managed_python.extract_uv(uv_wheel, folder)


def logging_uv(real: Path, folder: Path, downloads_json: Path | None = None) -> Path:
    """A uv that records its arguments, then runs the real one (with another download list, if given)."""
    extra = f' --python-downloads-json-url "{downloads_json}"' if downloads_json else ""
    script = folder / "uv-wrapper"
    script.write_text(f'#!/bin/sh\necho "$*" >>"{folder}/calls"\nexec "{real}" "$@"{extra}\n')
    script.chmod(0o755)
    return script


def wheel_for(uv_program: Path, tmp_path: Path) -> Path:
    """A wheel-shaped zip holding `uv_program` where a uv wheel has its binary."""
    wheel = tmp_path / "uv-0.13.9-py3-none-manylinux_2_17_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.write(uv_program, "uv-0.13.9.data/scripts/uv")
    return wheel


def calls(folder: Path) -> list[str]:
    log = folder / "calls"
    return log.read_text().splitlines() if log.exists() else []


def tar_of(files: dict[str, bytes | str], executable: tuple[str, ...] = ()) -> bytes:
    """A .tar.gz holding `files` (a str value is a symlink target)."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            if isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content
                archive.addfile(info)
                continue
            info.size, info.mode = len(content), 0o755 if name in executable else 0o644
            archive.addfile(info, io.BytesIO(content))
    return data.getvalue()


def downloads_list(tmp_path: Path, archive: bytes) -> Path:
    """A download list in uv's format that knows one baseline CPython 3.11.7 build, with `archive`'s sha256."""
    key = "cpython-3.11.7-linux-x86_64-gnu"
    entry = {"name": "cpython", "arch": {"family": "x86_64", "variant": None}, "os": "linux", "libc": "gnu",
             "major": 3, "minor": 11, "patch": 7, "prerelease": "", "variant": None, "build": RELEASE,
             "url": f"{GITHUB}/{RELEASE}/{TEST_ARCHIVE.replace('+', '%2B')}",
             "sha256": hashlib.sha256(archive).hexdigest()}
    path = tmp_path / "downloads.json"
    path.write_text(json.dumps({key: entry}))
    return path


def entries(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir()) if folder.exists() else []


# --- what is asked of uv -----------------------------------------------------------


def test_the_request_is_the_baseline_build_of_cpython_3_11(uv, tmp_path):
    download = managed_python.find_download(uv)
    assert managed_python.REQUEST == "cpython-3.11-linux-x86_64-gnu"
    assert download.key.startswith("cpython-3.11.") and download.key.endswith("-linux-x86_64-gnu")
    assert managed_python.level_of(download.key) == "x86_64"
    assert "-x86_64-unknown-linux-gnu-install_only" in download.filename and "%" not in download.filename
    assert download.url.endswith("/" + download.filename.replace("+", "%2B"))
    assert download.release.isdigit()


def test_uv_is_asked_for_that_exact_key_and_never_for_another_level(uv, tmp_path):
    wrapped = logging_uv(uv, tmp_path)
    folder, downloads = tmp_path / "pythons", tmp_path / "downloads"
    with pytest.raises(TtsrigError):
        managed_python.ensure_python(wheel_for(wrapped, tmp_path), folder, [downloads], offline=True)
    listing, install = calls(tmp_path)
    assert listing.split()[-1] == "cpython-3.11-linux-x86_64-gnu"
    key = install.split()[-1]
    assert key.startswith("cpython-3.11.") and key.endswith("-linux-x86_64-gnu")
    assert "--no-bin" in install and f"--install-dir {folder}" in install


# --- offline, and damaged or foreign archives ---------------------------------------


def test_offline_without_the_archive_names_the_file_its_url_and_the_folder(uv_wheel, tmp_path):
    folder, downloads = tmp_path / "share" / "ttsrig" / "python", tmp_path / "downloads"
    with pytest.raises(TtsrigError) as caught:
        managed_python.ensure_python(uv_wheel, folder, [downloads], offline=True)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("could not download cpython-3.11.")
    assert "-x86_64-unknown-linux-gnu-install_only" in message and "https://" in message
    assert f"into {downloads}" in message and "re-run bin/bootstrap --python-install" in message
    assert not (tmp_path / "share").exists()  # the folder and the parents made for it are gone


def test_an_archive_with_the_wrong_hash_is_refused_and_nothing_is_left(uv, uv_wheel, tmp_path):
    download = managed_python.find_download(uv)
    downloads, folder = tmp_path / "downloads", tmp_path / "pythons"
    downloads.mkdir()
    folder.mkdir()
    (folder / "kept.txt").write_text("the user's")
    (downloads / download.filename).write_bytes(tar_of({"python/bin/python3.11": b"#!/bin/sh\n"}))
    with pytest.raises(TtsrigError) as caught:
        managed_python.ensure_python(uv_wheel, folder, [downloads], offline=True)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{downloads / download.filename} does not match the sha256 uv has for "
                              f"{download.key}")
    assert f"download {download.filename} again from {download.url} into {downloads}" in message
    assert entries(folder) == ["kept.txt"]  # uv's lock, temp folder and extraction are all gone


def test_an_archive_for_a_higher_level_is_named_and_never_given_to_uv(uv, tmp_path):
    wrapped = logging_uv(uv, tmp_path)
    download = managed_python.find_download(uv)
    downloads, folder = tmp_path / "downloads", tmp_path / "pythons"
    downloads.mkdir()
    v3 = downloads / download.filename.replace("-x86_64-", "-x86_64_v3-")
    v3.write_bytes(b"an x86_64_v3 build")
    with pytest.raises(TtsrigError, match=rf"^{re.escape(str(v3))} is built for x86_64_v3, not the baseline x86-64 "
                                          r"level: such a build dies with SIGILL"):
        managed_python.ensure_python(wheel_for(wrapped, tmp_path), folder, [downloads], offline=True)
    assert not any(" install " in f" {call} " for call in calls(tmp_path))
    assert not folder.exists()


@pytest.mark.parametrize("name, level", [
    ("cpython-3.11.18-linux-x86_64-gnu", "x86_64"),
    ("cpython-3.11.18-linux-x86_64_v2-gnu", "x86_64_v2"),
    ("cpython-3.11.18+20261110-x86_64_v4-unknown-linux-gnu-install_only_stripped.tar.gz", "x86_64_v4"),
    ("cpython-3.11.18-linux-aarch64-gnu", ""),
])
def test_levels_are_read_and_only_the_baseline_passes(name, level):
    assert managed_python.level_of(name) == level
    if level == "x86_64":
        managed_python.refuse_above_baseline(name, level)
    else:
        with pytest.raises(TtsrigError, match="dies with SIGILL"):
            managed_python.refuse_above_baseline(name, level)


def test_an_installed_build_of_another_level_is_never_picked(tmp_path):
    for name in ("cpython-3.11.9-linux-x86_64_v3-gnu", "cpython-3.11.9+freethreaded-linux-x86_64-gnu"):
        (tmp_path / name / "bin").mkdir(parents=True)
        (tmp_path / name / "bin" / "python3.11").write_text("")
    assert managed_python.installed_python(tmp_path) is None
    (tmp_path / "cpython-3.11.4-linux-x86_64-gnu" / "bin").mkdir(parents=True)
    (tmp_path / "cpython-3.11.4-linux-x86_64-gnu" / "bin" / "python3.11").write_text("")
    assert managed_python.installed_python(tmp_path) == tmp_path / "cpython-3.11.4-linux-x86_64-gnu/bin/python3.11"


def test_a_network_failure_is_one_line_naming_what_to_copy_where():
    # uv 0.13.9's output when the download host does not resolve.
    output = ("error: Failed to install cpython-3.11.18-linux-x86_64-gnu\n  cause: Request failed after 3 retries\n"
              "  cause: dns error\n  cause: failed to lookup address information: Name or service not known\n")
    download = managed_python.Download("cpython-3.11.18-linux-x86_64-gnu",
                                       f"{GITHUB}/20261110/cpython-3.11.18%2B20261110-x86_64-unknown-linux-gnu"
                                       "-install_only_stripped.tar.gz")
    message = managed_python.failure_message(output, download, None, Path("/copy/here"))
    assert message == (
        "could not download cpython-3.11.18-linux-x86_64-gnu (no network?): on a connected machine download "
        f"{download.url}, copy the file cpython-3.11.18+20261110-x86_64-unknown-linux-gnu-install_only_stripped"
        ".tar.gz into /copy/here (or set TTSRIG_PYTHON_DOWNLOADS), and re-run bin/bootstrap --python-install "
        "(add --offline to skip the network).")


# --- a whole install, from an archive copied into the downloads folder ----------------


def python_archive() -> bytes:
    """An install_only-shaped archive whose python3.11 runs the Python of these tests."""
    data = sysconfig.get_path("stdlib")
    config = next(Path(data).glob("_sysconfigdata_*.py"))
    program = f'#!/bin/sh\nexec "{os.path.realpath(sys.executable)}" "$@"\n'.encode()
    return tar_of({"python/bin/python3.11": program, "python/bin/python3": "python3.11",
                   f"python/lib/python3.11/{config.name}": config.read_bytes()},
                  executable=("python/bin/python3.11",))


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="the test archive wraps this Python: it must be 3.11")
def test_an_archive_in_the_downloads_folder_is_installed_and_found_again(uv, tmp_path):
    archive = python_archive()
    wrapped = logging_uv(uv, tmp_path, downloads_list(tmp_path, archive))
    downloads, folder = tmp_path / "downloads", tmp_path / "pythons"
    downloads.mkdir()
    (downloads / TEST_ARCHIVE).write_bytes(archive)
    python = managed_python.ensure_python(wheel_for(wrapped, tmp_path), folder, [downloads], offline=True)
    assert python == folder / "cpython-3.11-linux-x86_64-gnu" / "bin" / "python3.11"
    assert "cpython-3.11.7-linux-x86_64-gnu" in entries(folder)
    assert "--mirror file://" in calls(tmp_path)[-1]  # served from the folder, through uv's hash check
    found = bootstrap_python.inspect_python(str(python))
    assert (found.implementation, found.minor, found.has_venv) == ("CPython", (3, 11), True)
    # Installed: the next run asks uv nothing.
    before = calls(tmp_path)
    assert managed_python.ensure_python(wheel_for(wrapped, tmp_path), folder, [downloads], offline=True) == python
    assert calls(tmp_path) == before


def test_a_half_extracted_install_is_removed(uv, tmp_path):
    archive = tar_of({"python/bin/python3.11": b"#!/bin/sh\n"})  # right hash, but no lib/: uv stops half-way
    wrapped = logging_uv(uv, tmp_path, downloads_list(tmp_path, archive))
    downloads, folder = tmp_path / "downloads", tmp_path / "pythons"
    downloads.mkdir()
    folder.mkdir()
    (downloads / TEST_ARCHIVE).write_bytes(archive)
    with pytest.raises(TtsrigError, match="^uv could not install cpython-3.11.7-linux-x86_64-gnu: .*re-run "
                                          "bin/bootstrap --python-install"):
        managed_python.ensure_python(wheel_for(wrapped, tmp_path), folder, [downloads], offline=True)
    assert entries(folder) == []


# --- bin/bootstrap ---------------------------------------------------------------


def test_python_and_python_install_together_are_refused(capsys, tmp_path):
    assert bootstrap.main(["--python", sys.executable, "--python-install", "--venv", str(tmp_path / "v")]) == 2
    assert capsys.readouterr().err == ("bootstrap: --python and --python-install both choose the Python: pass one "
                                       "of them.\n")


def test_offline_without_the_uv_wheel_says_what_to_copy_where(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv(bootstrap_wheels.WHEEL_CACHE_ENV, str(tmp_path / "wheels"))
    monkeypatch.setenv(managed_python.PYTHON_DIR_ENV, str(tmp_path / "pythons"))
    assert bootstrap.main(["--python-install", "--offline", "--venv", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bootstrap: --python-install runs uv from its wheel (uv 0.13.9")
    assert f"copy DIR's files into {tmp_path / 'wheels'}" in err
    assert not (tmp_path / "pythons").exists() and not (tmp_path / "v").exists()


def test_main_offline_names_the_archive_and_builds_nothing(uv_wheel, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv(bootstrap_wheels.WHEEL_CACHE_ENV, str(uv_wheel.parent))
    monkeypatch.setenv(managed_python.PYTHON_DIR_ENV, str(tmp_path / "pythons"))
    assert bootstrap.main(["--python-install", "--offline", "--python-downloads", str(tmp_path / "dl"),
                           "--venv", str(tmp_path / "v")]) == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("bootstrap: could not download cpython-3.11.") and f"into {tmp_path / 'dl'}" in last
    assert not (tmp_path / "pythons").exists() and not (tmp_path / "v").exists()


def test_the_dry_run_says_what_would_be_installed_and_installs_nothing(uv_wheel, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv(bootstrap_wheels.WHEEL_CACHE_ENV, str(uv_wheel.parent))
    monkeypatch.setenv(managed_python.PYTHON_DIR_ENV, str(tmp_path / "pythons"))
    assert bootstrap.main(["--python-install", "--dry-run", "--offline", "--venv", str(tmp_path / "v")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("python: --python-install would install cpython-3.11.")
    assert "-linux-x86_64-gnu (" in out and f"into {tmp_path / 'pythons'}" in out
    assert out.endswith("dry run: nothing was changed\n")
    assert not (tmp_path / "pythons").exists()
