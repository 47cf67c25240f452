"""`python -m patches inspect` never calls a file safe when it is not.

Every attack is a pickle built here by hand, opcode by opcode, whose payload writes a marker file. The
verdict must come from torch's own rules: "tensor-only" only for what torch.load(weights_only=True)
loads; everything else "needs trust", naming what it would import. The marker must never appear on the
user's path (inspect, trust add's report, load), and the last step proves each payload is real.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Callable

import pytest
import torch

from envcheck.digests import file_sha256
from envcheck.errors import TtsrigError
from patches import checkpoints
from patches.checkpoints import CheckpointError, UntrustedCheckpoint, load_checkpoint

ROOT = Path(__file__).resolve().parents[2]


def short_unicode(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw  # SHORT_BINUNICODE


def binunicode(text: str) -> bytes:
    raw = text.encode()
    return b"X" + len(raw).to_bytes(4, "little") + raw  # BINUNICODE


def inst_os_system(cmd: str) -> bytes:
    """Protocol 0: MARK, the argument, INST os system (imports and calls without any GLOBAL opcode)."""
    return b"(V" + cmd.encode() + b"\nios\nsystem\n."


def memo_stack_global(cmd: str) -> bytes:
    """STACK_GLOBAL of names fetched from the memo, with decoy strings `torch` `Tensor` pushed last."""
    return (b"\x80\x04" + short_unicode("os") + b"\x94" + b"0" + short_unicode("system") + b"\x94" + b"0"
            + short_unicode("torch") + b"0" + short_unicode("Tensor") + b"0"
            + b"h\x00h\x01\x93" + binunicode(cmd) + b"\x85R.")


def binput_stack_global(cmd: str) -> bytes:
    """The same through BINPUT/BINGET (protocol 2 memo opcodes) into STACK_GLOBAL."""
    return (b"\x80\x02" + binunicode("posix") + b"q\x07" + b"0" + binunicode("system") + b"q\x08" + b"0"
            + binunicode("collections") + b"0" + binunicode("OrderedDict") + b"0"
            + b"h\x07h\x08\x93" + binunicode(cmd) + b"\x85R.")


def torch_save_global(marker: Path) -> bytes:
    """A GLOBAL under the `torch` prefix that is no tensor: torch.save('x', MARKER) writes the marker."""
    return b"\x80\x02ctorch\nsave\n" + binunicode("x") + binunicode(str(marker)) + b"\x86R."


def torch_dotted_global(cmd: str) -> bytes:
    """GLOBAL torch.serialization / os.system: protocol 4 resolves the dotted name to os.system."""
    return b"\x80\x04ctorch.serialization\nos.system\n" + binunicode(cmd) + b"\x85R."


def posix_system(cmd: str) -> bytes:
    return b"\x80\x02cposix\nsystem\n" + binunicode(cmd) + b"\x85R."


def genuine_zip() -> bytes:
    buffer = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buffer)
    return buffer.getvalue()


def in_torch_zip(payload: bytes) -> bytes:
    """A real torch.save zip whose data.pkl is replaced by the payload."""
    source = zipfile.ZipFile(io.BytesIO(genuine_zip()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for info in source.infolist():
            archive.writestr(info, payload if info.filename.endswith("/data.pkl") else source.read(info))
    return out.getvalue()


def with_zip_appended(payload: bytes) -> bytes:
    """A legacy pickle with a genuine torch zip appended: Python's zipfile sees the zip, torch the pickle."""
    return payload + genuine_zip()


Payload = Callable[[Path], bytes]
PAYLOADS: dict[str, tuple[Payload, str]] = {
    # name: (build from the marker path, a global the verdict must name)
    "inst": (lambda m: inst_os_system(f"touch {m}"), "os.system"),
    "memoize-stack-global": (lambda m: memo_stack_global(f"touch {m}"), "os.system"),
    "binput-stack-global": (lambda m: binput_stack_global(f"touch {m}"), "posix.system"),
    "torch.save": (torch_save_global, "torch.save"),
    "torch.serialization.os.system": (lambda m: torch_dotted_global(f"touch {m}"), "os.system"),
}
CASES = [(f"{name}-{container}", build, needle, wrap)
         for name, (build, needle) in PAYLOADS.items()
         for container, wrap in (("legacy", lambda b: b), ("in-zip", in_torch_zip))]
CASES.append(("zip-appended", lambda m: posix_system(f"touch {m}"), "posix.system", with_zip_appended))


