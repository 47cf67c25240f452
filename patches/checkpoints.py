"""Safe checkpoint loading, shared by trainers/ and voices/.

- a checkpoint file is read once; its sha256, the trust check and the load all use those same bytes
  (the path is never opened again, so a file swapped in between is never what gets unpickled);
- safetensors files load as they are (no code can run);
- pickled checkpoints load with `torch.load(weights_only=True)` (torch's restricted unpickler);
- a legacy pickle that needs more (published StyleTTS2 checkpoints: "Unsupported global: GLOBAL getattr")
  is unpickled with `weights_only=False` for this one call only, and only when the user trusts it: its
  sha256 is in the trust list (`python -m patches trust add FILE`) or the caller passes `trust=True`
  (the `--trust-checkpoint` flag of every command);
- a legacy file can be converted once to safetensors (`python -m patches convert FILE`); the converted
  twin records the source's sha256, and a later load of the legacy path uses the twin only when that
  record equals the sha256 of the bytes being loaded (otherwise the twin is ignored, with a note).

Whether a pickle is "tensor-only" is torch's own decision: `inspect` runs torch's restricted unpickler
on the bytes (it resolves only its allowlisted globals, so nothing in the file can run) and lists the
globals and opcodes it refused, found by reading opcodes (patches/pickle_scan.py).

torch.load's default is never changed globally.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

from envcheck import paths, reading
from envcheck.atomic import write_atomic, write_output
from envcheck.digests import bytes_sha256
from envcheck.errors import TtsrigError
from patches.pickle_scan import is_torch_zip, refused_globals, refused_opcodes, scan_checkpoint
from patches.trust import TrustList

SAFETENSORS_SUFFIX = ".safetensors"
TREE_KEY = "ttsrig.tree"
SOURCE_KEY = "ttsrig.source_sha256"


class CheckpointError(TtsrigError):
    """A checkpoint that cannot be read: missing, corrupt, or of an unsupported layout."""


class UntrustedCheckpoint(CheckpointError):
    """A legacy pickle whose unpickling would run code, and the user has not said they trust it."""


def add_trust_argument(parser: argparse.ArgumentParser) -> None:
    """The one flag every loading command offers, with the same words everywhere."""
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="unpickle a legacy checkpoint even though its sha256 is not in the trust list "
                             "(this runs code from the file: only for files you know)")


# -- reading a file once ---------------------------------------------------------------------------

@dataclass
class CheckpointBytes:
    """A checkpoint read once. Its hash, the trust check and the load all use these bytes: the path is
    never opened again, so a file swapped after the check is not what gets unpickled."""
    path: Path
    data: bytes

    @cached_property
    def sha256(self) -> str:
        return bytes_sha256(self.data)


def _require_file(path: Path) -> None:
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint: name the checkpoint file inside it.")
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist (looked at {path.resolve()}). Check the path, "
                              "or train one with trainers/ or fetch the published pretrain.")


def read_checkpoint(path: str | Path) -> CheckpointBytes:
    """One open, one read (a large checkpoint is held in memory once, never read twice)."""
    path = Path(path).expanduser()
    _require_file(path)
    fix = "check its permissions (or copy it somewhere you can read)"
    try:
        with reading.open_file(path, "checkpoint", fix) as handle:  # a regular file: a pipe would block
            data = handle.read()
    except TtsrigError as exc:
        raise CheckpointError(str(exc)) from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}. Check its permissions "
                              "(or copy it somewhere you can read).") from None
    return CheckpointBytes(path, data)


# -- what a pickle would import, and torch's verdict on it -------------------------------------------

def _what_it_needs(cp: CheckpointBytes, refusal: BaseException) -> str:
    """The globals and opcodes torch's restricted unpickler refused, for the user to judge."""
    scan = scan_checkpoint(cp.data)
    if not scan.readable:  # torch refused bytes that are no pickle at all: trusting them would not help
        raise _unreadable(cp, refusal)
    names, opcodes = refused_globals(scan), refused_opcodes(scan)
    parts = []
    if names:
        parts.append(", ".join(names[:8]) + (" ..." if len(names) > 8 else ""))
    if opcodes:
        parts.append(f"pickle opcodes torch's restricted loader does not run ({', '.join(opcodes)})")
    if not parts:
        parts.append(f"what torch's restricted loader refused ({_torch_reason(refusal)})")
    return " and ".join(parts)


def _torch_reason(exc: BaseException) -> str:
    text = str(exc)
    marker = "WeightsUnpickler error: "
    if marker in text:
        text = text.split(marker, 1)[1]
    return text.strip().splitlines()[0].split(". ")[0] if text.strip() else type(exc).__name__


