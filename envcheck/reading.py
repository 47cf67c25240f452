"""Reading the files a command is pointed at: by its command line, a settings file, a manifest, a checkpoint's
config or a folder ttsrig made. Every such read goes through here, so each rule holds everywhere:

- Only a regular file is read. A named pipe would block the command forever, a device never ends
  (/dev/zero) and a folder is a mistake: each is one line naming it, and nothing is opened that could
  wait or have side effects.
- Its size is bounded (`limit`): settings, transcripts and verdicts are kilobytes, a manifest megabytes; a
  file far beyond that is a mistake or an attack on memory.
- Links are followed as the caller's policy says. A file the user names is read where its link points.
  A file found inside a data folder (`within`) must lie inside that folder after its links are followed:
  a shared data set must not be able to copy a file such as /etc/shadow into the user's outputs by
  linking to it. A file ttsrig keeps in a folder it made (`follow=False`) is never read through a link.
- JSON is parsed with bounded nesting (json's own recursion ends in a traceback), and a message never
  quotes the content of a file that was not the user's own choice.

Standard library only (bin/bootstrap and envcheck use it before any package is installed).
"""
from __future__ import annotations

import codecs
import errno
import json
import os
import re
import stat
from pathlib import Path
from typing import BinaryIO

from envcheck.atomic import kind_of
from envcheck.errors import TtsrigError

SETTINGS_LIMIT = 8 << 20  # a config, a vocab, a transcript, verdicts, a record: kilobytes in practice
DATA_LIMIT = 1 << 30  # a manifest or metadata.csv of a very large data set; a requirements file
MAX_DEPTH = 64  # nesting of any JSON ttsrig reads; its own formats nest a few levels


def _mb(size: int) -> str:
    return f"{size / (1 << 20):.1f} MB" if size >= 1 << 20 else f"{size} bytes"


def outside(path: Path, within: Path) -> Path | None:
    """The real path of `path` when it lies outside the real `within`, else None."""
    real, root = os.path.realpath(path), os.path.realpath(within)
    return None if real == root or real.startswith(root.rstrip(os.sep) + os.sep) else Path(real)


def open_file(path: Path, what: str, fix: str, *, within: Path | None = None, follow: bool = True,
              limit: int | None = None, streams: bool = False) -> BinaryIO:
    """The regular file `path` (named to the user as `what`; `fix` says where a good one comes from), open
    for reading. Refused in one line: missing, not a regular file, over `limit` bytes, a link where links are
    not followed, or (with `within`) a file whose links lead outside that folder. `streams`: the user named
    it on the command line, so a pipe (`--file <(command)`) or a character device is read too, up to `limit`."""
    path = Path(path)
    if within is not None:
        real = outside(path, within)
        if real is not None:
            raise TtsrigError(f"{what} {path} is a link to {real}, outside {within}: ttsrig reads only files inside "
                              "the folder it was given (a shared data set could otherwise copy any file it links "
                              f"to into your outputs). Copy the file into {within}, or remove the link.")
    try:
        info = os.stat(path) if follow else os.lstat(path)
    except FileNotFoundError:
        raise TtsrigError(f"{what} {path} does not exist: {fix}") from None
    except OSError as exc:
        raise TtsrigError(f"cannot read {what} {path} ({exc.strerror or exc}): fix its permissions, or {fix}") from None
    _check_kind(path, info, what, fix, follow, streams)
    # Opened without blocking (a device's open may wait), except a pipe the user named: it is read as it is
    # meant to be, once its writer is there (`--file <(command)`).
    wait = streams and stat.S_ISFIFO(info.st_mode)
    flags = (os.O_RDONLY | (0 if wait else os.O_NONBLOCK) | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
             | (0 if follow else os.O_NOFOLLOW))
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow:
            raise _link_refused(path, what) from None
        raise TtsrigError(f"cannot read {what} {path} ({exc.strerror or exc}): fix its permissions, or {fix}") from None
    opened = os.fstat(fd)
    try:  # the file opened is the one checked (a swap in between is refused, not read)
        _check_kind(path, opened, what, fix, follow, streams)
        if within is not None and outside(path, within) is not None:
            raise TtsrigError(f"{what} {path} changed into a link while it was read: run again")
        if limit is not None and stat.S_ISREG(opened.st_mode) and opened.st_size > limit:
            raise TtsrigError(f"{what} {path} is {_mb(opened.st_size)}, more than the {_mb(limit)} such a file can be: "
                              f"it is not the file meant. {fix[:1].upper() + fix[1:]}")
    except BaseException:
        os.close(fd)
        raise
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def is_regular(path: Path, follow: bool = True) -> bool:
    """Whether `path` is a regular file (through its links when `follow`), without opening it: the check
    before handing a path to a library that opens it itself (safetensors, soundfile), which a pipe would block."""
    try:
        return stat.S_ISREG((os.stat(path) if follow else os.lstat(path)).st_mode)
    except OSError:
        return False


