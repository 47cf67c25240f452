"""hf:// ids and checked settings, without torch (trainers/hub.py, trainers/config_check.py, voices/config.py)."""
from __future__ import annotations

import sys

import pytest

from envcheck.errors import TtsrigError
from trainers import config_check, hub


@pytest.mark.parametrize("spec,problem", [
    ("hf://onlyorg", "only an organisation"), ("hf://org/repo", "no file"), ("hf://../x", "'..'"),
    ("hf://org/repo/../../etc/passwd", "'..' part"), ("hf://org/repo/", "missing"), ("hf://-org/repo/f", "'-org'"),
    ("hf://org/re--po/f", "'re--po'"), ("hf://org/repo/a//b", "empty"), ("/local/path", "not a Hugging Face"),
])
def test_a_bad_hf_id_is_one_line_naming_the_form(spec, problem):
    with pytest.raises(TtsrigError) as refused:
        hub.parse(spec)
    message = str(refused.value)
    assert "\n" not in message and hub.FORM in message and problem in message


def test_a_good_hf_id_names_its_repository_and_file():
    parsed = hub.parse("hf://SWivid/F5-TTS/F5TTS_v1_Base/model_1250000.safetensors")
    assert (parsed.repo, parsed.filename) == ("SWivid/F5-TTS", "F5TTS_v1_Base/model_1250000.safetensors")
    assert str(parsed) == hub.EXAMPLE
    assert hub.is_repo_id("charactr/vocos-mel-24khz") and not hub.is_repo_id("charactr/vocos/x")
    assert not hub.is_repo_id("../vocos") and not hub.is_repo_id("vocos")


@pytest.mark.parametrize("value,kind,ok", [
    (3, config_check.POSITIVE, True), (True, config_check.POSITIVE, False), ("3", config_check.POSITIVE, False),
    (0, config_check.POSITIVE, False), (0, config_check.COUNT, True), (1 << 30, config_check.POSITIVE, False),
    (2, config_check.NUMBER, True), (0.5, config_check.NUMBER, True), (False, config_check.NUMBER, False),
    ("center", config_check.one_of("center", "same"), True), ("os.system", config_check.one_of("center"), False),
    (1, config_check.one_of(True), False), (None, config_check.optional(config_check.POSITIVE), True),
])
def test_kinds_accept_plain_values_only(value, kind, ok):
    assert kind.accepts(value) is ok


def test_check_names_unknown_and_missing_settings_in_one_line():
    fields = {"dim": config_check.POSITIVE, "padding": config_check.one_of("center")}
    with pytest.raises(TtsrigError, match=r"unknown setting class_path; allowed: dim, padding"):
        config_check.check({"dim": 1, "class_path": "os.system"}, fields, "x")
    with pytest.raises(TtsrigError, match=r"x: missing dim"):
        config_check.check({"padding": "center"}, fields, "x", required=("dim",))
    with pytest.raises(TtsrigError, match=r"x is list, not a mapping"):
        config_check.check(["touch marker"], fields, "x")


def test_voice_configs_load_without_torch(tmp_path):
    from voices import config as voice_config

    partial = tmp_path / "partial.toml"
    partial.write_text("steps = 8\n")
    assert voice_config.load("strong", str(partial))["cfg_strength"] == 2.0
    assert "torch" not in sys.modules


# -- issue 26: the Hugging Face cache, checked against the hub's own hash; offline, and its one switch ---------

def cached(tmp_path, data: bytes, blob_name: str):
    """A snapshot file linked to blobs/<blob_name>, as huggingface_hub keeps a download."""
    (tmp_path / "blobs").mkdir()
    (tmp_path / "blobs" / blob_name).write_bytes(data)
    (tmp_path / "snapshots").mkdir()
    link = tmp_path / "snapshots" / "model.safetensors"
    link.symlink_to("../blobs/" + blob_name)
    return link


def test_a_cached_large_file_is_checked_against_the_sha256_it_is_kept_under(tmp_path):
    import hashlib

    data = b"weights" * 1000
    link = cached(tmp_path, data, hashlib.sha256(data).hexdigest())
    assert "sha256 matches" in hub.cache_check(link)
    link.resolve().write_bytes(data + b"\0")  # damaged or replaced after the download
    with pytest.raises(hub.DamagedCopy) as damaged:
        hub.cache_check(link)
    message = str(damaged.value)
    assert "\n" not in message and f"Delete {link.resolve()}" in message and hub.FETCH_COMMAND in message