def _torch_load(cp: CheckpointBytes, map_location: Any, *, weights_only: bool) -> Any:
    import torch

    with warnings.catch_warnings():
        # hand-made pickles use other protocols; torch's note about that would only confuse the verdict
        warnings.filterwarnings("ignore", message="Detected pickle protocol")
        # From the bytes already hashed; mmap would need the path (opened again), so it stays off.
        return torch.load(io.BytesIO(cp.data), map_location=map_location, weights_only=weights_only, mmap=False)


def _is_weights_only_refusal(exc: BaseException) -> bool:
    import pickle

    return isinstance(exc, pickle.UnpicklingError) and "Weights only load failed" in str(exc)


def _unreadable(cp: CheckpointBytes, exc: BaseException) -> CheckpointError:
    if _looks_like_safetensors(cp.data):
        return CheckpointError(f"{cp.path} holds safetensors data but is not named {SAFETENSORS_SUFFIX}: rename "
                               f"it to {cp.path.with_suffix(SAFETENSORS_SUFFIX).name} and load that.")
    reason = _torch_reason(exc) if _is_weights_only_refusal(exc) else _last_line(exc)
    return CheckpointError(f"{cp.path} is not a readable torch checkpoint ({reason}). It may be "
                           "truncated or of another format: fetch or save it again.")


def _last_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


# -- safetensors from bytes -------------------------------------------------------------------------

def _safetensors_header(data: bytes) -> dict:
    """The JSON header of a safetensors file (8-byte little-endian header length, then JSON)."""
    size = int.from_bytes(data[:8], "little") if len(data) >= 8 else -1
    if size < 2 or 8 + size > len(data):
        raise ValueError("no safetensors header")
    header = reading.loads_json(data[8:8 + size])
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(header, dict) or not isinstance(meta or {}, dict):
        raise ValueError("malformed safetensors header")
    return header


def _safetensors_metadata(data: bytes) -> dict:
    """The `__metadata__` of a safetensors file."""
    return _safetensors_header(data).get("__metadata__") or {}


# Bytes per element of each dtype the safetensors format defines.
SAFETENSORS_DTYPES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2,
                      "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


def safetensors_layout_problem(data: bytes) -> str | None:
    """What makes these bytes no valid safetensors file, or None: the header as the format defines it, each
    tensor's dtype, shape and byte range, the ranges back to back and filling the data (as safetensors'
    own reader checks, without building a tensor)."""
    try:
        header = _safetensors_header(data)
    except ValueError as exc:
        return str(exc)
    size = int.from_bytes(data[:8], "little")
    buffer = len(data) - 8 - size
    ranges = []
    for name, entry in header.items():
        if name == "__metadata__":
            if not all(isinstance(v, str) for v in entry.values()):
                return "__metadata__ values must be strings"
            continue
        if not isinstance(entry, dict) or entry.get("dtype") not in SAFETENSORS_DTYPES:
            return f"tensor {name[:60]!r} has no known dtype"
        shape, offsets = entry.get("shape"), entry.get("data_offsets")
        if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
            return f"tensor {name[:60]!r} has no valid shape"
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(n) is int for n in offsets)
                and 0 <= offsets[0] <= offsets[1] <= buffer):
            return f"tensor {name[:60]!r} lies outside the file's data"
        elements = 1
        for n in shape:
            elements *= n
        if offsets[1] - offsets[0] != elements * SAFETENSORS_DTYPES[entry["dtype"]]:
            return f"tensor {name[:60]!r}: its byte range does not fit its shape and dtype"
        ranges.append(offsets)
    end = 0
    for begin, finish in sorted(ranges):
        if begin != end:
            return "the tensors' byte ranges overlap or leave gaps"
        end = finish
    return None if end == buffer else "the data is longer than the tensors"


def _looks_like_safetensors(data: bytes) -> bool:
    try:
        _safetensors_metadata(data)
    except ValueError:
        return False
    return True


def _safetensors_from_bytes(cp: CheckpointBytes, map_location: Any) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        meta = _safetensors_metadata(cp.data)
        tensors = load(cp.data)
        tree = reading.loads_json(meta[TREE_KEY]) if TREE_KEY in meta else None
    except (SafetensorError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{cp.path} is not a readable safetensors file ({exc}). It may be truncated by an "
                              "interrupted download or copy: fetch or convert it again.") from None
    device = _device(map_location)
    if device != "cpu":
        tensors = {key: value.to(device) for key, value in tensors.items()}
    if tree is None:
        return tensors
    try:
        return _unflatten(tree, tensors)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise CheckpointError(f"{cp.path} has a damaged {TREE_KEY} record: convert it again from the "
                              "original checkpoint.") from None


def _device(map_location: Any) -> str:
    import torch

    return str(map_location) if isinstance(map_location, (str, torch.device)) else "cpu"


def load_safetensors(path: Path, map_location: Any = "cpu") -> dict:
    return _safetensors_from_bytes(read_checkpoint(path), map_location)


