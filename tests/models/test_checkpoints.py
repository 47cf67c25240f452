"""Safe checkpoint loading: what loads freely, what needs trust, what is refused without running."""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import munch
import pytest
import torch
from safetensors.torch import save_file

from envcheck.digests import file_sha256
from envcheck.errors import TtsrigError
from patches import checkpoints
from patches.checkpoints import CheckpointError, UntrustedCheckpoint, load_checkpoint
from patches.trust import TrustList

ROOT = Path(__file__).resolve().parents[2]


class RunsCode:
    """Unpickling this runs a shell command: the marker file proves whether it ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def state_dict() -> dict:
    torch.manual_seed(0)
    return torch.nn.Linear(4, 3).state_dict()


def styletts2_like() -> dict:
    """The shape of a published StyleTTS2 checkpoint: modules in a Munch, optimizer state, counters."""
    decoder = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(decoder.parameters())
    decoder(torch.ones(2, 4)).sum().backward()
    opt.step()
    return {"net": munch.Munch(decoder=decoder.state_dict()), "optimizer": opt.state_dict(),
            "iters": 120, "val_loss": 0.25, "epoch": 3, "note": None}


def assert_same(a, b) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a, key=repr) == sorted(b, key=repr)
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        assert a == b and type(a) is type(b)


def test_safetensors_and_weights_only_pickles_load_without_trust(tmp_path):
    sd = state_dict()
    save_file(sd, tmp_path / "m.safetensors")
    torch.save({"model": sd, "step": 7}, tmp_path / "m.pt")
    # a corrupt trust list would raise if it were read: these loads must not need it
    Path(os.environ["TTSRIG_TRUST_FILE"]).parent.mkdir()
    Path(os.environ["TTSRIG_TRUST_FILE"]).write_text("{not json")
    assert_same(load_checkpoint(tmp_path / "m.safetensors"), dict(sd))
    assert_same(load_checkpoint(tmp_path / "m.pt"), {"model": sd, "step": 7})


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy-format"])
def test_a_pickle_that_runs_code_is_refused_without_running(tmp_path, zip_format):
    marker = tmp_path / "ran"
    bad = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(2), "x": RunsCode(marker)}, bad, _use_new_zipfile_serialization=zip_format)
    with pytest.raises(UntrustedCheckpoint) as err:
        load_checkpoint(bad)
    assert not marker.exists()
    message = str(err.value)
    assert "posix.system" in message
    assert file_sha256(bad) in message
    assert f"python -m patches trust add {bad}" in message and "--trust-checkpoint" in message
    # converting or inspecting it does not run it either
    with pytest.raises(UntrustedCheckpoint):
        checkpoints.convert(bad)
    assert "posix.system" in checkpoints.describe(bad)
    assert not marker.exists() and not (tmp_path / "evil.safetensors").exists()
    # and torch.load's own default is still the safe one afterwards
    with pytest.raises(Exception, match="Weights only load failed"):
        torch.load(bad)
    assert not marker.exists()
    # the marker does prove it: a load the user vouched for runs the file's code
    load_checkpoint(bad, trust=True, notice=lambda _m: None)
    assert marker.exists()


def test_legacy_checkpoint_loads_once_trusted_by_list_or_flag(tmp_path):
    legacy = tmp_path / "epoch_2nd_00003.pth"
    original = styletts2_like()
    torch.save(original, legacy)
    with pytest.raises(UntrustedCheckpoint, match="munch.Munch"):
        load_checkpoint(legacy)

    notices: list[str] = []
    assert_same(load_checkpoint(legacy, trust=True, notice=notices.append), original)
    assert "python -m patches convert" in notices[0]

    TrustList.load().add(legacy, "test pretrain")
    assert_same(load_checkpoint(legacy, notice=notices.append), original)

    # trust is by content: the same path with other bytes is a different file
    torch.save({**original, "iters": 121}, legacy)
    with pytest.raises(UntrustedCheckpoint):
        load_checkpoint(legacy)


def test_conversion_round_trips_and_later_loads_unpickle_nothing(tmp_path, monkeypatch):
    legacy = tmp_path / "pretrain.pth"
    original = styletts2_like()
    torch.save(original, legacy)
    out = checkpoints.convert(legacy, trust=True)
    assert out == tmp_path / "pretrain.safetensors"
    loaded = load_checkpoint(out)
    expected = {**original, "net": dict(original["net"])}  # the Munch comes back as a plain dict
    assert_same(loaded, expected)

    # Once converted, the legacy path resolves to its converted twin: no trust needed, torch never unpickles it.
    calls = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(k.get("weights_only")) or real_load(*a, **k))
    assert_same(load_checkpoint(legacy), expected)
    assert calls == [True]


def test_conversion_keeps_tied_weights_ints_tuples_and_refuses_objects(tmp_path):
    shared = torch.arange(6.0).view(2, 3)
    nested = {"a": shared, "b": shared.T, 3: (1, 2.5, "x"), "c": [torch.ones(1), {"d": True}]}
    out = checkpoints.save_safetensors(nested, tmp_path / "n.safetensors")
    assert_same(load_checkpoint(out), {"a": shared, "b": shared.T.contiguous(), 3: (1, 2.5, "x"),
                                       "c": [torch.ones(1), {"d": True}]})
    with pytest.raises(CheckpointError, match=r"cfg.*argparse\.Namespace"):
        checkpoints.save_safetensors({"cfg": argparse.Namespace(lr=1)}, tmp_path / "bad.safetensors")
    assert not (tmp_path / "bad.safetensors").exists()


def test_missing_and_truncated_files_fail_clearly(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    save_file(state_dict(), tmp_path / "m.safetensors")
    torch.save(state_dict(), tmp_path / "m.pt")
    for name in ("m.safetensors", "m.pt"):
        data = (tmp_path / name).read_bytes()
        (tmp_path / f"cut-{name}").write_bytes(data[: len(data) // 2])
        with pytest.raises(CheckpointError, match="truncated"):
            load_checkpoint(tmp_path / f"cut-{name}")


def test_corrupt_trust_list_is_reported(tmp_path):
    legacy = tmp_path / "l.pth"
    torch.save({"cfg": argparse.Namespace(lr=1)}, legacy)
    path = Path(os.environ["TTSRIG_TRUST_FILE"])
    path.parent.mkdir()
    path.write_text('{"checkpoints": {"abc": {}}}')
    with pytest.raises(TtsrigError, match="trust list .* is corrupt"):
        load_checkpoint(legacy)


def cli(*args: str, check_rc: int = 0) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "patches", *args], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == check_rc, out.stdout + out.stderr
    return out


def test_trust_and_convert_commands(tmp_path):
    legacy = tmp_path / "pretrain.pth"
    torch.save(styletts2_like(), legacy)
    digest = file_sha256(legacy)

    refused = cli("convert", str(legacy), check_rc=2)
    assert "refused to unpickle" in refused.stderr and "Traceback" not in refused.stderr
    assert "munch.Munch" in cli("inspect", str(legacy)).stdout

    added = cli("trust", "add", str(legacy), "--note", "from the test")
    assert digest in added.stdout
    listed = cli("trust", "list").stdout
    assert digest in listed and "from the test" in listed
    assert json.loads(Path(os.environ["TTSRIG_TRUST_FILE"]).read_text())["checkpoints"][digest]["path"] == str(legacy)

    cli("convert", str(legacy), "-o", str(tmp_path / "out.safetensors"))
    assert (tmp_path / "out.safetensors").is_file()

    cli("trust", "remove", digest)
    assert digest not in cli("trust", "list").stdout
    assert "not in the trust list" in cli("trust", "remove", str(legacy), check_rc=2).stderr


# -- what was hashed is what is loaded ---------------------------------------------------------------

def evil_bytes(marker: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(2), "x": RunsCode(marker)}, buffer)
    return buffer.getvalue()


def swap_in(path: Path, data: bytes) -> None:
    """Replace the file the way an attacker would: a new file renamed over the old name."""
    tmp = path.with_name(path.name + ".swap")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def swap_after_first_torch_load(monkeypatch, path: Path, data: bytes) -> None:
    """Between the restricted attempt (and the trust check) and the unpickling, the file changes."""
    real_load = torch.load
    state = {"swapped": False}

    def load(*args, **kwargs):
        try:
            return real_load(*args, **kwargs)
        finally:
            if not state["swapped"]:
                state["swapped"] = True
                swap_in(path, data)

    monkeypatch.setattr(torch, "load", load)


def count_opens(monkeypatch, *paths: Path) -> dict[Path, int]:
    """How often each path is opened by Python's open, Path.open/read_bytes, os.open (envcheck.reading) or
    safetensors' safe_open."""
    import builtins

    import safetensors

    counts = {p: 0 for p in paths}
    wanted = {os.path.abspath(p): p for p in paths}

    def counting(real):
        def opener(file, *args, **kwargs):
            if isinstance(file, (str, os.PathLike)) and os.path.abspath(file) in wanted:
                counts[wanted[os.path.abspath(file)]] += 1
            return real(file, *args, **kwargs)
        return opener

    monkeypatch.setattr(builtins, "open", counting(builtins.open))
    monkeypatch.setattr(io, "open", counting(io.open))
    monkeypatch.setattr(os, "open", counting(os.open))
    monkeypatch.setattr(safetensors, "safe_open", counting(safetensors.safe_open))
    return counts


