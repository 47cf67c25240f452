"""Settings read from files (a vocoder's config.yaml, an F5 run's run.json, StyleTTS2's configs, a voice's
TOML) are checked against a list of known names and plain types before anything is built from them: a
file names values, never classes or code. Imports nothing heavy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Kind:
    """What a setting may hold, and how a message names it."""
    name: str
    accepts: Callable[[object], bool]


def _is_int(value: object) -> bool:
    return type(value) is int  # not bool, which is an int to Python but never meant as one here


def _is_number(value: object) -> bool:
    return _is_int(value) or (type(value) is float and math.isfinite(value))  # nan and inf compute nothing


LIMIT = 1 << 20  # sizes beyond this are typing mistakes, not models (and would exhaust memory)
POSITIVE = Kind("a whole number from 1", lambda v: _is_int(v) and 0 < v <= LIMIT)
COUNT = Kind("a whole number from 0", lambda v: _is_int(v) and 0 <= v <= LIMIT)
NUMBER = Kind("a number", _is_number)
POSITIVE_NUMBER = Kind("a number above 0", lambda v: _is_number(v) and v > 0)
NON_NEGATIVE = Kind("a number from 0", lambda v: _is_number(v) and v >= 0)
FRACTION = Kind("a number from 0 to 1", lambda v: _is_number(v) and 0 <= v <= 1)
FLAG = Kind("true or false", lambda v: type(v) is bool)
TEXT = Kind("a string", lambda v: type(v) is str)
POSITIVE_LIST = Kind("a list of whole numbers from 1", lambda v: type(v) is list and all(POSITIVE.accepts(x) for x in v))


def _int_or_float(text: str) -> object:
    try:
        return int(text)
    except ValueError:
        return float(text)


def argument(kind: Kind) -> Callable[[str], object]:
    """An argparse type for a command-line option that overrides a setting of this kind: the same values
    are accepted on the command line as in the settings file, and a wrong one is argparse's one line."""
    from envcheck.arguments import checked

    return checked(kind.name, _int_or_float, kind.accepts)


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


# -- YAML settings files -----------------------------------------------------------------------------

def load_yaml(text: str, where: str, fix: str) -> object:
    """A YAML settings file's values, or one TtsrigError naming `where`, the problem and `fix`.

    Plain values only (yaml's safe loader: no tags that build objects), and no aliases (`*name`): an alias
    repeats a node by reference, so a file of a kilobyte can name billions of values ("billion laughs"),
    which would exhaust memory as soon as anything walks or copies them. No settings file of the field
    needs them. Nesting is bounded too (yaml's composer recurses)."""
    import yaml

    from envcheck.errors import TtsrigError

    class NoAliases(yaml.SafeLoader):
        def compose_node(self, parent, index):  # noqa: ANN001, ANN202 (yaml's own signature)
            if self.check_event(yaml.AliasEvent):
                mark = self.peek_event().start_mark
                raise TtsrigError(f"{where}:{mark.line + 1}: YAML aliases (*name) are not accepted in settings "
                                  f"files (they can make a small file expand without bound). Write the values "
                                  f"out. {fix}")
            if self._depth >= MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise TtsrigError(f"{where}:{mark.line + 1} is nested more than {MAX_YAML_DEPTH} levels deep: it is "
                                  f"not a settings file. {fix}")
            self._depth += 1
            try:
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

    loader = NoAliases(text)
    loader._depth = 0
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise TtsrigError(f"{where} is not valid YAML ({str(exc).splitlines()[0]}): {fix}") from None
    finally:
        loader.dispose()


MAX_YAML_DEPTH = 32  # StyleTTS2's configs nest 4 levels, a Vocos config 3


def read_yaml(path, what: str, fix: str) -> object:  # noqa: ANN001 (a str or Path)
    """A YAML settings file named by the user or by another settings file: a regular file of bounded size
    (envcheck.reading), UTF-8, parsed by load_yaml."""
    from pathlib import Path

    from envcheck import reading

    text = reading.read_text(Path(path), what, fix)
    return load_yaml(text, f"{what} {path}", fix)
