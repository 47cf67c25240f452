"""`python -m trainers.fetch --trust` vouches only for what no one else could have put in the caches (issue: a
root user's fetch --trust trusted a payload another user swapped into a 0777 cache they owned, because the
offline check took the blob's own file name, which the cache's writer chooses, for "the hash the hub
publishes"). The caches are laid out as tests/models/test_first_run.py lays them out; everything runs offline."""
from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

import pytest

from patches.checkpoints import CheckpointError, load_checkpoint, read_checkpoint
from patches.pickle_scan import RUNTIME_GLOBAL
from tests.models.test_first_run import fetch, lay_out, one_line_error, tiny  # noqa: F401 (tiny: a fixture)
from tests.models.test_pickle_attacks import CASES, posix_system, torch_dotted_global
from trainers import fetch as fetch_mod

AS_ROOT = os.geteuid() == 0
NOBODY = 65534
REFUSED = "refused to trust StyleTTS2 model (Models/LibriTTS/epochs_2nd_00020.pth)"


def trust_file() -> Path:
    return Path(os.environ["TTSRIG_TRUST_FILE"])  # the test's own (conftest), absent until something is trusted


def swap_blob(snapshot: Path, data: bytes) -> Path:
    """What the tester did: the pretrain's blob replaced by other bytes, filed under their own sha256 (so name
    and content agree) and the snapshot link pointed at it. Returns the new blob."""
    old = snapshot.resolve()
    blob = old.parent / hashlib.sha256(data).hexdigest()
    blob.write_bytes(data)
    old.unlink()
    snapshot.unlink()
    snapshot.symlink_to(os.path.relpath(blob, snapshot.parent))
    return blob


def give_away(root: Path, uid: int | None) -> None:
    """Every folder of `root` mode 0777 (and everything in it owned by `uid`, when given), as the tester left
    the caches."""
    for here, folders, names in os.walk(root):
        for name in names:
            if uid is not None:
                os.lchown(Path(here) / name, uid, uid)
        if uid is not None:
            os.chown(here, uid, uid)
        os.chmod(here, 0o777)


@pytest.mark.parametrize("owner", ["nobody", "me"])
def test_fetch_trust_refuses_a_cache_others_can_change_in_one_line(tiny, tmp_path, owner):
    if owner == "nobody" and not AS_ROOT:
        pytest.skip("a cache another user owns can only be made by root (CI runs as root)")
    cache = tmp_path / "cache"
    laid = lay_out(tiny, cache, groups=("styletts2",))
    marker = tmp_path / "ran"
    swap_blob(laid["model"], posix_system(f"touch {marker}"))  # the tester's payload
    give_away(cache, NOBODY if owner == "nobody" else None)

    out = fetch(cache, "--only", "styletts2", "--trust")
    line = one_line_error(out, "trainers.fetch:")
    assert f"{REFUSED} at {laid['model']}: " in line and "Nothing was trusted" in line, line
    if owner == "nobody":
        assert f"belongs to another user (uid {NOBODY})" in line and "caches only you can write" in line, line
    else:
        assert "is writable by group and others (mode 0777)" in line and "Fix: chmod go-w" in line, line
    assert not trust_file().exists() and not marker.exists()
    assert "hub publishes" not in out.stdout  # offline, the hub was never asked
    assert "trusted " not in out.stdout


def test_fetch_trust_refuses_a_payload_in_a_cache_i_own_and_claims_no_hub_hash(tiny, tmp_path):
    """The tester's swap, in a cache only the user can write: the name matches the content, which proves
    nothing about where it came from, and the pickle would call posix.system."""
    cache = tmp_path / "cache"
    laid = lay_out(tiny, cache, groups=("styletts2",))
    marker = tmp_path / "ran"
    swap_blob(laid["model"], posix_system(f"touch {marker}"))

    out = fetch(cache, "--only", "styletts2", "--trust")
    line = one_line_error(out, "trainers.fetch:")
    assert f"{REFUSED} at {laid['model']}: " in line and "would call posix.system" in line, line
    assert "Nothing was trusted" in line and "python -m patches inspect" in line, line
    [model] = [each for each in out.stdout.splitlines() if f": {laid['model']} (" in each]
    assert "matches the name the cache filed it under" in model and "hub was not asked" in model, model
    assert "hub publishes" not in out.stdout
    assert not trust_file().exists() and not marker.exists()

    # the payload is real: loading it trusted runs it (which is what --trust must never let happen)
    with contextlib.suppress(CheckpointError):
        load_checkpoint(laid["model"], trust=True, notice=lambda _m: None)
    assert marker.exists()


def test_fetch_trust_refuses_a_dotted_name_that_reaches_os_system(tiny, tmp_path):
    cache = tmp_path / "cache"
    laid = lay_out(tiny, cache, groups=("styletts2",))
    marker = tmp_path / "ran"
    swap_blob(laid["model"], torch_dotted_global(f"touch {marker}"))
    line = one_line_error(fetch(cache, "--only", "styletts2", "--trust"), "trainers.fetch:")
    assert "would call torch.serialization.os.system" in line, line
    assert not trust_file().exists() and not marker.exists()


@pytest.mark.parametrize("name, build, needle, wrap", CASES, ids=[c[0] for c in CASES])
def test_every_attack_pickle_is_one_that_runs_code(tmp_path, name, build, needle, wrap):
    """What --trust refuses, for each hand-made attack (legacy, inside a torch zip, a zip appended)."""
    bad = tmp_path / f"{name}.pt"
    bad.write_bytes(wrap(build(tmp_path / "ran")))
    calls = fetch_mod.code_running_globals(read_checkpoint(bad))
    assert any(needle in call for call in calls), calls
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("name", [
    "os.system", "posix.system", "nt.system", "subprocess.Popen", "builtins.eval", "builtins.exec",
    "builtins.compile", "builtins.__import__", "builtins.open", "sys.modules.get", "shutil.rmtree",
    "importlib.import_module", "runpy.run_path", "pty.spawn", "socket.socket", "ctypes.CDLL", "torch.save",
    "torch.load", "torch.hub.load", "torch.serialization.os.system", "torch.nn.modules.conv.os.system",
    "operator.attrgetter", "torch._utils._rebuild_tensor_v2.__globals__", RUNTIME_GLOBAL])
def test_a_code_running_global_is_named(name):
    assert fetch_mod.runs_code(name)


@pytest.mark.parametrize("name", [
    "munch.Munch", "collections.OrderedDict", "numpy.core.multiarray.scalar", "numpy.dtype",
    "torch.optim.lr_scheduler.OneCycleLR", "torch.optim.adamw.AdamW", "__main__.Config", "builtins.set",
    "builtins.getattr"])  # the published StyleTTS2 checkpoints call getattr (fetch.CODE_BUILTINS)
def test_a_data_class_is_not(name):
    assert not fetch_mod.runs_code(name)


def test_the_tiny_legacy_pretrain_in_my_own_cache_is_still_trusted(tiny, tmp_path):
    cache = tmp_path / "cache"
    laid = lay_out(tiny, cache, groups=("styletts2",))
    out = fetch(cache, "--only", "styletts2", "--trust")
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    digest = hashlib.sha256(laid["model"].read_bytes()).hexdigest()
    assert f"trusted {digest}" in out.stdout and "hub publishes" not in out.stdout
    assert digest in trust_file().read_text()