def test_a_file_swapped_after_the_trust_list_check_is_not_what_loads(tmp_path, monkeypatch):
    legacy = tmp_path / "pretrain.pth"
    original = styletts2_like()
    torch.save(original, legacy)
    marker = tmp_path / "ran"
    trust = TrustList.load()
    trust.add(legacy, "the real pretrain")
    real_contains = TrustList.contains

    def contains_then_swap(self, digest):
        answer = real_contains(self, digest)
        swap_in(legacy, evil_bytes(marker))  # the check said yes; now the file on disk is another
        return answer

    monkeypatch.setattr(TrustList, "contains", contains_then_swap)
    loaded = load_checkpoint(legacy, notice=lambda _m: None)
    assert not marker.exists()
    assert_same(loaded, original)


def test_a_file_swapped_between_the_restricted_attempt_and_a_flag_trusted_load(tmp_path, monkeypatch):
    legacy = tmp_path / "pretrain.pth"
    original = styletts2_like()
    torch.save(original, legacy)
    marker = tmp_path / "ran"
    swap_after_first_torch_load(monkeypatch, legacy, evil_bytes(marker))
    loaded = load_checkpoint(legacy, trust=True, notice=lambda _m: None)
    assert not marker.exists()
    assert_same(loaded, original)


def test_the_loader_opens_a_checkpoint_exactly_once(tmp_path, monkeypatch):
    legacy = tmp_path / "pretrain.pth"
    torch.save(styletts2_like(), legacy)
    TrustList.load().add(legacy)
    with monkeypatch.context() as patched:
        counts = count_opens(patched, legacy)
        load_checkpoint(legacy, notice=lambda _m: None)
    assert counts[legacy] == 1

    # and a converted twin: the original once, the twin once
    checkpoints.convert(legacy, trust=True)
    twin = legacy.with_suffix(".safetensors")
    with monkeypatch.context() as patched:
        counts = count_opens(patched, legacy, twin)
        load_checkpoint(legacy)
    assert counts == {legacy: 1, twin: 1}


