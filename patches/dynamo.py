"""The dynamo patch: `populate_builtin_to_tensor_fn_map()` returns at once.

At `import torch._dynamo`, torch runs every Python operator on 1-element tensors
to build a lookup table; on pre-v2 CPUs with torch 2.7 that probe dies with
SIGFPE (requirements/evidence/py3.11/pre-v2-phenom.txt). The table only serves
torch.compile tracing of tensor subclasses, which ttsrig never uses. The file is
patched only when its hash is one we know, so the edit is never a guess.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

from envcheck import crashpoint
from envcheck.atomic import write_atomic
from envcheck.digests import bytes_sha256, file_sha256
from envcheck.errors import TtsrigError
from envcheck.venv import PATCH_BACKUP_DIR
from patches.target import Env

NAME = "dynamo"
NEEDED_ON = ("pre-v2",)
ANCHOR = "def populate_builtin_to_tensor_fn_map():\n    global BUILTIN_TO_TENSOR_FN_MAP\n"
MARK = "    return  # ttsrig dynamo patch: the operator probe SIGFPEs on pre-v2 CPUs (python -m patches status)\n"


@functools.cache
def known() -> dict:
    """The patched file's path in site-packages and the sha256 of its original in each torch version we know
    (data/known-files.json), read on first use."""
    return json.loads((Path(__file__).with_name("data") / "known-files.json").read_text())[NAME]


def transform(original: bytes) -> bytes:
    text = original.decode("utf-8")
    if text.count(ANCHOR) != 1:
        raise TtsrigError("populate_builtin_to_tensor_fn_map was not found where expected")
    return text.replace(ANCHOR, ANCHOR + MARK).encode("utf-8")


def target_file(env: Env) -> Path:
    return env.site / known()["path"]


def status(env: Env, tier: str | None) -> tuple[str, str]:
    """applied / not needed / missing / stale / unknown, with a detail."""
    path = target_file(env)
    torch = env.version("torch")
    record = env.load_state().get(NAME)
    if record:
        record = checked_record(env, record)
    if torch is None or not path.exists():
        return ("not needed", "torch is not installed") if not record else (
            "stale", "torch was removed after the patch was applied")
    current = file_sha256(path)
    if record:
        if current == record["patched_sha256"] and torch == record["torch"]:
            return "applied", f"torch {torch}: {record['file']}"
        if current == known()["originals"].get(torch):
            return "stale", f"torch {torch} was reinstalled over the patch; run `python -m patches apply`"
        return "stale", f"{record['file']} changed since it was patched (edited by hand?)"
    if tier not in NEEDED_ON:
        return "not needed", f"tier {tier or 'unknown'} imports torch._dynamo without it"
    if current == known()["originals"].get(torch):
        return "missing", f"torch {torch} is unpatched; run `python -m patches apply`"
    return "unknown", f"{path} (torch {torch}) is not a version this patch knows"


def apply(env: Env, tier: str | None) -> str:
    state_now, detail = status(env, tier)
    if state_now in ("applied", "not needed"):
        return f"{NAME}: {state_now} ({detail})"
    path = target_file(env)
    torch = env.version("torch")
    original = path.read_bytes()
    if bytes_sha256(original) != known()["originals"].get(torch):
        raise TtsrigError(f"{NAME}: refusing to patch {path}: its sha256 is not that of torch {torch}'s "
                          f"original (known versions: {', '.join(known()['originals'])}). Reinstall torch with "
                          "bin/bootstrap, or add the new version to patches/data/known-files.json after review.")
    patched = transform(original)
    backup = backup_file(env, torch)
    backup.parent.mkdir(exist_ok=True)
    write_atomic(backup, original)
    # The record before the file: stopped in between, the record says what to undo and `status` says
    # stale (apply again); the other order would leave torch patched with nothing saying so.
    state = env.load_state()
    state[NAME] = {"file": known()["path"], "torch": torch, "original_sha256": bytes_sha256(original),
                   "patched_sha256": bytes_sha256(patched), "backup": str(backup.relative_to(env.prefix))}
    env.save_state(state)
    crashpoint.reached("patches:between-record-and-file")
    write_atomic(path, patched, mode=path.stat().st_mode & 0o777)
    return f"{NAME}: applied to torch {torch} ({known()['path']})"


def backup_file(env: Env, torch: str) -> Path:
    return env.prefix / PATCH_BACKUP_DIR / f"{NAME}-torch-{torch}.orig"


def checked_record(env: Env, record: object) -> dict:
    """The record's entry, if it names only what apply writes: the patched file and its backup. The record
    lies in the venv; an edited one must not make revert write elsewhere (it restores bytes to a path)."""
    fields = ("file", "torch", "original_sha256", "patched_sha256", "backup")
    if not isinstance(record, dict) or not all(isinstance(record.get(k), str) for k in fields) \
            or record["file"] != known()["path"] \
            or record["backup"] != str(backup_file(env, record["torch"]).relative_to(env.prefix)) \
            or "/" in record["torch"]:
        raise TtsrigError(f"{NAME}: the patch record {env.state_path} names other files than the patch writes "
                          "(edited by hand?); nothing was changed. Reinstall torch with bin/bootstrap, delete the "
                          "record, and apply again.")
    return record


def revert(env: Env) -> str:
    state = env.load_state()
    record = state.get(NAME)
    if not record:
        return f"{NAME}: nothing to revert"
    record = checked_record(env, record)
    path = target_file(env)
    backup = backup_file(env, record["torch"])
    if path.exists() and file_sha256(path) == record["patched_sha256"]:
        original = backup.read_bytes()
        if bytes_sha256(original) != record["original_sha256"]:
            raise TtsrigError(f"{NAME}: the backup {backup} does not match the recorded original; "
                              "reinstall torch with bin/bootstrap instead.")
        write_atomic(path, original, mode=path.stat().st_mode & 0o777)
        done = f"{NAME}: reverted {record['file']} to torch {record['torch']}'s original"
    else:
        done = f"{NAME}: {record['file']} is no longer the patched file; only the record is removed"
    del state[NAME]
    env.save_state(state)
    backup.unlink(missing_ok=True)
    return done