def cli(*args: str, check_rc: int = 0) -> subprocess.CompletedProcess:
    """`python -m patches ARGS` as the user runs it."""
    out = subprocess.run([sys.executable, "-m", "patches", *args], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == check_rc, out.stdout + out.stderr
    return out


def patches_main(capsys, *args: str, check_rc: int = 0) -> str:
    """The same command in this process (its entry point, parser and printing), without a torch start-up each."""
    from patches.cli import main

    capsys.readouterr()
    assert main(list(args)) == check_rc
    captured = capsys.readouterr()
    return captured.out + captured.err


@pytest.mark.parametrize("name, build, needle, wrap", CASES, ids=[c[0] for c in CASES])
def test_attack_pickle_needs_trust_and_never_runs(tmp_path, capsys, name, build, needle, wrap):
    marker = tmp_path / "ran"
    bad = tmp_path / f"{name}.pt"
    bad.write_bytes(wrap(build(marker)))

    # the user's path: inspect, read the verdict, load
    shown = patches_main(capsys, "inspect", str(bad))
    assert "needs trust" in shown and needle in shown, shown
    assert "tensor-only" not in shown and "loads with weights_only=True" not in shown
    assert not marker.exists()
    with pytest.raises(UntrustedCheckpoint) as refused:
        load_checkpoint(bad)
    assert needle in str(refused.value) and file_sha256(bad) in str(refused.value)
    assert not marker.exists()
    # converting refuses too, and writes nothing
    with pytest.raises(UntrustedCheckpoint):
        checkpoints.convert(bad)
    assert not marker.exists() and not bad.with_suffix(".safetensors").exists()

    # `trust add` shows the same verdict before it trusts (the user is warned at that step too)
    added = patches_main(capsys, "trust", "add", str(bad))
    assert "needs trust" in added and needle in added
    assert not marker.exists()

    # the payload is real: once the user vouches for the file, its code runs (torch then finds no
    # checkpoint in what the payload returned, which does not undo what it ran)
    with contextlib.suppress(CheckpointError):
        load_checkpoint(bad, notice=lambda _m: None)
    assert marker.exists()


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy-format"])
def test_a_genuine_state_dict_is_called_tensor_only_and_loads(tmp_path, legacy):
    torch.manual_seed(0)
    sd = torch.nn.Linear(4, 3).state_dict()
    good = tmp_path / "model.pt"
    torch.save(sd, good, _use_new_zipfile_serialization=not legacy)
    shown = cli("inspect", str(good)).stdout
    assert "tensor-only" in shown and "loads with weights_only=True" in shown and "needs trust" not in shown
    assert ("legacy" in shown) == legacy
    loaded = load_checkpoint(good)
    assert sorted(loaded) == sorted(sd) and all(torch.equal(loaded[k], sd[k]) for k in sd)


def test_the_command_line_user_path_on_a_pickle_hidden_before_a_zip(tmp_path):
    marker = tmp_path / "ran"
    bad = tmp_path / "pretrain.pt"
    bad.write_bytes(with_zip_appended(posix_system(f"touch {marker}")))
    shown = cli("inspect", str(bad)).stdout
    assert "legacy" in shown and "needs trust" in shown and "posix.system" in shown
    with pytest.raises(UntrustedCheckpoint):
        load_checkpoint(bad)
    refused = cli("convert", str(bad), check_rc=2)
    assert "refused to unpickle" in refused.stderr and "Traceback" not in refused.stderr
    assert not marker.exists()


def test_what_is_not_a_checkpoint_is_not_called_tensor_only(tmp_path, capsys):
    text = tmp_path / "notes.pt"
    text.write_text("just some text\n")
    out = patches_main(capsys, "inspect", str(text), check_rc=2)
    assert "not a readable torch checkpoint" in out and "Traceback" not in out
    assert "tensor-only" not in out and "needs trust" not in out


# -- a trust list someone else can write never decides what runs (issue: trust, second round, class 4) ----

def planted_trust(tmp_path: Path, digest: str, mode: int, owner: int | None) -> Path:
    """A trust list holding `digest`, as another user (or a careless chmod) left it."""
    folder = tmp_path / "shared-config"
    folder.mkdir(mode=0o700)
    path = folder / "trusted-checkpoints.json"
    path.write_text(json.dumps({"format": 1, "checkpoints": {digest: {"path": "x", "note": "", "added": "t"}}}))
    path.chmod(mode)
    if owner is not None:
        os.chown(path, owner, owner)
    return path


@pytest.mark.parametrize("case", ["world-writable", "another user's"])
def test_a_trust_list_another_user_can_change_never_makes_root_run_their_pickle(tmp_path, monkeypatch, case):
    if case == "another user's" and os.geteuid() != 0:
        pytest.skip("a file another user owns can only be made by root (CI runs as root)")
    marker = tmp_path / "ran"
    bad = tmp_path / "pretrain.pth"
    bad.write_bytes(posix_system(f"touch {marker}"))
    trust = planted_trust(tmp_path, file_sha256(bad), *((0o666, None) if case == "world-writable" else (0o644, 65534)))
    refused = subprocess.run([sys.executable, "-m", "patches", "convert", str(bad)], capture_output=True, text=True,
                             cwd=ROOT, env={**os.environ, "TTSRIG_TRUST_FILE": str(trust)})
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    assert "refused the checkpoint trust list" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert not marker.exists() and not bad.with_suffix(".safetensors").exists()
    monkeypatch.setenv("TTSRIG_TRUST_FILE", str(trust))
    with pytest.raises(TtsrigError, match="refused the checkpoint trust list"):  # the loader every command uses
        load_checkpoint(bad)
    assert not marker.exists()