def test_a_twin_swapped_after_its_hash_check_is_not_what_loads(tmp_path, monkeypatch):
    legacy = tmp_path / "pretrain.pth"
    original = styletts2_like()
    torch.save(original, legacy)
    twin = checkpoints.convert(legacy, trust=True)
    forged = tmp_path / "forged.safetensors"
    save_file({"net.decoder.weight": torch.full((3, 4), 7.0)}, forged)
    import builtins

    import safetensors

    state = {"swapped": False}

    def swap_after_first_open(real):
        def opener(file, *args, **kwargs):
            handle = real(file, *args, **kwargs)
            if not state["swapped"] and isinstance(file, (str, os.PathLike)) and Path(file) == twin:
                state["swapped"] = True
                os.replace(forged, twin)
            return handle
        return opener

    for owner, name in ((builtins, "open"), (io, "open"), (os, "open"), (safetensors, "safe_open")):
        monkeypatch.setattr(owner, name, swap_after_first_open(getattr(owner, name)))
    loaded = load_checkpoint(legacy)
    assert state["swapped"]
    assert_same(loaded, {**original, "net": dict(original["net"])})


def test_a_twin_that_records_another_source_is_ignored_with_a_note(tmp_path):
    legacy = tmp_path / "pretrain.pth"
    original = styletts2_like()
    torch.save(original, legacy)
    twin = checkpoints.convert(legacy, trust=True)
    # training went on into the same path: the twin now records the old file's hash
    newer = {**original, "iters": 121}
    torch.save(newer, legacy)
    notices: list[str] = []
    assert_same(load_checkpoint(legacy, trust=True, notice=notices.append), newer)
    assert any(f"ignored {twin}" in n and file_sha256(legacy) in n for n in notices), notices
    assert all("\n" not in n for n in notices)
    # untrusted, the stale twin does not stand in for it either: refused
    with pytest.raises(UntrustedCheckpoint):
        load_checkpoint(legacy, notice=notices.append)

    # a safetensors file that records no source (someone else's file of the same name) is never used
    save_file({"w": torch.ones(1)}, twin)
    notices.clear()
    with pytest.raises(UntrustedCheckpoint):
        load_checkpoint(legacy, notice=notices.append)
    assert any("records no source" in n for n in notices), notices


