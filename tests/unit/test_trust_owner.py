"""The checkpoint trust list decides whose pickles run, so a list another user can change is refused, as ssh
refuses keys (issue: trust, second round, class 4). The end-to-end attack (root's `patches convert` running
the pickle another user trusted for it) is tests/models/test_pickle_attacks.py's."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from envcheck.errors import TtsrigError
from patches import cli as patches_cli
from patches.trust import TrustList

AS_ROOT = os.geteuid() == 0
NOBODY = 65534
DIGEST = "ab" * 32


def trust_list(folder: Path, mode: int = 0o600) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    path = folder / "trusted-checkpoints.json"
    path.write_text(json.dumps({"format": 1, "checkpoints": {DIGEST: {"path": "/x", "note": "", "added": "t"}}}))
    path.chmod(mode)
    return path


def test_a_private_list_is_believed(tmp_path: Path) -> None:
    assert TrustList.load(trust_list(tmp_path / "config")).contains(DIGEST)


@pytest.mark.parametrize("mode, who", [(0o666, "group and others"), (0o620, "its group")])
def test_a_list_others_may_write_is_refused_naming_chmod(tmp_path: Path, mode: int, who: str) -> None:
    path = trust_list(tmp_path / "config", mode)
    with pytest.raises(TtsrigError) as refused:
        TrustList.load(path)
    message = str(refused.value)
    assert f"is writable by {who} (mode {mode:04o})" in message and f"chmod go-w {path}" in message
    assert "Nothing in it was trusted" in message and "\n" not in message


def test_a_list_in_a_folder_others_may_write_is_refused(tmp_path: Path) -> None:
    path = trust_list(tmp_path / "config")
    path.parent.chmod(0o777)
    with pytest.raises(TtsrigError, match=rf"its folder {path.parent} is writable by group and others .*chmod go-w"):
        TrustList.load(path)


def test_a_list_in_a_sticky_shared_folder_is_believed(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # as /tmp: others may create files there, never replace ours
    path = shared / "trust.json"
    path.write_text(json.dumps({"format": 1, "checkpoints": {}}))
    path.chmod(0o600)
    assert TrustList.load(path).entries == {}


@pytest.mark.skipif(not AS_ROOT, reason="making a file another user owns needs root (CI runs as root)")
def test_a_list_another_user_owns_or_links_to_is_refused(tmp_path: Path) -> None:
    theirs = trust_list(tmp_path / "theirs", 0o644)
    os.chown(theirs, NOBODY, NOBODY)
    with pytest.raises(TtsrigError, match=rf"belongs to another user \(uid {NOBODY}\).*own"):
        TrustList.load(theirs)
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    link = mine / "trusted-checkpoints.json"
    link.symlink_to(theirs)  # my link, their file: they still decide
    with pytest.raises(TtsrigError, match="belongs to another user"):
        TrustList.load(link)
    planted = mine / "planted.json"
    planted.symlink_to(trust_list(tmp_path / "mine-too"))
    os.lchown(planted, NOBODY, NOBODY)  # their link to my file: they choose which file it is
    with pytest.raises(TtsrigError, match="the trust list's link .* belongs to another user"):
        TrustList.load(planted)


def test_the_cli_refuses_in_one_line_and_adds_nothing(tmp_path: Path, capsys) -> None:
    path = trust_list(tmp_path / "config", 0o666)
    before = path.read_bytes()
    assert patches_cli.main(["trust", "--trust-file", str(path), "list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("patches: refused the checkpoint trust list") and len(err.strip().splitlines()) == 1
    assert path.read_bytes() == before


def test_a_new_list_is_private_from_the_start(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(os, "umask", os.umask)  # restored after the test
    old = os.umask(0o002)  # a shared-group umask would otherwise make both group-writable
    try:
        path = tmp_path / "config" / "ttsrig" / "trusted-checkpoints.json"
        trust = TrustList.load(path)
        trust.entries[DIGEST] = {"path": "/x", "note": "", "added": "t"}
        trust.save()
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    assert TrustList.load(path).contains(DIGEST)  # and so it is believed next time


@pytest.mark.skipif(not AS_ROOT, reason="making a link another user owns needs root (CI runs as root)")
def test_a_folder_reached_through_another_users_link_is_refused(tmp_path: Path) -> None:
    """A sticky shared folder lets its other users replace their own links: one on the way to the list (or to a
    cached file trainers.fetch --trust vouches for) lets them choose what is behind it."""
    mine = trust_list(tmp_path / "mine")
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    link = shared / "config"
    link.symlink_to(mine.parent)
    os.lchown(link, NOBODY, NOBODY)
    with pytest.raises(TtsrigError, match=rf"its folder's link {link} belongs to another user \(uid {NOBODY}\)"):
        TrustList.load(link / mine.name)
    assert TrustList.load(mine).contains(DIGEST)  # the same file by its own path is believed


def test_the_check_is_shared_with_its_own_words(tmp_path: Path) -> None:
    from patches.trust import exposure

    path = trust_list(tmp_path / "cache", 0o666)
    said = exposure(path, what="the file", link_what="its link", harm="who could replace the file", own_fix="X")
    assert said == f"the file {path} is writable by group and others (mode 0666), who could replace the file. " \
                   f"Fix: chmod go-w {path}"
    assert exposure(path.with_name("missing"), what="the file", link_what="its link") is None
