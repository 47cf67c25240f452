"""The command line as every ttsrig command reads it: a wrong option or value is one line and exit status 2.

`Parser` is argparse's parser with a one-line error (argparse prints its whole usage first, which buries
the line that matters). `whole` and `number` are argparse types that check a value's range where it is
read: `--speed 0`, `--steps 0` or a negative count is refused naming the option and what it takes, never
a traceback or junk audio (with exit status 0) later. Standard library only.
"""
from __future__ import annotations

import argparse
import math
from typing import Callable, NoReturn


class Parser(argparse.ArgumentParser):
    """argparse, with errors on one line: `PROG: error: argument --speed: ... (PROG --help lists the options)`."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} ({self.prog} --help lists the options)\n")


def _range_words(low: float | None, high: float | None, above: bool) -> str:
    if low is not None and high is not None:
        return f"from {low:g} to {high:g}" if not above else f"above {low:g} and at most {high:g}"
    if low is not None:
        return f"above {low:g}" if above else f"from {low:g}"
    return f"at most {high:g}" if high is not None else ""


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
