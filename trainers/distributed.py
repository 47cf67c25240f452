"""Several processes, one model: what the trainers do under PyTorch's `torchrun` (torch.distributed, elastic).

Without torchrun (no WORLD_SIZE in the environment, or 1) this is a world of one and every call below is the
identity: nothing changes. Under `torchrun --nproc_per_node=N -m trainers.f5 ...` each process is a rank:
- the backend is NCCL on GPUs (rank r uses cuda:LOCAL_RANK) and gloo on the CPU; a rank whose LOCAL_RANK has
  no GPU, or NCCL asked for with --device cpu, is one line;
- every rank draws the same batches from the run's seed; each batch is cut into passes (trainers.batch_fit)
  and pass k is computed by rank k mod N, each pass's random draws seeded by (seed, step, k), so N processes
  compute exactly the passes one process would, and their weighted gradients are summed across the ranks
  (all-reduce: the gradient averaging of DistributedDataParallel, done here over every trained parameter,
  so a rank without a pass in a step, or a module that takes no part in it, still joins the same collective
  and nothing hangs);
- decisions every rank must share (running out of memory, Ctrl-C, the pass size, the precision: the lowest
  any rank's card computes well) are all-reduced first;
- StyleTTS2's updates (discriminators, generator, SLM adversarial) do not split into passes: there each global
  batch is shared clip by clip (share_of) and each update averages the ranks' weighted gradients;
- only rank 0 writes checkpoints, logs and the progress bar; the checkpoint is the single-process one.
A rank that dies ends the run: torchrun stops the others, and a rank stuck in a collective gives up after
TTSRIG_DIST_TIMEOUT seconds (default 300), with a line naming the rank.
"""
from __future__ import annotations

import contextlib
import datetime
import math
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from envcheck.errors import TtsrigError

TIMEOUT_S, MAX_TIMEOUT_S = 300.0, 7 * 24 * 3600.0  # a week: longer is a typing mistake (and overflows timedelta)
BUCKET = 1 << 24  # gradient elements all-reduced at once (64 MB of float32)


@dataclass
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None  # None: a world of one, no process group

    @property
    def label(self) -> str:
        """' (rank R of N)' under torchrun, for the one line a rank prints when it stops; else ''."""
        return f" (rank {self.rank} of {self.size})" if self.size > 1 else ""

    @property
    def main(self) -> bool:
        """The rank that writes (checkpoints, logs, the progress bar)."""
        return self.rank == 0

    def any(self, flag: bool) -> bool:
        """Whether any rank says yes (every rank gets the same answer)."""
        if self.backend is None:
            return bool(flag)
        return bool(self._reduce(1.0 if flag else 0.0, torch.distributed.ReduceOp.MAX))

    def smallest(self, number: int) -> int:
        if self.backend is None:
            return number
        return int(self._reduce(number, torch.distributed.ReduceOp.MIN))

    def total(self, number: float) -> float:
        """The sum over the ranks."""
        if self.backend is None:
            return number
        return self._reduce(number, torch.distributed.ReduceOp.SUM)

    def _reduce(self, number: float, op) -> float:
        """One number all-reduced with `op` (in float64: exact for the flags, counts and sums above)."""
        value = torch.tensor([float(number)], dtype=torch.float64, device=self._tensor_device())
        torch.distributed.all_reduce(value, op=op)
        return float(value.item())

    def sum_gradients(self, parameters) -> None:
        """Each trained parameter's gradient summed over the ranks, in buckets (a rank whose passes did not
        reach a parameter contributes zeros: every rank makes the same calls)."""
        if self.backend is None:
            return
        params = [p for p in parameters if p.requires_grad]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        start = 0
        while start < len(params):
            bucket, size = [], 0
            while start < len(params) and (not bucket or size + params[start].numel() <= BUCKET):
                bucket.append(params[start])
                size += params[start].numel()
                start += 1
            flat = torch.cat([p.grad.reshape(-1) for p in bucket])
            torch.distributed.all_reduce(flat)
            offset = 0
            for p in bucket:
                p.grad.copy_(flat[offset:offset + p.numel()].view_as(p.grad))
                offset += p.numel()

    def average_gradients(self, parameters, weight: float = 1.0) -> None:
        """sum_gradients divided by the ranks, each rank's gradient first multiplied by `weight` (share_of's:
        with shares of unequal size the mean is still the whole batch's)."""
        if self.backend is None:
            return
        params = [p for p in parameters if p.requires_grad]
        if weight != 1.0:
            for p in params:
                if p.grad is not None:
                    p.grad.mul_(weight)
        self.sum_gradients(params)
        for p in params:
            p.grad.div_(self.size)

    def average(self, values: dict[str, float], weight: float = 1.0) -> dict[str, float]:
        """Each value's mean over the ranks, weighted as average_gradients weighs (the whole batch's loss)."""
        if self.backend is None:
            return values
        names = sorted(values)
        summed = torch.tensor([values[n] * weight for n in names], dtype=torch.float64, device=self._tensor_device())
        torch.distributed.all_reduce(summed)
        return {n: float(v) / self.size for n, v in zip(names, summed.tolist())}

    def check_in_step(self, parameters, when: str) -> None:
        """Every rank holds the same weights (they took the same steps): a cheap all-reduced checksum, so a
        divergence stops the run with a line instead of training N different models."""
        if self.backend is None:
            return
        with torch.no_grad():
            checksum = sum(float(p.double().sum()) for p in parameters)
        high = self._reduce(checksum, torch.distributed.ReduceOp.MAX)
        low = self._reduce(checksum, torch.distributed.ReduceOp.MIN)
        if low != high:
            raise TtsrigError(f"rank {self.rank}: the ranks' weights differ {when} (checksums {low!r} to {high!r}): "
                              "a step was taken on some ranks only; stopped")

    def same_weights(self, module: torch.nn.Module) -> None:
        """Every rank starts from rank 0's weights (a random init or a pretrain loaded on each)."""
        if self.backend is None:
            return
        for tensor in [*module.parameters(), *module.buffers()]:
            torch.distributed.broadcast(tensor.data, src=0)

    def close(self) -> None:
        if self.backend is not None and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()

    def _tensor_device(self) -> str:
        return f"cuda:{self.local_rank}" if self.backend == "nccl" else "cpu"


