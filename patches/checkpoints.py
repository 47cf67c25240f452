"""Safe checkpoint loading, shared by trainers/ and voices/.

- safetensors files load as they are (no code can run);
- pickled checkpoints load with `torch.load(weights_only=True)` (torch's restricted unpickler);
- a legacy pickle that needs more (published StyleTTS2 checkpoints: "Unsupported global: GLOBAL getattr")
  is unpickled with `weights_only=False` for this one call only, and only when the user trusts it: its
  sha256 is in the trust list (`python -m patches trust add FILE`) or the caller passes `trust=True`
  (the `--trust-checkpoint` flag of every command);
- a trusted legacy file can be converted once to safetensors (`python -m patches convert FILE`); the
  converted file records the source's hash, so later loads of the legacy path use it and unpickle nothing.

torch.load's default is never changed globally.
"""
from __future__ import annotations

import argparse
import io
import json
import pickletools
import sys
import zipfile
from pathlib import Path
from typing import Any, Callable

from envcheck.atomic import write_atomic
from envcheck.errors import TtsrigError
from patches.trust import TrustList, file_sha256

SAFETENSORS_SUFFIX = ".safetensors"
TREE_KEY = "ttsrig.tree"
SOURCE_KEY = "ttsrig.source_sha256"
# Modules whose globals torch's own weights_only unpickler accepts; anything else in a pickle's
# GLOBAL list is named in the refusal as code the file would run.
TENSOR_MODULES = ("torch", "collections", "numpy", "_codecs")


class CheckpointError(TtsrigError):
    """A checkpoint that cannot be read: missing, corrupt, or of an unsupported layout."""


class UntrustedCheckpoint(CheckpointError):
    """A legacy pickle whose unpickling would run code, and the user has not said they trust it."""


sha256_file = file_sha256


def add_trust_argument(parser: argparse.ArgumentParser) -> None:
    """The one flag every loading command offers, with the same words everywhere."""
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="unpickle a legacy checkpoint even though its sha256 is not in the trust list "
                             "(this runs code from the file: only for files you know)")


# -- reading a pickle without running it ------------------------------------------------------------

def _pickle_bytes(path: Path) -> list[bytes]:
    """The pickle streams of a checkpoint: data.pkl of torch's zip format, or the raw legacy file."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            return [zf.read(n) for n in zf.namelist() if n.endswith("data.pkl")]
    return [path.read_bytes()]


def pickle_globals(path: Path) -> list[str]:
    """Every `module.name` a checkpoint's pickle would import, found by reading opcodes (nothing runs)."""
    found: list[str] = []
    for data in _pickle_bytes(path):
        stream = io.BytesIO(data)
        # The legacy (pre-1.6) format is several pickles in a row; read them all.
        while stream.tell() < len(data):
            strings: list[str] = []
            try:
                for op, arg, _ in pickletools.genops(stream):
                    if op.name == "GLOBAL":
                        found.append(str(arg).replace(" ", "."))
                    elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                        found.append(f"{strings[-2]}.{strings[-1]}")
                    elif isinstance(arg, str):
                        strings.append(arg)
            except Exception:  # a truncated or non-pickle tail: what was read so far is the answer
                break
    return sorted(set(found))


def code_globals(names: list[str]) -> list[str]:
    return [n for n in names if n.split(".", 1)[0] not in TENSOR_MODULES]


# -- loading ----------------------------------------------------------------------------------------

def _require_file(path: Path) -> None:
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist (looked at {path.resolve()}). Check the path, "
                              "or train one with trainers/ or fetch the published pretrain.")


def converted_sibling(path: Path) -> Path:
    return path.with_suffix(SAFETENSORS_SUFFIX)


def load_safetensors(path: Path, map_location: Any = "cpu") -> dict:
    from safetensors import SafetensorError, safe_open

    device = str(map_location) if map_location is not None else "cpu"
    try:
        with safe_open(str(path), framework="pt", device=device) as fh:
            meta = fh.metadata() or {}
            tensors = {key: fh.get_tensor(key) for key in fh.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file ({exc}). It may be truncated by an "
                              "interrupted download or copy: fetch or convert it again.") from None
    if TREE_KEY not in meta:
        return tensors
    return _unflatten(json.loads(meta[TREE_KEY]), tensors)


def _load_converted(path: Path, digest: str, map_location: Any) -> dict | None:
    sibling = converted_sibling(path)
    if sibling == path or not sibling.is_file():
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(sibling), framework="pt", device="cpu") as fh:
            source = (fh.metadata() or {}).get(SOURCE_KEY)
    except Exception:
        return None
    return load_safetensors(sibling, map_location) if source == digest else None


def load_checkpoint(path: str | Path, *, map_location: Any = "cpu", trust: bool = False,
                    trust_list: TrustList | None = None,
                    notice: Callable[[str], None] | None = None) -> dict:
    """Load a checkpoint the safe way; see the module docstring for the rules."""
    import torch

    path = Path(path).expanduser()
    notice = notice or (lambda message: print(message, file=sys.stderr))
    _require_file(path)
    if path.suffix == SAFETENSORS_SUFFIX:
        return load_safetensors(path, map_location)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError or ValueError by case
        refusal = exc
    if not _is_weights_only_refusal(refusal):
        raise CheckpointError(f"{path} is not a readable torch checkpoint ({_last_line(refusal)}). It may be "
                              "truncated or of another format: fetch or save it again.") from None

    digest = sha256_file(path)
    converted = _load_converted(path, digest, map_location)
    if converted is not None:
        return converted
    trusted_by = "--trust-checkpoint" if trust else None
    if not trusted_by:
        trust_list = trust_list if trust_list is not None else TrustList.load()
        if trust_list.contains(digest):
            trusted_by = f"the trust list {trust_list.path}"
    if not trusted_by:
        raise UntrustedCheckpoint(refusal_message(path, digest))
    try:
        # Local and explicit: only this call, only for a file the user vouched for.
        loaded = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:
        raise CheckpointError(f"{path} is trusted but could not be unpickled: {_last_line(exc)}") from None
    notice(f"loaded legacy pickle {path} (trusted by {trusted_by}). Convert it once to safetensors so no "
           f"code runs next time: python -m patches convert {path}")
    return loaded


