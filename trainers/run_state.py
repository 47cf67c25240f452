"""What both trainers do with a run folder: a checkpoint is a pair (inference weights + resume state) written
all or nothing, the newest readable state is the one to resume, and the RNG states travel with it.

The state is the pair's record, so it is written second: a run stopped between the two writes leaves the
weights without their state, and --resume continues from the state before, redoing that epoch exactly
(and writing the same weights again). A state whose weights are missing (a run of an older ttsrig stopped
there, or a file deleted by hand) gets them back from its own model when the run resumes."""
from __future__ import annotations

import math
import random
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Protocol

import numpy as np
import torch

from envcheck import crashpoint, paths, reading, run_lock
from envcheck.atomic import write_atomic
from envcheck.errors import TtsrigError
from patches.checkpoints import save_safetensors

STATE_SUFFIX = ".state.safetensors"


class Resumable(Protocol):
    def resume(self) -> None: ...

    def run(self) -> list[dict]: ...


def refuse_another_run(out: Path) -> None:
    """A new run never starts in a folder that holds another run's resume state."""
    if any(out.glob(f"*{STATE_SUFFIX}")):
        raise TtsrigError(f"{out} already holds a run: --resume to continue it, or choose another --out")


def check_out(out: Path, resume: bool) -> None:
    """--out before any model is built: a folder that can be made (new run, and not another run's) or one
    that exists (--resume)."""
    paths.output_folder(out, "--out")
    if not resume:
        refuse_another_run(out)
    elif not out.is_dir():
        raise TtsrigError(f"nothing to resume: --out {out} does not exist. Name the run folder to continue, or "
                          "leave out --resume to start a new run there")


@contextmanager
def run_folder(out: Path) -> Iterator[None]:
    """Make --out for the run inside the block, which is the folder's only run meanwhile (two runs would write
    the same checkpoints); when the block fails before the first checkpoint, the folders this made are removed
    again, so a failed start leaves nothing half-written."""
    with run_lock.held("train", out, lambda pid: (
            f"another training run (process {pid}) is writing into --out {out} now; let it finish (or stop it), "
            "then --resume; to train side by side, choose another --out")):
        with paths.removed_on_failure(out, lambda: any(out.glob(f"*{STATE_SUFFIX}"))):
            try:
                out.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise TtsrigError(f"cannot make --out {out} ({exc.strerror or exc}): choose a folder you may "
                                  "write") from None
            yield


def train(trainer: Resumable, resume: bool) -> list[dict]:
    """Continue the run in the trainer's folder (resume) or begin it; the history of every epoch."""
    if resume:
        trainer.resume()
    return trainer.run()


@contextmanager
def resuming_from(path: Path) -> Iterator[None]:
    """Reading a state back into a trainer: a state it did not write (edited by hand, another trainer's, another
    version's) is one line that names the file, not a traceback from deep inside the resume."""
    try:
        yield
    except torch.OutOfMemoryError:
        raise  # the card's fault, not the file's
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
        what = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise TtsrigError(f"cannot resume from {path}: it is not a state this trainer wrote, or it was changed since "
                          f"({type(exc).__name__}{': ' + what if what else ''}). Move it out of {path.parent} to "
                          "resume from the run's state before it, or start a new --out.") from None


def recorded_count(value: object, name: str) -> int:
    """A count a state recorded (0 or more); anything else is a ValueError, which resuming_from makes one line."""
    # isfinite first: int() of an infinity (JSON's Infinity, as a hand edit may write) is an OverflowError
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or value != int(value) or value < 0):
        raise ValueError(f"{name} is {value!r}, not a whole number of 0 or more")
    return int(value)


def latest_state(out: Path, counter: str) -> Path | None:
    """The readable *.state.safetensors with the highest `counter` (a scalar tensor in it)."""
    from safetensors import safe_open

    best, best_count = None, -1
    for path in out.glob(f"*{STATE_SUFFIX}"):
        if not reading.is_regular(path, follow=False):
            continue  # the run's own files are regular: a pipe or link here is no state of it
        try:
            with safe_open(str(path), framework="pt") as fh:
                count = int(fh.get_tensor(counter).item())
        except Exception:
            continue  # unreadable: an older good one is used
        if count > best_count:
            best, best_count = path, count
    return best


def write_pair(out: Path, name: str, weights_suffix: str, weights: bytes, state: dict, counter: str) -> Path:
    """`name + weights_suffix`, then `name.state.safetensors` (the record: see the module's docstring); when
    either write fails neither stays."""
    weights_path, state_path = out / f"{name}{weights_suffix}", out / f"{name}{STATE_SUFFIX}"
    try:
        write_atomic(weights_path, weights)
        try:
            crashpoint.reached("train:between-weights-and-state")
            save_safetensors(state, state_path)
        except BaseException:
            weights_path.unlink(missing_ok=True)  # a pair or nothing
            raise
    except OSError as exc:
        last = latest_state(out, counter)
        raise TtsrigError(f"could not write checkpoint {name} ({exc.strerror or exc}; disk full?). Nothing "
                          f"half-written; the last good checkpoint is {last or 'none yet'}. Free space "
                          "(envcheck's disk check) and --resume.") from None
    return weights_path


def restore_weights(state_path: Path, weights_suffix: str, weights: Callable[[], bytes]) -> Path | None:
    """After resuming from `state_path`: its pair's inference weights, written from the resumed model
    (`weights()`) when they are missing; the path written, or None when they were there."""
    name = state_path.name[:-len(STATE_SUFFIX)]
    weights_path = state_path.with_name(name + weights_suffix)
    if weights_path.exists():
        return None
    write_atomic(weights_path, weights())
    return weights_path


def rng_state(python=random) -> dict:
    """torch (and CUDA), numpy and Python RNG states; `python` is the random module or a Random."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": list(python.getstate()[1]),
             "numpy": torch.from_numpy(keys.astype(np.int64)), "numpy_pos": int(pos),
             "numpy_gauss": [int(has_gauss), float(gauss)]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, python=random) -> None:
    torch.set_rng_state(state["torch"])
    python.setstate((3, tuple(state["python"]), None))
    has_gauss, gauss = state["numpy_gauss"]
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], has_gauss, gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