def _check_kind(path: Path, info: os.stat_result, what: str, fix: str, follow: bool, streams: bool = False) -> None:
    if stat.S_ISLNK(info.st_mode) and not follow:
        raise _link_refused(path, what)
    if stat.S_ISDIR(info.st_mode):
        raise TtsrigError(f"{what} {path} is a folder, not a file: {fix}")
    if streams and (stat.S_ISFIFO(info.st_mode) or stat.S_ISCHR(info.st_mode)):
        return
    if not stat.S_ISREG(info.st_mode):
        raise TtsrigError(f"{what} {path} is {kind_of(info.st_mode)}, not a regular file: ttsrig reads only regular "
                          f"files (a pipe or device could block or never end). {fix[:1].upper() + fix[1:]}")


def _link_refused(path: Path, what: str) -> TtsrigError:
    return TtsrigError(f"{what} {path} is a symbolic link: ttsrig never reads its own files through links (one could "
                       "point anywhere). Replace the link with the file itself.")


def read_bytes(path: Path, what: str, fix: str, *, limit: int = SETTINGS_LIMIT, within: Path | None = None,
               follow: bool = True, streams: bool = False) -> bytes:
    """The bytes of a regular file of at most `limit` bytes (see open_file)."""
    with open_file(path, what, fix, within=within, follow=follow, limit=limit, streams=streams) as handle:
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise TtsrigError(f"cannot read {what} {path} ({exc.strerror or exc}): {fix}") from None
    if len(data) > limit:  # it grew while being read
        raise TtsrigError(f"{what} {path} is more than the {_mb(limit)} such a file can be: it is not the file meant. "
                          f"{fix[:1].upper() + fix[1:]}")
    return data


def read_stream(handle: BinaryIO, what: str, fix: str, *, limit: int = SETTINGS_LIMIT) -> bytes:
    """At most `limit` bytes of a stream that is already open (standard input), read to its end; more is
    refused in one line, after reading only `limit` + 1 bytes (`< /dev/zero` never ends)."""
    parts, size = [], 0
    try:
        while size <= limit:  # a raw stream may return less than asked before its end
            part = handle.read(limit + 1 - size)
            if not part:
                break
            parts.append(part)
            size += len(part)
    except OSError as exc:
        raise TtsrigError(f"cannot read {what} ({exc.strerror or exc}): {fix}") from None
    if size > limit:
        raise TtsrigError(f"{what} is more than the {_mb(limit)} such a text can be: {fix}")
    return b"".join(parts)


def decode_utf8(data: bytes, where: str, fix: str, *, bom: bool = False) -> str:
    """UTF-8 text (after a BOM when `bom`); not UTF-8 is refused naming the line and the byte."""
    start = len(codecs.BOM_UTF8) if bom and data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = start + exc.start
        line = data.count(b"\n", 0, at) + 1
        raise TtsrigError(f"{where}:{line} is not UTF-8 text (byte 0x{data[at]:02x}): {fix}") from None


def read_text(path: Path, what: str, fix: str, *, limit: int = SETTINGS_LIMIT, within: Path | None = None,
              follow: bool = True, bom: bool = False, streams: bool = False) -> str:
    """A UTF-8 text file (see open_file); `bom`: a leading byte-order mark is allowed and dropped."""
    data = read_bytes(path, what, fix, limit=limit, within=within, follow=follow, streams=streams)
    return decode_utf8(data, f"{what} {path}", f"re-save it as UTF-8, or {fix}", bom=bom)


# -- JSON -------------------------------------------------------------------------------------------

class TooDeep(ValueError):
    """JSON nested deeper than MAX_DEPTH (a ValueError, as json's own errors are)."""


def loads_json(text: str | bytes, max_depth: int = MAX_DEPTH) -> object:
    """json.loads, with nesting bounded: deeper input is a TooDeep (a ValueError), never a RecursionError."""
    if _depth_over(text, max_depth):
        raise TooDeep(f"nested more than {max_depth} levels deep")
    try:
        return json.loads(text)
    except RecursionError:
        raise TooDeep(f"nested more than {max_depth} levels deep") from None


def _depth_over(text: str | bytes, max_depth: int) -> bool:
    """Whether the brackets outside strings nest deeper than max_depth (a quick scan, before any recursion)."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    if data.count(b"[") + data.count(b"{") <= max_depth:
        return False
    brackets = _NOT_BRACKET.sub(b"", _STRING.sub(b"", data))
    depth = 0
    for byte in brackets:
        depth += 1 if byte in (0x5B, 0x7B) else -1
        if depth > max_depth:
            return True
    return False


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]")


def read_json(path: Path, what: str, fix: str, *, limit: int = SETTINGS_LIMIT, within: Path | None = None,
              follow: bool = True) -> object:
    """A JSON file (see open_file and loads_json); invalid JSON is one line naming the file and the fix."""
    text = read_text(path, what, fix, limit=limit, within=within, follow=follow)
    try:
        return loads_json(text)
    except ValueError as exc:
        raise TtsrigError(f"{what} {path} is not JSON ({str(exc).splitlines()[0]}): {fix}") from None
