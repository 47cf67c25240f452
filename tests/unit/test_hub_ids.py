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
