"""Settings read from files (a vocoder's config.yaml, an F5 run's run.json, StyleTTS2's configs, a voice's
TOML) are checked against a list of known names and plain types before anything is built from them: a
file names values, never classes or code. Imports nothing heavy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Kind:
    """What a setting may hold, and how a message names it."""
    name: str
    accepts: Callable[[object], bool]


def _is_int(value: object) -> bool:
    return type(value) is int  # not bool, which is an int to Python but never meant as one here


LIMIT = 1 << 20  # sizes beyond this are typing mistakes, not models (and would exhaust memory)
POSITIVE = Kind("a whole number from 1", lambda v: _is_int(v) and 0 < v <= LIMIT)
COUNT = Kind("a whole number from 0", lambda v: _is_int(v) and 0 <= v <= LIMIT)
NUMBER = Kind("a number", lambda v: _is_int(v) or type(v) is float)
FLAG = Kind("true or false", lambda v: type(v) is bool)
TEXT = Kind("a string", lambda v: type(v) is str)
POSITIVE_LIST = Kind("a list of whole numbers from 1", lambda v: type(v) is list and all(POSITIVE.accepts(x) for x in v))


def one_of(*choices: object) -> Kind:
    return Kind(" or ".join(repr(c) for c in choices),
                lambda v: any(type(v) is type(c) and v == c for c in choices))


def optional(kind: Kind) -> Kind:
    return Kind(f"{kind.name}, or null", lambda v: v is None or kind.accepts(v))


def unknown_keys(values: dict, fields: dict[str, Kind]) -> list[str]:
    return sorted(str(k) for k in values if k not in fields)


def check(values: object, fields: dict[str, Kind], where: str, *, required: tuple[str, ...] = (), fix: str = "",
          allow_unknown: bool = False) -> dict:
    """`values` if it is a mapping of known names to values of their kinds; else TtsrigError naming the first
    problem, the allowed names or kind, and `fix`."""
    from envcheck.errors import TtsrigError

    tail = f" {fix}" if fix else ""
    if not isinstance(values, dict):
        raise TtsrigError(f"{where} is {type(values).__name__}, not a mapping of settings.{tail}")
    unknown = unknown_keys(values, fields)
    if unknown and not allow_unknown:
        raise TtsrigError(f"{where}: unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                          f"allowed: {', '.join(fields)}.{tail}")
    missing = [k for k in required if k not in values]
    if missing:
        raise TtsrigError(f"{where}: missing {', '.join(missing)}.{tail}")
    for key, value in values.items():
        kind = fields.get(key)
        if kind is not None and not kind.accepts(value):
            shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
            raise TtsrigError(f"{where}: {key} = {shown} should be {kind.name}.{tail}")
    return values
