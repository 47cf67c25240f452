"""The command line as every ttsrig command reads it: a wrong option or value is one line and exit status 2.

`Parser` is argparse's parser with a one-line error (argparse prints its whole usage first, which buries
the line that matters). `whole` and `number` are argparse types that check a value's range where it is
read: `--speed 0`, `--steps 0` or a negative count is refused naming the option and what it takes, never
a traceback or junk audio (with exit status 0) later. `SEED` is every command's --seed (what torch's and
numpy's generators take); `text` a text argument that must be UTF-8 (`lone_surrogate` finds where it is not).
Standard library only.
"""
from __future__ import annotations

import argparse
import math
import re
from typing import Callable, NoReturn


class Parser(argparse.ArgumentParser):
    """argparse, with errors on one line: `PROG: error: argument --speed: ... (PROG --help lists the options)`."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} ({self.prog} --help lists the options)\n")


def _shown(value: float) -> str:
    """A bound as written: whole numbers in full (4294967295, not 4.29497e+09), others short."""
    return str(value) if isinstance(value, int) else f"{value:g}"


def _range_words(low: float | None, high: float | None, above: bool) -> str:
    lo, hi = (None if v is None else _shown(v) for v in (low, high))
    if low is not None and high is not None:
        return f"from {lo} to {hi}" if not above else f"above {lo} and at most {hi}"
    if low is not None:
        return f"above {lo}" if above else f"from {lo}"
    return f"at most {hi}" if high is not None else ""


def checked(words: str, convert: Callable[[str], object], fits: Callable[[object], bool]) -> Callable[[str], object]:
    """An argparse type: `convert` the text (ValueError: not a value), then `fits` it; `words` name what it takes."""
    def parse(text: str) -> object:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {words}") from None
        if not fits(value):
            raise argparse.ArgumentTypeError(f"{text} is not {words}")
        return value

    parse.__name__ = words  # argparse names the type by it in its own messages
    return parse


def whole(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """A whole number in [low, high] (either end open when None)."""
    words = " ".join(filter(None, ("a whole number", _range_words(low, high, False))))
    return checked(words, int, lambda v: (low is None or v >= low) and (high is None or v <= high))


def number(low: float | None = None, high: float | None = None, *, above: bool = False) -> Callable[[str], float]:
    """A finite number in [low, high] (`above`: low itself excluded; either end open when None)."""
    words = " ".join(filter(None, ("a number", _range_words(low, high, above))))
    return checked(words, float, lambda v: math.isfinite(v) and (low is None or (v > low if above else v >= low))
                   and (high is None or v <= high))


# A seed seeds torch (which takes 64 bits), Python's random, and numpy's legacy generator, which takes 32: every
# command's --seed (and a config's seed) is a whole number in numpy's range.
SEED_MAX = 2 ** 32 - 1
SEED = whole(0, SEED_MAX)

_SURROGATE = re.compile("[\ud800-\udfff]")


def lone_surrogate(value: str) -> str | None:
    """Where `value` is not UTF-8 text: None, or the offending part as bytes, e.g. `b'caf\\xe9'`. Python reads
    a command line's (and, in some locales, standard input's) bytes that are not UTF-8 as lone surrogates,
    which no tokenizer or file can take; a JSON "\\udce9" escape gives the same."""
    found = _SURROGATE.search(value)
    if found is None:
        return None
    start = max(0, found.start() - 12)
    part = value[start:found.end() + 12]
    try:  # the bytes as they came (Python's surrogateescape), else the escapes as written
        return repr(part.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:
        return repr(part.encode("utf-8", "backslashreplace"))


NOT_UTF8_FIX = "write it in UTF-8 (set a UTF-8 locale, e.g. LANG=C.UTF-8, or convert with iconv -t utf-8)"


def text(value: str) -> str:
    """An argparse type for text that is spoken or trained on: refused unless it is UTF-8 (see lone_surrogate)."""
    bad = lone_surrogate(value)
    if bad is not None:
        raise argparse.ArgumentTypeError(f"is not UTF-8 text (at {bad}): {NOT_UTF8_FIX}")
    return value
