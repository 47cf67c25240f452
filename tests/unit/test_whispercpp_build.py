"""envcheck.whispercpp_build's failures, each one line, nothing half-written (the build itself runs in the
models tests under `bin/test --ci` and in bootstrap's --with asr on a pre-v2 CPU)."""
from __future__ import annotations

import hashlib

import pytest

from envcheck import whispercpp_build
from envcheck.errors import TtsrigError


def test_offline_without_the_cached_source_names_the_url_and_the_folder(tmp_path):
    with pytest.raises(TtsrigError, match=rf"not in {tmp_path} and this run is offline: download "
                                          rf"{whispercpp_build.SOURCE_URL} .* copy it into {tmp_path}"):
        whispercpp_build.source_archive(tmp_path, offline=True)


def test_a_cached_source_of_other_bytes_is_not_used_offline(tmp_path):
    (tmp_path / whispercpp_build.archive_name()).write_bytes(b"not the pinned archive")
    with pytest.raises(TtsrigError, match="this run is offline"):
        whispercpp_build.source_archive(tmp_path, offline=True)


def test_the_pinned_cached_source_is_used_without_the_network(tmp_path, monkeypatch):
    data = b"stand-in archive"
    monkeypatch.setattr(whispercpp_build, "SOURCE_SHA256", hashlib.sha256(data).hexdigest())
    (tmp_path / whispercpp_build.archive_name()).write_bytes(data)
    assert whispercpp_build.source_archive(tmp_path, offline=True) == tmp_path / whispercpp_build.archive_name()


def test_a_download_with_another_hash_is_refused_and_removed(tmp_path, monkeypatch):
    class Response:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self):
            return b"tampered"

    monkeypatch.setattr(whispercpp_build.urllib.request, "urlopen", lambda url, timeout: Response())
    with pytest.raises(TtsrigError, match="has sha256 .*not the pinned .*refused"):
        whispercpp_build.source_archive(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_missing_build_tools_are_one_line_naming_the_packages(tmp_path, monkeypatch):
    monkeypatch.setattr(whispercpp_build.shutil, "which", lambda tool: None if tool in ("cmake", "c++") else "/bin/x")
    with pytest.raises(TtsrigError, match=r"needs cmake, c\+\+ \(sudo apt-get install cmake g\+\+\), which this machine lacks$"):
        whispercpp_build.build(tmp_path / "bin", tmp_path, portable=True)
    assert not (tmp_path / "bin").exists()