def hub_answers(monkeypatch, etag: str | Exception) -> list[str]:
    """huggingface_hub, online, answering `etag` for every file (or failing with it); the URLs asked."""
    import types

    asked: list[str] = []

    def metadata(url):
        asked.append(url)
        if isinstance(etag, Exception):
            raise etag
        return types.SimpleNamespace(etag=etag, commit_hash="c" * 40, size=1, location=url)

    stub = types.SimpleNamespace(get_hf_file_metadata=metadata, hf_hub_url=lambda repo, filename: (
        f"https://huggingface.co/{repo}/resolve/main/{filename}"))
    monkeypatch.setitem(sys.modules, "huggingface_hub", stub)
    for name in ("HF_HUB_OFFLINE", "TTSRIG_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    return asked


PRETRAIN = hub.HubFile("yl4579/StyleTTS2-LibriTTS", "Models/LibriTTS/epochs_2nd_00020.pth")


def test_offline_a_blob_matching_its_own_name_is_not_called_the_hubs(tmp_path, monkeypatch):
    """Whoever can write the cache chooses both the bytes and the blob's name: offline, a match says the copy is
    whole, never that the hub published it (the tester's swapped pretrain was filed under its own sha256)."""
    import hashlib

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data = b"\x80\x02cposix\nsystem\n"  # any bytes: the check never unpickles
    link = cached(tmp_path, data, hashlib.sha256(data).hexdigest())
    said = hub.cache_check(link, PRETRAIN)
    assert "matches the name the cache filed it under" in said and "hub was not asked (offline" in said, said
    assert "publishes" not in said


def test_online_the_hubs_answer_is_what_the_bytes_are_compared_with(tmp_path, monkeypatch):
    import hashlib

    data = b"weights" * 1000
    link = cached(tmp_path, data, hashlib.sha256(data).hexdigest())
    asked = hub_answers(monkeypatch, hashlib.sha256(data).hexdigest())
    assert hub.cache_check(link, PRETRAIN) == ("Hugging Face: its sha256 matches the one the hub publishes for it "
                                               "(asked just now)")
    assert asked == [f"https://huggingface.co/{PRETRAIN.repo}/resolve/main/{PRETRAIN.filename}"]


def test_online_a_blob_matching_its_name_but_not_the_hub_is_refused(tmp_path, monkeypatch):
    import hashlib

    data = b"a payload filed under its own sha256"
    link = cached(tmp_path, data, hashlib.sha256(data).hexdigest())
    hub_answers(monkeypatch, "ab" * 32)
    with pytest.raises(hub.DamagedCopy) as damaged:
        hub.cache_check(link, PRETRAIN)
    message = str(damaged.value)
    assert "\n" not in message and f"not the {'ab' * 32} the hub publishes for {PRETRAIN}" in message
    assert f"Delete {link.resolve()}" in message


def test_online_a_hub_that_cannot_be_asked_is_said_so(tmp_path, monkeypatch):
    import hashlib

    data = b"weights"
    link = cached(tmp_path, data, hashlib.sha256(data).hexdigest())
    hub_answers(monkeypatch, ConnectionError("Connection refused. Try again later."))
    said = hub.cache_check(link, PRETRAIN)
    assert "the hub could not be asked (Connection refused)" in said and "publishes" not in said, said


def test_the_digest_given_is_the_one_compared(tmp_path, monkeypatch):
    """fetch hashes the bytes it read for the trust decision: those are what is compared, not a second read."""
    import hashlib

    data = b"weights"
    link = cached(tmp_path, data, hashlib.sha256(data).hexdigest())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(hub.DamagedCopy, match="has sha256 " + "cd" * 32):
        hub.cache_check(link, PRETRAIN, digest="cd" * 32)


def test_a_small_git_file_or_a_plain_file_is_not_claimed_to_be_checked(tmp_path):
    link = cached(tmp_path, b"dim: 1\n", "a" * 40)  # git blob ids are 40 hex digits
    assert "not checked" in hub.cache_check(link)
    (tmp_path / "plain").write_bytes(b"x")
    assert "no hub hash" in hub.cache_check(tmp_path / "plain")


@pytest.mark.parametrize("env, offline", [
    ({}, False), ({"HF_HUB_OFFLINE": "1"}, True), ({"HF_HUB_OFFLINE": "0"}, False), ({"TTSRIG_OFFLINE": "1"}, True),
    ({"TTSRIG_OFFLINE": "0"}, False)])
def test_offline_is_either_switch(monkeypatch, env, offline):
    for name in ("HF_HUB_OFFLINE", "TTSRIG_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert hub.offline() is offline


def test_the_cause_of_a_library_error_is_its_first_sentence():
    error = ValueError("Cannot find the requested files in the disk cache. To enable hf.co look-ups, set X.\nmore")
    assert hub.cause(error) == "Cannot find the requested files in the disk cache"
    assert hub.cause(KeyError()) == "KeyError"
