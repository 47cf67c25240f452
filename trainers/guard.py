"""The guard around both trainers' loops: Ctrl-C asks for a save at the next batch boundary, a non-finite
loss stops without saving, and CUDA running out of memory names the setting to lower. Each trainer says
only what is its own (the hint for a bad loss, the batch settings, where the last good checkpoint is)."""
from __future__ import annotations

import signal
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import torch

from envcheck.errors import TtsrigError


class NonFinite(Exception):
    """A loss term became NaN or infinite; raised inside a step, turned into one line by the guard."""

    def __init__(self, term: str, value: float):
        super().__init__(f"{term} = {value}")
        self.term, self.value = term, value


def check_finite(term: str, value: torch.Tensor) -> None:
    if not torch.isfinite(value).all():
        raise NonFinite(term, float(value.detach().float().mean()))


class LoopGuard:
    """`with LoopGuard(...) as guard:` around the epochs; `with guard.step(where):` around each batch;
    `guard.interrupted` after it, to save and stop."""

    def __init__(self, *, last_good: Callable[[], Path | None], nonfinite_fix: str,
                 out_of_memory_fix: Callable[[], str]):
        self.last_good, self.nonfinite_fix, self.out_of_memory_fix = last_good, nonfinite_fix, out_of_memory_fix
        self._signals: list[int] = []
        self._previous = None

    @property
    def interrupted(self) -> bool:
        return bool(self._signals)

    def __enter__(self) -> "LoopGuard":
        self._previous = signal.signal(signal.SIGINT, lambda *_: self._signals.append(1))
        return self

    def __exit__(self, *exc) -> None:
        signal.signal(signal.SIGINT, self._previous)

    @contextmanager
    def step(self, where: str) -> Iterator[None]:
        try:
            yield
        except NonFinite as bad:
            raise TtsrigError(
                f"the {bad.term} loss became {bad.value} {where}; stopped without saving. The last good checkpoint "
                f"is {self.last_good() or 'none (this was the first epoch)'}. {self.nonfinite_fix}") from None
        except torch.cuda.OutOfMemoryError:
            raise TtsrigError(f"CUDA ran out of memory {where}. {self.out_of_memory_fix()}") from None