def test_a_twin_records_the_hash_of_the_bytes_it_was_converted_from(tmp_path, monkeypatch):
    legacy = tmp_path / "pretrain.pth"
    original = styletts2_like()
    torch.save(original, legacy)
    digest = file_sha256(legacy)
    # the input changes while convert runs: the twin must still name the bytes it holds
    with monkeypatch.context() as patched:
        swap_after_first_torch_load(patched, legacy, evil_bytes(tmp_path / "ran"))
        twin = checkpoints.convert(legacy, trust=True)
    from safetensors import safe_open

    with safe_open(str(twin), framework="pt") as fh:
        assert fh.metadata()[checkpoints.SOURCE_KEY] == digest
    assert_same(load_checkpoint(twin), {**original, "net": dict(original["net"])})
    assert not (tmp_path / "ran").exists()


def convert_refused(*args: str) -> str:
    out = cli("convert", *args, "--trust-checkpoint", check_rc=2)
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    return out.stderr


def test_convert_never_writes_over_its_input_or_a_file_it_did_not_write(tmp_path):
    legacy = tmp_path / "pretrain.pth"
    torch.save(styletts2_like(), legacy)
    before = legacy.read_bytes()
    link = tmp_path / "link.safetensors"
    link.symlink_to(legacy)
    hard = tmp_path / "hard.safetensors"
    os.link(legacy, hard)

    assert "is the input" in convert_refused(str(legacy), "-o", str(legacy))
    assert "is the input" in convert_refused(str(legacy), "-o", str(link))
    assert "is the input" in convert_refused(str(legacy), "-o", str(hard))
    assert link.is_symlink() and hard.stat().st_ino == legacy.stat().st_ino
    (tmp_path / "out").mkdir()
    assert "is a folder" in convert_refused(str(legacy), "-o", str(tmp_path / "out"))
    assert "does not exist" in convert_refused(str(legacy), "-o", str(tmp_path / "nowhere" / "x.safetensors"))
    mine = tmp_path / "mine.safetensors"
    save_file({"w": torch.ones(1)}, mine)
    mine_bytes = mine.read_bytes()
    assert "not written by" in convert_refused(str(legacy), "-o", str(mine))
    assert mine.read_bytes() == mine_bytes
    assert legacy.read_bytes() == before and not list((tmp_path / "out").iterdir())

    # a file that already is safetensors, by name or by content
    assert "already safetensors" in convert_refused(str(mine))
    renamed = tmp_path / "weights.bin"
    renamed.write_bytes(mine_bytes)
    assert "already safetensors" in convert_refused(str(renamed), "-o", str(tmp_path / "w2.safetensors"))

    # a twin convert wrote itself may be replaced (converting again after the original changed)
    cli("convert", str(legacy), "--trust-checkpoint")
    cli("convert", str(legacy), "--trust-checkpoint")
    assert legacy.read_bytes() == before


