"""What a checkpoint's pickles would import, read from their opcodes (nothing is unpickled or run).

This only DESCRIBES a file for the user (`python -m patches inspect`, the refusal message). Whether a
file is safe is decided by torch's own restricted unpickler (patches/checkpoints.py runs it on the
bytes); the names listed here are the globals and opcodes that unpickler does not accept.

Streams are found the way torch.load finds them: a file that starts with the zip local-header
signature is a zip checkpoint and its `*.pkl` records are the pickles (torch.serialization._is_zipfile
looks at the first four bytes only, so a pickle with a zip appended is a legacy pickle); anything else
is the legacy format, several pickles in a row from the first byte.
"""
from __future__ import annotations

import io
import pickle
import pickletools
import zipfile
from dataclasses import dataclass, field
from typing import IO, Any

ZIP_MAGIC = b"PK\x03\x04"
# The legacy format is five pickles (magic number, protocol, sys info, the object, storage keys),
# then raw storage bytes that must not be read as opcodes.
LEGACY_PICKLES = 5
STRING_OPCODES = {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE",
                  "BINUNICODE8"}
RUNTIME_GLOBAL = "<a global whose name is computed while unpickling>"


class _Mark:
    """The MARK opcode's place on the simulated stack."""


_MARK = _Mark()
_ANY = object()  # a value the walk does not need to know


@dataclass
class PickleScan:
    """Every global a pickle names (after torch's python-2 name mapping) and every opcode it uses.

    `readable`: the first pickle (zip: every `.pkl` record) reads to its STOP; bytes that are no pickle at
    all (text, a truncated file) are not a checkpoint that trust could make loadable."""
    globals: set[str] = field(default_factory=set)
    opcodes: set[str] = field(default_factory=set)
    readable: bool = False

    def merge(self, other: "PickleScan") -> None:
        self.globals |= other.globals
        self.opcodes |= other.opcodes


def is_torch_zip(data: bytes) -> bool:
    """torch.serialization._is_zipfile's rule: the zip signature at offset 0, nowhere else."""
    return data[:4] == ZIP_MAGIC


def scan_checkpoint(data: bytes) -> PickleScan:
    """Globals and opcodes of the pickles torch.load would unpickle from these bytes."""
    scan = PickleScan()
    if is_torch_zip(data):
        walks = [_walk(stream) for stream in _zip_pickles(data)]
        for one in walks:
            scan.merge(one)
        scan.readable = bool(walks) and all(one.complete for one in walks)
        return scan
    stream = io.BytesIO(data)
    for index in range(LEGACY_PICKLES):
        # Real torch.save pickles start with PROTO; past the first one, anything else is storage data.
        if index and data[stream.tell():stream.tell() + 1] != pickle.PROTO:
            break
        one = _walk(stream)
        scan.merge(one)
        scan.readable = scan.readable or one.complete
        if not one.complete:
            break
    return scan


def _zip_pickles(data: bytes) -> list[IO[bytes]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        # infolist keeps duplicate names: torch's reader and Python's may pick different ones, so walk all
        return [archive.open(info) for info in archive.infolist() if info.filename.endswith(".pkl")]
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError):
        return []


@dataclass
class _Walk(PickleScan):
    complete: bool = False


def _walk(stream: IO[bytes]) -> _Walk:
    """Follow one pickle to its STOP, tracking strings through the stack and the memo."""
    walk = _Walk()
    stack: list[Any] = []
    memo: dict[int, Any] = {}
    try:
        for op, arg, _pos in pickletools.genops(stream):
            walk.opcodes.add(op.name)
            _step(op, arg, stack, memo, walk)
            if op.name == "STOP":
                walk.complete = True
                break
    except Exception:  # truncated or not a pickle: what was read so far is the answer
        pass
    return walk


def _step(op: pickletools.OpcodeInfo, arg: Any, stack: list[Any], memo: dict[int, Any],
          walk: PickleScan) -> None:
    name = op.name
    if name in ("GLOBAL", "INST"):
        module, _, attr = str(arg).partition(" ")
        walk.globals.add(torch_name(module, attr))
    if name == "STACK_GLOBAL":
        attr, module = stack.pop(), stack.pop()
        known = isinstance(module, str) and isinstance(attr, str)
        walk.globals.add(torch_name(module, attr) if known else RUNTIME_GLOBAL)
        stack.append(_ANY)
    elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
        memo[int(arg)] = stack[-1]
    elif name == "MEMOIZE":
        memo[len(memo)] = stack[-1]
    elif name in ("GET", "BINGET", "LONG_BINGET"):
        stack.append(memo.get(int(arg), _ANY))
    elif name == "DUP":
        stack.append(stack[-1])
    else:
        _stack_effect(op, stack)
        if name in STRING_OPCODES and isinstance(arg, str):
            stack[-1] = arg


def _stack_effect(op: pickletools.OpcodeInfo, stack: list[Any]) -> None:
    """Pop what the opcode consumes (through the MARK when it takes a mark) and push placeholders."""
    before = op.stack_before
    if pickletools.markobject in before:
        while stack.pop() is not _MARK:
            pass
        count = before.index(pickletools.markobject)
    else:
        count = len(before)
    for _ in range(count):
        stack.pop()
    for item in op.stack_after:
        stack.append(_MARK if item is pickletools.markobject else _ANY)


def torch_name(module: str, attr: str) -> str:
    """`module.attr` as torch's restricted unpickler names it (its python-2 compatibility mapping)."""
    try:
        from torch._utils import IMPORT_MAPPING, NAME_MAPPING
    except ImportError:  # a torch without the mapping applies none
        IMPORT_MAPPING, NAME_MAPPING = {}, {}
    if (module, attr) in NAME_MAPPING:
        module, attr = NAME_MAPPING[(module, attr)]
    elif module in IMPORT_MAPPING:
        module = IMPORT_MAPPING[module]
    return f"{module}.{attr}"


# -- what torch's restricted unpickler accepts --------------------------------------------------------

def weights_only_globals() -> set[str]:
    """The globals torch.load(weights_only=True) resolves: its allowlist plus the user's safe globals."""
    from torch import _weights_only_unpickler as restricted

    users = getattr(restricted, "_get_user_allowed_globals", dict)  # add_safe_globals, where torch has it
    return set(restricted._get_allowed_globals()) | set(users())


def weights_only_opcodes() -> set[str]:
    """The opcodes torch's restricted unpickler implements: exactly the ones its module imports from pickle."""
    from torch import _weights_only_unpickler as restricted

    return {name for name in dir(restricted)
            if name.isupper() and isinstance(getattr(restricted, name), bytes)
            and getattr(pickle, name, None) == getattr(restricted, name)}


def refused_globals(scan: PickleScan) -> list[str]:
    return sorted(scan.globals - weights_only_globals())


def refused_opcodes(scan: PickleScan) -> list[str]:
    return sorted(scan.opcodes - weights_only_opcodes())
