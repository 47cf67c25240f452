"""patches.quiet: a known library warning is ignored inside the call that triggers it, and nothing else is."""
from __future__ import annotations

import warnings

import pytest

from patches import quiet


def warn_from(module: str, category: type[Warning], message: str) -> None:
    """A warning attributed to `module`, as the library raising it would be."""
    warnings.warn_explicit(message, category, f"/venv/{module.replace('.', '/')}.py", 1, module=module,
                           registry={})


WEIGHT_NORM = ("torch.nn.utils.weight_norm", FutureWarning,
               "`torch.nn.utils.weight_norm` is deprecated in favor of `torch.nn.utils.parametrizations.weight_norm`.")


@quiet.silenced("weight_norm")
def builds_a_model(*warnings_to_raise) -> str:
    for args in warnings_to_raise:
        warn_from(*args)
    return "built"


def test_the_named_warning_is_ignored_only_inside_the_call():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert builds_a_model(WEIGHT_NORM) == "built"
        assert caught == []
        warn_from(*WEIGHT_NORM)  # the same warning outside the decorated call still shows
    assert [str(w.message) for w in caught] == [WEIGHT_NORM[2]]


@pytest.mark.parametrize("other", [
    ("torch.nn.utils.weight_norm", UserWarning, WEIGHT_NORM[2]),  # another category
    ("torch.nn.utils.weight_norm", FutureWarning, "something else is deprecated"),  # another message
    ("mypackage.layers", FutureWarning, WEIGHT_NORM[2]),  # raised by another module
    ("torch.nn.modules.rnn", UserWarning, "dropout option adds dropout after all but last recurrent layer"),
])
def test_any_other_warning_still_shows(other):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        builds_a_model(WEIGHT_NORM, other)
    assert [(w.category, str(w.message)) for w in caught] == [(other[1], other[2])]


def test_filters_are_restored_after_the_call():
    before = warnings.filters[:]
    builds_a_model(WEIGHT_NORM)
    assert warnings.filters == before


def test_an_unknown_name_is_refused_at_decoration():
    with pytest.raises(KeyError, match="not a known library warning: nope"):
        quiet.silenced("nope")


def test_every_known_warning_says_why():
    for name, known in quiet.KNOWN.items():
        assert issubclass(known.category, Warning) and known.message and known.module and len(known.why) > 20, name