# -- the trust list itself --------------------------------------------------------------------------

@pytest.mark.parametrize("content", ["folder", b"\xff\xfe not utf-8", '{"checkpoints": {"' + "a" * 64 + '": "x"}}',
                                     "[1, 2]", '{"format": 99, "checkpoints": {}}'],
                         ids=["folder", "not-utf8", "entry-not-a-record", "not-an-object", "newer-format"])
def test_a_malformed_trust_list_is_one_line(tmp_path, content):
    trust_file = Path(os.environ["TTSRIG_TRUST_FILE"])
    if content == "folder":
        trust_file.mkdir(parents=True)
    else:
        trust_file.parent.mkdir()
        trust_file.write_bytes(content if isinstance(content, bytes) else content.encode())
    for args in (("trust", "list"), ("trust", "remove", "a" * 64)):
        out = cli(*args, check_rc=2)
        assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert str(trust_file) in out.stderr


def test_trust_through_symlinks(tmp_path):
    a, b = tmp_path / "a.pth", tmp_path / "b.pth"
    torch.save({"cfg": argparse.Namespace(lr=1)}, a)
    torch.save({"cfg": argparse.Namespace(lr=2)}, b)
    link = tmp_path / "current.pth"
    link.symlink_to(a)
    # the trust list kept in another folder (a dotfiles repo) through a symlink stays a symlink
    real_list = tmp_path / "dotfiles" / "trusted.json"
    real_list.parent.mkdir()
    real_list.write_text('{"format": 1, "checkpoints": {}}\n')
    listed = Path(os.environ["TTSRIG_TRUST_FILE"])
    listed.parent.mkdir()
    listed.symlink_to(real_list)

    cli("trust", "add", str(link), "--note", "via the link")
    assert listed.is_symlink()
    entry = json.loads(real_list.read_text())["checkpoints"][file_sha256(a)]
    assert entry["path"] == str(a) and entry["via"] == str(link)
    # the link now points at another file: removing by the link's name removes what was trusted under it
    link.unlink()
    link.symlink_to(b)
    assert file_sha256(a) in cli("trust", "remove", str(link)).stdout
    assert json.loads(real_list.read_text())["checkpoints"] == {}
    out = cli("trust", "remove", str(link), check_rc=2)
    assert "not in the trust list" in out.stderr and "nothing removed" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_trust_add_reads_the_file_once(tmp_path, monkeypatch, capsys):
    from patches import cli as patches_cli

    legacy = tmp_path / "pretrain.pth"
    torch.save(styletts2_like(), legacy)
    counts = count_opens(monkeypatch, legacy)
    assert patches_cli.main(["trust", "add", str(legacy)]) == 0
    assert counts[legacy] == 1  # the verdict shown and the sha256 trusted are of the same bytes
    assert "needs trust" in capsys.readouterr().out
