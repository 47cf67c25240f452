"""Safe checkpoint loading: what loads freely, what needs trust, what is refused without running."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import munch
import pytest
import torch
from safetensors.torch import save_file

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
    assert checkpoints.sha256_file(bad) in message
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

    # The legacy path now resolves to its converted twin: no trust needed, torch never unpickles it.
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
    digest = checkpoints.sha256_file(legacy)

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
