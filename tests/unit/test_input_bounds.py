"""The shared argparse types of envcheck.arguments: seeds in the range every generator takes, text in UTF-8."""
from __future__ import annotations

import argparse

import pytest

from envcheck import arguments


@pytest.mark.parametrize("given", ["-1", "4294967296", "999999999999999999999", "1.5", "abc", ""])
def test_a_seed_outside_what_numpy_takes_is_refused_naming_the_range(given):
    with pytest.raises(argparse.ArgumentTypeError, match="is not a whole number from 0 to 4294967295"):
        arguments.SEED(given)


@pytest.mark.parametrize("given, expected", [("0", 0), ("4294967295", 2 ** 32 - 1), ("7", 7)])
def test_every_seed_in_range_is_taken(given, expected):
    assert arguments.SEED(given) == expected


def test_a_seed_error_is_argparse_s_one_line(capsys):
    parser = arguments.Parser(prog="say-strong")
    parser.add_argument("--seed", type=arguments.SEED)
    with pytest.raises(SystemExit) as stopped:
        parser.parse_args(["--seed", "-1"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.strip().splitlines() == [
        "say-strong: error: argument --seed: -1 is not a whole number from 0 to 4294967295 "
        "(say-strong --help lists the options)"]


def test_whole_number_bounds_are_written_in_full():
    assert arguments.whole(1, 32).__name__ == "a whole number from 1 to 32"
    assert arguments.whole(0, 10 ** 7).__name__ == "a whole number from 0 to 10000000"
    assert arguments.number(0, 1, above=True).__name__ == "a number above 0 and at most 1"


@pytest.mark.parametrize("text, shown", [
    (b"un caf\xe9".decode("utf-8", "surrogateescape"), "b'un caf\\xe9'"),  # Latin-1 bytes on a command line
    ("caf\udce9", "b'caf\\xe9'"),  # the JSON escape "\udce9"
    ("a\ud800b", "b'a\\\\ud800b'"),  # a surrogate no byte gives
])
def test_text_that_is_not_utf8_is_refused_showing_where(text, shown):
    assert arguments.lone_surrogate(text) == shown
    with pytest.raises(argparse.ArgumentTypeError, match="is not UTF-8 text") as refused:
        arguments.text(text)
    assert shown in str(refused.value) and "LANG=C.UTF-8" in str(refused.value)


@pytest.mark.parametrize("text", ["plain", "naïve café ☃ 中文 🙂", ""])
def test_utf8_text_passes(text):
    assert arguments.lone_surrogate(text) is None and arguments.text(text) == text