def _is_weights_only_refusal(exc: Exception) -> bool:
    import pickle

    return isinstance(exc, pickle.UnpicklingError) and "Weights only load failed" in str(exc)


def _last_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def refusal_message(path: Path, digest: str) -> str:
    names = pickle_globals(path)
    runs = code_globals(names)
    what = ", ".join(runs[:8]) + (" ..." if len(runs) > 8 else "") if runs else "objects beyond tensors"
    return (f"refused to unpickle {path}: it is a legacy pickled checkpoint that needs {what}. Unpickling it "
            "would run code from the file, so ttsrig does that only for files you trust.\n"
            f"  sha256: {digest}\n"
            "If you know where this file comes from (e.g. the published pretrain), trust it once:\n"
            f"  python -m patches trust add {path}\n"
            "or pass --trust-checkpoint to this command. Then convert it to safetensors so nothing is "
            f"unpickled again:\n  python -m patches convert {path}")


# -- conversion to safetensors ----------------------------------------------------------------------

def _flatten(obj: Any, where: str, tensors: dict) -> Any:
    """A JSON tree of the checkpoint's structure; tensors go to `tensors` under a path-derived key."""
    import numpy as np
    import torch

    if isinstance(obj, np.ndarray):
        obj = torch.from_numpy(obj)
    if isinstance(obj, torch.Tensor):
        if obj.is_sparse or obj.is_quantized:
            raise CheckpointError(f"cannot convert {where}: sparse and quantized tensors have no safetensors form")
        key, n = where or "tensor", 1
        while key in tensors:
            n += 1
            key = f"{where}#{n}"
        # clone: safetensors refuses tensors that share storage (tied weights, optimizer views)
        tensors[key] = obj.detach().to("cpu").contiguous().clone()
        return {"t": key}
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if not isinstance(k, (str, int, float, bool)) and k is not None:
                raise CheckpointError(f"cannot convert {where}: dictionary key {k!r} of type {type(k).__name__}")
            items.append([k, _flatten(v, f"{where}.{k}" if where else str(k), tensors)])
        return {"d": items}
    if isinstance(obj, (list, tuple)):
        kind = "l" if isinstance(obj, list) else "tu"
        return {kind: [_flatten(v, f"{where}.{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, np.generic):
        obj = obj.item()
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return {"v": obj}
    raise CheckpointError(f"cannot convert {where or 'the checkpoint'}: it holds a {type(obj).__module__}."
                          f"{type(obj).__qualname__}, which safetensors cannot store. Keep the trusted pickle.")


def _unflatten(node: dict, tensors: dict) -> Any:
    if "t" in node:
        return tensors[node["t"]]
    if "d" in node:
        return {k: _unflatten(v, tensors) for k, v in node["d"]}
    if "l" in node:
        return [_unflatten(v, tensors) for v in node["l"]]
    if "tu" in node:
        return tuple(_unflatten(v, tensors) for v in node["tu"])
    return node["v"]


def save_safetensors(obj: dict, path: Path, *, source_sha256: str | None = None) -> Path:
    """Write any nested checkpoint of tensors and plain values as safetensors, atomically."""
    from safetensors.torch import save

    tensors: dict = {}
    tree = _flatten(obj, "", tensors)
    meta = {TREE_KEY: json.dumps(tree)}
    if source_sha256:
        meta[SOURCE_KEY] = source_sha256
    write_atomic(path, save(tensors, metadata=meta))
    return path


def convert(path: str | Path, out: str | Path | None = None, *, trust: bool = False,
            trust_list: TrustList | None = None) -> Path:
    """Convert a checkpoint (trusted, if it is a legacy pickle) to safetensors; returns the new path."""
    src = Path(path).expanduser()
    dst = Path(out).expanduser() if out else converted_sibling(src)
    if dst == src:
        raise CheckpointError(f"{src} is already safetensors")
    obj = load_checkpoint(src, trust=trust, trust_list=trust_list, notice=lambda _m: None)
    save_safetensors(obj, dst, source_sha256=sha256_file(src))
    return dst


def describe(path: str | Path) -> str:
    """What a checkpoint is and what loading it would need, read without unpickling."""
    path = Path(path).expanduser()
    _require_file(path)
    if path.suffix == SAFETENSORS_SUFFIX:
        return f"{path}: safetensors (loads without running code)"
    names = pickle_globals(path)
    runs = code_globals(names)
    kind = "torch zip" if zipfile.is_zipfile(path) else "legacy torch/pickle"
    verdict = (f"needs code beyond tensors: {', '.join(runs)}" if runs
               else "tensor-only globals (loads with weights_only=True)")
    return f"{path}: {kind} pickle, sha256 {sha256_file(path)}; {verdict}"