def recorded_source(data: bytes) -> str | None:
    """The sha256 of the file a converted twin was made from, as its metadata records it."""
    try:
        source = _safetensors_metadata(data).get(SOURCE_KEY)
    except ValueError:
        return None
    return source if isinstance(source, str) else None


# -- loading ----------------------------------------------------------------------------------------

def converted_sibling(path: Path) -> Path:
    return path.with_suffix(SAFETENSORS_SUFFIX)


def _load_converted(cp: CheckpointBytes, map_location: Any, notice: Callable[[str], None]) -> dict | None:
    """The converted twin's weights, only if the twin records exactly these bytes as its source."""
    twin_path = converted_sibling(cp.path)
    if twin_path == cp.path or not twin_path.is_file():
        return None
    try:
        twin = read_checkpoint(twin_path)
    except CheckpointError as exc:
        notice(f"ignored the converted twin {twin_path}: {exc}")
        return None
    source = recorded_source(twin.data)
    if source is None:  # someone else's safetensors file of the same name: never a stand-in
        notice(f"ignored {twin_path}: it records no source, so it is not a conversion of {cp.path}.")
        return None
    if source != cp.sha256:
        # A stale twin (the original changed since): other weights, so never used silently.
        notice(f"ignored {twin_path}: it records source sha256 {source}, but {cp.path} has sha256 "
               f"{cp.sha256}; it was not converted from this file (convert again: python -m patches convert "
               f"{cp.path}).")
        return None
    return _safetensors_from_bytes(twin, map_location)


def _trusted_by(cp: CheckpointBytes, trust: bool, trust_list: TrustList | None) -> str | None:
    if trust:
        return "--trust-checkpoint"
    trust_list = trust_list if trust_list is not None else TrustList.load()
    return f"the trust list {trust_list.path}" if trust_list.contains(cp.sha256) else None


def load_checkpoint(path: str | Path, *, map_location: Any = "cpu", trust: bool = False,
                    trust_list: TrustList | None = None,
                    notice: Callable[[str], None] | None = None) -> dict:
    """Load a checkpoint the safe way; see the module docstring for the rules."""
    notice = notice or (lambda message: print(message, file=sys.stderr))
    return _load(read_checkpoint(path), map_location, trust, trust_list, notice)