def timeout() -> datetime.timedelta:
    """How long a rank waits in a collective: TTSRIG_DIST_TIMEOUT seconds (read when a process group starts, so
    a bad value stops only a distributed run, in one line)."""
    raw = os.environ.get("TTSRIG_DIST_TIMEOUT", "").strip()
    if not raw:
        return datetime.timedelta(seconds=TIMEOUT_S)
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not 1 <= seconds <= MAX_TIMEOUT_S:  # nan and inf too
        raise TtsrigError(f"TTSRIG_DIST_TIMEOUT={raw!r} is not a number of seconds from 1 to {MAX_TIMEOUT_S:.0f}: "
                          "set it to how long a rank may wait for the others (e.g. 300, "
                          "the default), or unset it")
    return datetime.timedelta(seconds=seconds)


def _env_count(name: str, default: str | None, low: int) -> int:
    """A whole number torchrun sets in the environment (WORLD_SIZE, RANK, LOCAL_RANK), or one line."""
    raw = os.environ.get(name, default)
    if raw is None or not raw.strip():
        raise TtsrigError(f"{name} is not set although WORLD_SIZE is: start the processes with torchrun, which sets "
                          "both, or unset WORLD_SIZE for one process")
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if value < low:
        raise TtsrigError(f"{name}={raw!r} is not a whole number from {low}: torchrun sets it; unset it (and "
                          "WORLD_SIZE) to train in one process, or start the run with torchrun")
    return value


def join(device: str) -> World:
    """This process's world: one, or its rank under torchrun (the process group started here)."""
    size = _env_count("WORLD_SIZE", "1", 0) if os.environ.get("WORLD_SIZE", "").strip() else 1
    if size <= 1:
        return World()
    rank, local_rank = _env_count("RANK", None, 0), _env_count("LOCAL_RANK", "0", 0)
    if rank >= size:
        raise TtsrigError(f"RANK {rank} is not below WORLD_SIZE {size}: torchrun sets both; start the run with it")
    wait = timeout()
    backend = os.environ.get("TTSRIG_DIST_BACKEND") or ("nccl" if device == "cuda" else "gloo")
    if backend == "nccl" and device != "cuda":
        raise TtsrigError(f"rank {rank}: NCCL needs GPUs, and this run is on the {device}: leave "
                          "TTSRIG_DIST_BACKEND unset (gloo on the CPU) or use --device cuda")
    if device == "cuda":
        cards = torch.cuda.device_count()
        if local_rank >= cards:
            raise TtsrigError(f"rank {rank}: LOCAL_RANK {local_rank}, but this machine shows {cards} GPU(s): "
                              f"--nproc_per_node may not exceed them (CUDA_VISIBLE_DEVICES chooses which)")
        torch.cuda.set_device(local_rank)
    with held_stderr() as logged:
        try:
            torch.distributed.init_process_group(backend, timeout=wait)
        except Exception as exc:  # a rendezvous that never completes, a port in use
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise TtsrigError(f"rank {rank}: the {backend} process group did not start ({first}); check torchrun's "
                              "--rdzv-endpoint / MASTER_ADDR:MASTER_PORT (a port another program holds?)") from None
    sys.stderr.write(logged())  # started: what c10d logged on the way is shown, as without the hold
    return World(rank, size, local_rank, backend)


@contextlib.contextmanager
def held_stderr() -> Iterator[Callable[[], str]]:
    """File descriptor 2 held in a temporary file for the block: c10d's C++ logs every failed connection attempt
    there, with dozens of stack frames, before Python sees the error that the one line names. The text it held
    is given back by the function yielded, after the block; an exception out of the block drops it."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield lambda: text
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            text = held.read().decode(errors="replace")


# Precisions from the one every card computes to the one the fewest do: fp32 anywhere, fp16 (with a scaler) on 7.x
# cards with tensor cores and newer, bf16 from 8.0 (trainers/precision.py decides each card's).
PRECISION_ORDER = (None, torch.float16, torch.bfloat16)


def common_dtype(world: World, dtype: torch.dtype | None) -> torch.dtype | None:
    """The autocast dtype every rank can compute well: the lowest any rank's card chose (a P40 beside an RTX
    3060 trains in fp32 on both), so the ranks' gradients are of one precision."""
    return PRECISION_ORDER[world.smallest(PRECISION_ORDER.index(dtype))]


def share_of(batch: list[int], rank: int, size: int) -> tuple[list[int], float]:
    """Rank `rank`'s clips of one global batch (every size-th from its rank on, so the shares differ by one clip
    at most) and the weight of its gradients: its share of the batch times the ranks, so that averaging the
    weighted per-share means over the ranks gives the mean over the whole batch."""
    share = batch[rank::size]
    return share, len(share) * size / len(batch)


def piece_seed(seed: int, step: int, piece: int) -> int:
    """The seed of pass `piece` of optimiser step `step`: the same whichever rank computes it."""
    return (seed * 1_000_003 + step * 4_099 + piece) % (2 ** 63)
