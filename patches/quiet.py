"""Library warnings a ttsrig user can do nothing about, silenced where ttsrig's own call triggers them.

Each entry is one warning: its category, the start of its message and the module it is attributed to, and why
it is noise. `@silenced(name, ...)` wraps the ttsrig function whose call raises it; inside that call those
warnings, and no others, are ignored. Nothing is filtered globally and standard error is never redirected,
so a new warning still shows (tests/integration/test_quiet_old_cpu.py fails on it).
"""
from __future__ import annotations

import functools
import warnings
from typing import Callable, NamedTuple, TypeVar

F = TypeVar("F", bound=Callable)


class Known(NamedTuple):
    category: type[Warning]
    message: str  # a regular expression, matched at the start of the message
    module: str  # a regular expression for the module the warning is attributed to
    why: str


KNOWN: dict[str, Known] = {
    "weight_norm": Known(
        FutureWarning, r"`torch\.nn\.utils\.weight_norm` is deprecated", r"torch\.nn\.utils\.weight_norm$",
        "the styletts2 package builds its layers with torch's older weight_norm, which still works"),
    "rnn_dropout": Known(
        UserWarning, r"dropout option adds dropout after all but last recurrent layer", r"torch\.nn\.modules\.rnn$",
        "StyleTTS2's config gives its one-layer LSTMs a dropout, which torch ignores there (as upstream does)"),
    "empty_mel_filters": Known(
        UserWarning, r"At least one mel filterbank has all zero values", r"torchaudio\.functional\.functional$",
        "styletts2's multi-resolution STFT loss asks 128 mel bands of a 512-point FFT, as upstream's recipe does"),
}


def silenced(*names: str) -> Callable[[F], F]:
    """Ignore the named KNOWN warnings during each call of the decorated function."""
    unknown = [n for n in names if n not in KNOWN]
    if unknown:
        raise KeyError(f"not a known library warning: {', '.join(unknown)}")

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def quiet(*args, **kwargs):
            with warnings.catch_warnings():
                for name in names:
                    known = KNOWN[name]
                    warnings.filterwarnings("ignore", message=known.message, category=known.category,
                                            module=known.module)
                return function(*args, **kwargs)

        return quiet  # type: ignore[return-value]

    return decorate