def _load(cp: CheckpointBytes, map_location: Any, trust: bool, trust_list: TrustList | None,
          notice: Callable[[str], None]) -> dict:
    if cp.path.suffix == SAFETENSORS_SUFFIX:
        return _safetensors_from_bytes(cp, map_location)
    try:
        return _torch_load(cp, map_location, weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError or ValueError by case
        refusal = exc
    if not _is_weights_only_refusal(refusal):
        raise _unreadable(cp, refusal) from None

    converted = _load_converted(cp, map_location, notice)
    if converted is not None:
        return converted
    trusted_by = _trusted_by(cp, trust, trust_list)
    if not trusted_by:
        raise UntrustedCheckpoint(refusal_message(cp, refusal))
    try:
        # Local and explicit: only this call, only for the bytes the user vouched for.
        loaded = _torch_load(cp, map_location, weights_only=False)
    except Exception as exc:
        raise CheckpointError(f"{cp.path} is trusted but could not be unpickled: {_last_line(exc)}") from None
    notice(f"loaded legacy pickle {cp.path} (trusted by {trusted_by}). Convert it once to safetensors so no "
           f"code runs next time: python -m patches convert {cp.path}")
    return loaded


def refusal_message(cp: CheckpointBytes, refusal: BaseException) -> str:
    path = cp.path
    return (f"refused to unpickle {path}: it is a legacy pickled checkpoint that needs {_what_it_needs(cp, refusal)}. "
            "Unpickling it would run code from the file, so ttsrig does that only for files you trust.\n"
            f"  sha256: {cp.sha256}\n"
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


def save_safetensors(obj: dict, path: Path, *, source_sha256: str | None = None, flag: str | None = None) -> Path:
    """Write any nested checkpoint of tensors and plain values as safetensors, atomically; `flag`: the option
    by which the user named `path` (its links are followed, a pipe written into: envcheck.atomic)."""
    from safetensors.torch import save

    tensors: dict = {}
    tree = _flatten(obj, "", tensors)
    meta = {TREE_KEY: json.dumps(tree)}
    if source_sha256:
        meta[SOURCE_KEY] = source_sha256
    data = save(tensors, metadata=meta)
    if flag:
        write_output(path, data, flag)
    else:
        write_atomic(path, data)
    return path


def _already_safetensors(path: Path) -> CheckpointError:
    return CheckpointError(f"{path} is already safetensors: it loads without unpickling, there is nothing "
                           "to convert.")


def _check_output(src: Path, dst: Path) -> None:
    """convert writes a new file beside its input, never over it or over a file it did not write."""
    if dst.is_dir():
        raise CheckpointError(f"-o {dst} is a folder: name the file to write, e.g. "
                              f"{dst / converted_sibling(src).name}")
    if os.path.abspath(dst) == os.path.abspath(src) or (dst.exists() and os.path.samefile(src, dst)):
        raise CheckpointError(f"refused to write {dst}: it is the input {src} itself (same file, or a link "
                              "to it). Choose another -o.")
    paths.output_file(dst, "-o", make_parents=True)  # a parent that is a file, a read-only disk: refused now
    if not dst.parent.is_dir():
        raise CheckpointError(f"cannot write {dst}: the folder {dst.parent} does not exist. Create it or "
                              "choose another -o.")
    if dst.is_file() and recorded_source(_header_bytes(dst)) is None:
        raise CheckpointError(f"refused to write over {dst}: it exists and was not written by "
                              "`python -m patches convert`. Move it away or choose another -o.")


def _header_bytes(path: Path) -> bytes:
    """The length field and JSON header of a (possible) safetensors file; its tensors are not read."""
    try:
        with reading.open_file(path, "checkpoint", "") as handle:
            head = handle.read(8)
            size = int.from_bytes(head, "little") if len(head) == 8 else 0
            return head + handle.read(min(size, 100 << 20))  # safetensors caps headers at 100 MB
    except (OSError, TtsrigError):
        return b""


def convert(path: str | Path, out: str | Path | None = None, *, trust: bool = False,
            trust_list: TrustList | None = None) -> Path:
    """Convert a checkpoint (trusted, if it is a legacy pickle) to safetensors; returns the new path.

    The twin records the sha256 of the very bytes that were converted."""
    src = Path(path).expanduser()
    _require_file(src)
    if src.suffix == SAFETENSORS_SUFFIX:
        raise _already_safetensors(src)
    dst = Path(out).expanduser() if out else converted_sibling(src)
    _check_output(src, dst)
    cp = read_checkpoint(src)
    if _looks_like_safetensors(cp.data):
        raise _already_safetensors(src)
    obj = _load(cp, "cpu", trust, trust_list, notice=lambda _m: None)
    try:
        save_safetensors(obj, dst, source_sha256=cp.sha256, flag="-o")
    except OSError as exc:
        raise CheckpointError(f"cannot write {dst}: {exc.strerror or exc}. Free space or choose another -o.") from None
    return dst


def describe(path: str | Path) -> str:
    """What a checkpoint is and what loading it would need; see describe_checkpoint."""
    return describe_checkpoint(read_checkpoint(path))


def describe_checkpoint(cp: CheckpointBytes) -> str:
    """torch's verdict on these bytes, run by torch's restricted unpickler (which cannot run the file's
    code), and the globals and opcodes it refuses when it refuses."""
    if cp.path.suffix == SAFETENSORS_SUFFIX:
        try:
            source = _safetensors_metadata(cp.data).get(SOURCE_KEY)
        except ValueError as exc:
            raise CheckpointError(f"{cp.path} is not a readable safetensors file ({exc}). It may be truncated: "
                                  "fetch or convert it again.") from None
        problem = safetensors_layout_problem(cp.data)
        if problem:
            raise CheckpointError(f"{cp.path} is not a readable safetensors file ({problem}). It may be truncated "
                                  "or damaged: fetch or convert it again.")
        origin = f", converted from a file with sha256 {source}" if source else ""
        return f"{cp.path}: safetensors, sha256 {cp.sha256}{origin} (loads without running code)"
    kind = "torch zip" if is_torch_zip(cp.data) else "legacy torch/pickle"
    return f"{cp.path}: {kind} pickle, sha256 {cp.sha256}; {_verdict(cp)}"


def needs_trust(cp: CheckpointBytes) -> bool:
    """Whether loading these bytes needs the user's trust: torch's restricted loader (which runs nothing of
    the file) refuses them. Bytes that are no checkpoint at all are one line, as for inspect."""
    if cp.path.suffix == SAFETENSORS_SUFFIX:
        return False
    try:
        _torch_load(cp, "cpu", weights_only=True)
    except Exception as exc:
        if not _is_weights_only_refusal(exc):
            raise _unreadable(cp, exc) from None
        return True
    return False


def _verdict(cp: CheckpointBytes) -> str:
    try:
        _torch_load(cp, "cpu", weights_only=True)
    except Exception as exc:
        if not _is_weights_only_refusal(exc):
            raise _unreadable(cp, exc) from None
        return (f"needs trust: torch's restricted loader (weights_only=True) refuses it; unpickling it needs "
                f"{_what_it_needs(cp, exc)}, which can run code. Trust it only if you know where it comes from.")
    return "tensor-only: loads with weights_only=True (torch's restricted loader accepts every global and opcode in it)"
