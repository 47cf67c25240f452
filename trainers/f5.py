"""`python -m trainers.f5`: a minimal, single-file F5-TTS fine-tune trainer.

What it replaces and why (upstream `f5-tts_finetune-cli`):
- no datasets/accelerate/wandb/pandas: pyarrow cannot run on pre-v2 CPUs, and a one-GPU fine-tune needs
  none of them. f5-tts' model code is imported without its package __init__ (patches/f5_core.py);
- mels are read pre-computed (trainers.prepare), never recomputed in DataLoader workers (which SIGFPE on
  pre-v2), and workers default to 0 there;
- the learning rate is constant after a short warmup (upstream decays it linearly to ~0 over the planned
  updates, so most of a short fine-tune does nothing); decay only with --decay;
- plain AdamW (the fused variant fails on the CPU with some torch versions), gradient clipping, bf16/fp16
  autocast on a GPU, EMA optional;
- the batch is a number of mel frames that stays the same on every card: on a GPU too small for it, each batch
  is split into passes sized from the card's free memory and their gradients summed (trainers.batch_fit), and
  a pass that still runs out of memory is halved and the batch tried again (recorded; --resume reuses it);
- several cards (or machines) through PyTorch's torchrun instead of accelerate: the passes of each batch are
  shared by the ranks and their gradients summed (trainers.distributed), so N processes train what one would.

Every epoch writes, atomically, `epoch_NNNN.safetensors` (the inference weights in the layout of the
published F5TTS_v1_Base checkpoint: `ema_model.`-prefixed tensors plus `step` and `initted`, so upstream's
`load_checkpoint` and voices/say-strong load it; the DiT architecture rides in its metadata) and `epoch_NNNN.state.safetensors` (everything --resume
needs: weights, optimiser, step, RNG states). `train-log.tsv` has one line per epoch.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import time
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path

from envcheck import interrupt

interrupt.when_run(__name__, "trainers.f5", "continue with --resume")  # before torch: its import takes seconds

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from envcheck import arguments, crashpoint, reading
from envcheck.atomic import write_atomic, write_json_atomic
from envcheck.errors import TtsrigError
from patches.checkpoints import CheckpointError, add_trust_argument, load_checkpoint
from trainers import batch_fit
from trainers import device as device_mod
from trainers import distributed
from trainers import f5_arch, f5_model, hub, precision
from trainers import manifest as manifest_mod
from trainers import run_state
from trainers.f5_model import PRETRAINED, build_model, default_arch, default_vocab, load_pretrained
from trainers.mels import F5_HOP, F5_MELS, F5_RATE
from trainers.guard import LoopGuard, NonFinite, check_finite


@dataclass
class Config:
    """A run's settings, each default written here once: the command line and run.json take them from it."""
    manifest: str
    out: str
    pretrained: str | None = PRETRAINED
    vocab: str | None = None  # default: the vocab.txt the f5-tts wheel ships (the pretrain's)
    model_config: dict = field(default_factory=dict)  # DiT arch; default F5TTS_v1_Base
    epochs: int = 10
    lr: float = 1e-5
    warmup_steps: int = 100
    decay: bool = False
    min_lr_ratio: float = 0.1
    frames_per_batch: int = 3200
    pass_frames: int | None = None  # frames per forward pass; None: the whole batch on the CPU, fitted on a GPU
    max_samples: int = 32
    grad_clip: float = 1.0
    weight_decay: float = 0.01
    ema: bool = False
    ema_beta: float = 0.999
    keep: int = 3  # resume states kept (0 = all)
    keep_weights: int = 0  # inference weights kept (0 = all: the listening loop wants every epoch)
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"  # auto | bf16 | fp16 | off
    num_workers: int | None = None


# -- data -----------------------------------------------------------------------------------------

class MelClips(Dataset):
    """Pre-computed F5 mels and token ids of a manifest's clips."""

    def __init__(self, manifest_path: Path, vocab: dict[str, int]):
        from f5_tts.model.utils import convert_char_to_pinyin

        self.root = manifest_path.parent
        self.clips = manifest_mod.read(manifest_path)
        unknown: dict[str, set[str]] = {}
        self.tokens, self.frames = [], []
        for clip in self.clips:
            chars = convert_char_to_pinyin([clip.text], polyphone=True)[0]
            missing = {c for c in chars if c not in vocab}
            if missing:
                unknown[clip.id] = missing
            self.tokens.append(torch.tensor([vocab.get(c, 0) for c in chars], dtype=torch.long))
            clip.path(self.root, "mel_f5")  # says how to make it when the manifest has no F5 mels
            self.frames.append(max(1, int(clip.duration * F5_RATE / F5_HOP)))
        if unknown:
            every = sorted(set().union(*unknown.values()))
            some = ", ".join(list(unknown)[:5])
            raise TtsrigError(f"characters outside the vocab: {' '.join(repr(c) for c in every)} (in {len(unknown)} "
                              f"clips, e.g. {some}). Fix the transcripts or pass a --vocab that has them.")
        manifest_mod.check_files(manifest_path, self.clips, ("mel_f5",))  # here, not in a worker mid-epoch

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        clip = self.clips[index]
        path = clip.path(self.root, "mel_f5")
        try:
            mel = load_file(path)["mel"]
        except (FileNotFoundError, SafetensorError, KeyError, OSError) as exc:
            raise TtsrigError(f"mel of clip {clip.id} ({path}) is missing or corrupt ({exc}); re-run "
                              "`python -m trainers.prepare` on this data set") from None
        problem = manifest_mod.mel_problem(mel.dtype, tuple(mel.shape), "mel_f5")  # checked before the epoch too
        if problem:
            raise TtsrigError(f"mel of clip {clip.id} ({path}) {problem}; re-run `python -m trainers.prepare` on "
                              "this data set (with --mels f5)")
        return mel.float().T.contiguous(), self.tokens[index]  # float16 / bfloat16 / float64 mels as float32


def frame_batches(frames: list[int], frames_per_batch: int, max_samples: int, seed: int, epoch: int) -> list[list[int]]:
    """Batches of similar length up to a frame budget, in an order fixed by (seed, epoch): a resumed run
    sees exactly the batches the uninterrupted one would."""
    order = sorted(range(len(frames)), key=lambda i: (frames[i], i))
    batches, current, total = [], [], 0
    for i in order:
        if current and (total + frames[i] > frames_per_batch or len(current) >= max_samples):
            batches.append(current)
            current, total = [], 0
        current.append(i)
        total += frames[i]
    if current:
        batches.append(current)
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def collate(items: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from torch.nn.utils.rnn import pad_sequence

    mels, tokens = zip(*items)
    lens = torch.tensor([m.shape[0] for m in mels])
    return (pad_sequence(mels, batch_first=True), pad_sequence(tokens, batch_first=True, padding_value=-1), lens)


# -- the run --------------------------------------------------------------------------------------

def default_workers() -> int:
    """0 on pre-v2 (workers re-import torch; the seed's runs died there), else 2."""
    from envcheck.venv import recorded_tier

    tier = recorded_tier(Path(sys.prefix))
    if tier is None:
        from envcheck.probe import probe

        tier = probe().tier
    return 0 if tier == "pre-v2" else min(2, os.cpu_count() or 1)


def lr_at(step: int, cfg: Config, total_steps: int) -> float:
    warm = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
    if not cfg.decay or step < cfg.warmup_steps:
        return cfg.lr * warm
    progress = (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps)
    return cfg.lr * max(cfg.min_lr_ratio, 1.0 - (1.0 - cfg.min_lr_ratio) * min(1.0, progress))


class Trainer:
    def __init__(self, cfg: Config, *, trust: bool = False, progress: bool = True,
                 world: distributed.World | None = None):
        self.world = world or distributed.World()  # under torchrun: this process's rank (trainers.distributed)
        self.cfg, self.progress = cfg, progress and self.world.main
        self.out = Path(cfg.out)
        self.device = device_mod.pick(cfg.device)
        self.arch = cfg.model_config or default_arch()
        self.vocab_path = cfg.vocab or default_vocab()
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        self.model, vocab = build_model(self.arch, self.vocab_path)
        self.data = MelClips(Path(cfg.manifest), vocab)
        self.step = self.epoch = self.batch_in_epoch = 0
        self.history: list[dict] = []
        resuming = self.latest_state() is not None
        if cfg.pretrained and not resuming:
            load_pretrained(self.model, cfg.pretrained, trust=trust)
        self.model.to(self.device)
        self.world.same_weights(self.model)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                           fused=self.device == "cuda")
        self.ema = None
        if cfg.ema:
            from ema_pytorch import EMA

            self.ema = EMA(self.model, beta=cfg.ema_beta, update_after_step=0, update_every=1,
                           include_online_model=False)
        # auto: from the card's capability; under torchrun the lowest any rank's card computes well
        self.dtype = distributed.common_dtype(self.world, precision.autocast_dtype(cfg.amp, self.device))
        self.scaler = torch.amp.GradScaler("cuda") if self.dtype == torch.float16 else None
        self.fit = self.fit_passes()
        self.pass_frames = self.fit.pass_frames
        self.pass_changes: list[dict] = []  # each halving after running out of memory: step, pass_frames
        self.batches_per_epoch = len(frame_batches(self.data.frames, cfg.frames_per_batch, cfg.max_samples,
                                                   cfg.seed, 0))

    def fit_passes(self) -> batch_fit.Fit:
        """How many frames one forward pass may hold: --pass-frames when given, else the whole batch on the CPU
        and what the card's free memory allows on a GPU; under torchrun the smallest of the ranks' (every rank
        cuts the batch the same way), and at most an N-th of the batch, so each rank has a pass."""
        fit = self.own_fit()
        if self.world.size == 1:
            return fit
        share = -(-self.cfg.frames_per_batch // self.world.size)
        frames = self.world.smallest(min(fit.pass_frames or share, share))
        return batch_fit.Fit(frames, f"{frames} frames per pass, the passes of each batch shared by "
                                     f"{self.world.size} processes ({fit.why})")

    def own_fit(self) -> batch_fit.Fit:
        """This process's pass size before the ranks agree: --pass-frames, the whole batch on the CPU, else what
        the card's free memory holds at this precision (batch_fit's memory model)."""
        if self.cfg.pass_frames:
            return batch_fit.Fit(self.cfg.pass_frames, f"{self.cfg.pass_frames} frames per pass (--pass-frames)")
        if self.device != "cuda":
            return batch_fit.Fit(0, "the whole batch in one pass (CPU)")
        free, _total = torch.cuda.mem_get_info()
        _capability, name = precision.card()
        return batch_fit.f5_pass_frames(
            free_bytes=free, card=name, params=sum(p.numel() for p in self.model.parameters()),
            dim=int(self.arch["dim"]), depth=int(self.arch["depth"]), precision=precision.describe(self.dtype),
            ema=self.cfg.ema, batch_frames=self.cfg.frames_per_batch)

    # checkpoints

    def latest_state(self) -> Path | None:
        return run_state.latest_state(self.out, "step")

    def inference_weights(self) -> bytes:
        weights_src = self.ema.ema_model if self.ema is not None else self.model
        return f5_model.inference_bytes(weights_src, self.step, self.arch, self.cfg.vocab)

    def save(self, name: str) -> Path | None:
        """The epoch's pair of files, written by rank 0 only (None on the others)."""
        if not self.world.main:
            return None
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "step": torch.tensor(self.step), "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                 "rng": run_state.rng_state(), "history": self.history, "config": json.dumps(asdict(self.cfg)),
                 "arch": json.dumps(self.arch),
                 "passes": {"pass_frames": self.pass_frames, "changes": self.pass_changes},
                 "world_size": self.world.size}
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        path = run_state.write_pair(self.out, name, ".safetensors", self.inference_weights(), state, "step")
        self.prune()
        return path

    def prune(self) -> None:
        epochs = sorted(self.out.glob("epoch_*.state.safetensors"))
        if self.cfg.keep:
            for path in epochs[:-self.cfg.keep]:
                path.unlink(missing_ok=True)
        weights = sorted(p for p in self.out.glob("epoch_*.safetensors") if not p.name.endswith(".state.safetensors"))
        if self.cfg.keep_weights:
            for path in weights[:-self.cfg.keep_weights]:
                path.unlink(missing_ok=True)

    def resume(self) -> None:
        path = self.latest_state()
        if path is None:
            raise TtsrigError(f"nothing to resume in {self.out}: no readable *.state.safetensors")
        state = load_checkpoint(path)
        with run_state.resuming_from(path):
            saved_arch = json.loads(state["arch"])
            if saved_arch != self.arch:
                raise TtsrigError(f"{path} was trained with model config {saved_arch}, not {self.arch}")
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if self.ema is not None and "ema" in state:
                self.ema.load_state_dict(state["ema"])
            if self.scaler is not None and "scaler" in state:
                self.scaler.load_state_dict(state["scaler"])
            self.step, self.epoch = int(state["step"]), int(state["epoch"])
            self.batch_in_epoch = int(state["batch_in_epoch"])
            self.history = list(state["history"])
            self.resume_passes(state.get("passes"))
            saved_world = int(state.get("world_size", 1))
            if saved_world != self.world.size and self.world.main:
                print(f"note: the stopped run trained on {saved_world} process(es), this one on {self.world.size}: "
                      "it continues from the same state, with the same batches, not bit for bit", file=sys.stderr)
            run_state.set_rng_state(state["rng"])
        restored = run_state.restore_weights(path, ".safetensors", self.inference_weights)
        if restored:
            print(f"note: {restored.name} was missing beside {path.name} (a run stopped between its two writes); "
                  "written again from that state", file=sys.stderr)

    def resume_passes(self, saved: dict | None) -> None:
        """The pass size the stopped run had reached (so the resumed run splits its batches the same way),
        unless --pass-frames says otherwise."""
        if not saved:
            return
        self.pass_changes = list(saved["changes"])
        pass_frames = run_state.recorded_count(saved["pass_frames"], "passes.pass_frames")
        if self.cfg.pass_frames and self.cfg.pass_frames != pass_frames:
            print(f"note: --pass-frames {self.cfg.pass_frames}, where the stopped run used "
                  f"{pass_frames or 'whole batches'}: the same batches, summed in other passes (equal up to "
                  "floating-point rounding and the random draws, not bit for bit)", file=sys.stderr)
            return
        self.pass_frames = pass_frames
        self.fit = batch_fit.Fit(self.pass_frames, f"{self.pass_frames or 'whole batches'} as the stopped run "
                                 "(its state)")

    # training

    def write_log(self) -> None:
        header = "epoch\tstep\tmean_loss\tlr\tseconds\tdata_seconds\n"
        rows = "".join(f"{h['epoch']}\t{h['step']}\t{h['loss']:.6f}\t{h['lr']:.3g}\t{h['seconds']:.2f}\t"
                       f"{h['data_seconds']:.3f}\n" for h in self.history)
        write_atomic(self.out / "train-log.tsv", (header + rows).encode())

    def fitted_step(self, mel: torch.Tensor, text: torch.Tensor, lens: torch.Tensor, total_steps: int) -> float:
        """One optimiser step on the batch; when a pass runs out of CUDA memory (on any rank), the pass size is
        halved (recorded) and the same batch is tried again (each pass's random draws are seeded by its place in
        the run, so the retry draws what a run that never ran out would)."""
        while True:
            try:
                return self.train_step(mel, text, lens, total_steps)
            except torch.cuda.OutOfMemoryError:
                smaller = batch_fit.halved(self.pass_frames, lens.tolist())
                if smaller is None:
                    raise  # one clip per pass already: the guard names the settings to lower
            self.optimizer.zero_grad(set_to_none=True)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            self.pass_frames = smaller
            self.pass_changes.append({"step": self.step, "pass_frames": smaller})
            if self.world.main:
                print(f"note: CUDA ran out of memory at step {self.step + 1}: now {smaller} frames per pass (the "
                      f"batch stays {self.cfg.frames_per_batch} frames, its gradients summed over more passes)",
                      file=sys.stderr)

    def train_step(self, mel: torch.Tensor, text: torch.Tensor, lens: torch.Tensor, total_steps: int) -> float:
        """Forward and backward over this rank's passes of the batch (batch_fit.pieces; all of them in a world
        of one), each pass's loss weighted by its share of the batch's frames, the gradients summed over the
        ranks, then one optimiser step; the batch's loss. A failure in a rank's passes is agreed on first, so
        every rank raises it and none waits in a collective."""
        lr = lr_at(self.step, self.cfg, total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        failure: BaseException | None = None
        local = 0.0
        try:
            local = self.local_passes(mel, text, lens)
        except (torch.cuda.OutOfMemoryError, NonFinite) as exc:
            failure = exc
        if self.world.any(failure is not None):
            if failure is not None:
                raise failure
            raise torch.cuda.OutOfMemoryError("another rank ran out of memory (or its loss was not finite)")
        loss_sum = self.world.total(local)
        self.world.sum_gradients(self.model.parameters())
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
            self.optimizer.step()
        if self.ema is not None:
            self.ema.update()
        self.step += 1
        return loss_sum

    def local_passes(self, mel: torch.Tensor, text: torch.Tensor, lens: torch.Tensor) -> float:
        """Forward and backward of this rank's passes (pass k is rank k mod N's), each seeded by its place in the
        run; the sum of their losses weighted by their share of the batch's frames."""
        total, loss_sum = float(lens.sum()), 0.0
        for k, (start, stop) in enumerate(batch_fit.pieces(lens.tolist(), self.pass_frames)):
            if k % self.world.size != self.world.rank:
                continue
            seed = distributed.piece_seed(self.cfg.seed, self.step, k)
            torch.manual_seed(seed)  # the CFM's noise, times and span masks (CUDA's generators too)
            random.seed(seed)  # its audio and text drop draws
            piece_lens = lens[start:stop]
            frames = int(piece_lens.max())
            batch_fit.check_simulated(frames * (stop - start))
            piece_text = text[start:stop]
            piece_text = piece_text[:, :max(1, int((piece_text >= 0).sum(dim=1).max()))]
            with torch.autocast("cuda", dtype=self.dtype, enabled=self.dtype is not None):
                loss, _cond, _pred = self.model(mel[start:stop, :frames].to(self.device),
                                                text=piece_text.to(self.device), lens=piece_lens.to(self.device))
            check_finite("flow-matching", loss)
            share = float(piece_lens.sum()) / total
            weighted = loss * share
            (self.scaler.scale(weighted) if self.scaler is not None else weighted).backward()
            loss_sum += float(loss.detach()) * share
        return loss_sum

    def run(self) -> list[dict]:
        cfg = self.cfg
        workers = default_workers() if cfg.num_workers is None else cfg.num_workers
        total_steps = cfg.epochs * self.batches_per_epoch
        if self.world.main:
            write_json_atomic(self.out / "run.json", {"config": asdict(cfg), "arch": self.arch,
                                                      "vocab": self.vocab_path, "device": self.device,
                                                      "num_workers": workers, "clips": len(self.data),
                                                      "passes": self.fit.why, "processes": self.world.size})
        if self.progress and self.device == "cuda":
            print(f"batch: {self.fit.why}", file=sys.stderr)
        guard = LoopGuard(last_good=self.latest_state,
                          nonfinite_fix="Lower --lr, check the data (silent or mislabelled clips), or --amp off.",
                          out_of_memory_fix=lambda: f"Every pass already held one clip: this card cannot train on "
                          f"clips this long at {precision.describe(self.dtype)}. Prepare the data with a lower "
                          "--max-seconds, free the card (nvidia-smi lists what holds it) or use --device cpu; the last "
                          f"good checkpoint is {self.latest_state() or 'none'}.")
        with guard:
            while self.epoch < cfg.epochs:
                if self.run_epoch(guard, workers, total_steps):
                    return self.history
        return self.history

    def run_epoch(self, guard: LoopGuard, workers: int, total_steps: int) -> bool:
        """The rest of the current epoch, then its checkpoint; True when Ctrl-C stopped it (saved)."""
        from tqdm import tqdm

        cfg = self.cfg
        batches = frame_batches(self.data.frames, cfg.frames_per_batch, cfg.max_samples, cfg.seed,
                                self.epoch)[self.batch_in_epoch:]
        loader = DataLoader(self.data, batch_sampler=batches, collate_fn=collate, num_workers=workers)
        self.model.train()
        losses, started, data_seconds = [], time.monotonic(), 0.0
        bar = tqdm(total=len(batches), desc=f"epoch {self.epoch + 1}/{cfg.epochs}", unit="batch",
                   disable=not self.progress)
        fetch = time.monotonic()
        for mel, text, lens in loader:
            crashpoint.reached(f"train:step:rank{self.world.rank}")  # tests: a rank that dies mid-epoch
            data_seconds += time.monotonic() - fetch
            with guard.step(f"on a batch of {int(lens.sum())} frames at epoch {self.epoch + 1}, step {self.step + 1}"):
                losses.append(self.fitted_step(mel, text, lens, total_steps))
            self.batch_in_epoch += 1
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
            if self.world.any(guard.interrupted):  # every rank stops at the same batch
                bar.close()
                path = self.save("interrupted")
                if self.world.main:
                    print(f"\ninterrupted: saved {path} at step {self.step}; continue with --resume", file=sys.stderr)
                return True
            fetch = time.monotonic()
        bar.close()
        mean = sum(losses) / max(1, len(losses))
        self.epoch += 1
        self.batch_in_epoch = 0
        self.history.append({"epoch": self.epoch, "step": self.step, "loss": mean,
                             "lr": lr_at(max(0, self.step - 1), cfg, total_steps),
                             "seconds": time.monotonic() - started, "data_seconds": data_seconds})
        self.world.check_in_step(self.model.parameters(), f"after epoch {self.epoch}")
        path = self.save(f"epoch_{self.epoch:04d}")
        if not self.world.main:
            return False
        self.write_log()
        (self.out / "interrupted.state.safetensors").unlink(missing_ok=True)
        (self.out / "interrupted.safetensors").unlink(missing_ok=True)
        if self.progress:
            print(f"epoch {self.epoch}: mean loss {mean:.4f} -> {path.name}", file=sys.stderr)
        return False


# -- command line ---------------------------------------------------------------------------------

def default(name: str):
    """Config's default of one setting (the command line shows and uses it)."""
    setting = next(f for f in fields(Config) if f.name == name)
    return setting.default_factory() if setting.default is MISSING else setting.default


def build_parser() -> argparse.ArgumentParser:
    p = arguments.Parser(prog="python -m trainers.f5", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("manifest", help="manifest.jsonl from `python -m trainers.prepare`")
    p.add_argument("--out", required=True, help="run folder (checkpoints, train-log.tsv, run.json)")
    p.add_argument("--pretrained", default=default("pretrained"), help="checkpoint to fine-tune: a path, "
                   f"hf://org/repo/file, or 'none' for random init (default {default('pretrained')})")
    p.add_argument("--vocab", help="vocab.txt (default: the one shipped with f5-tts, which the pretrain uses)")
    p.add_argument("--model-config", help="JSON file with the DiT arch (default F5TTS_v1_Base)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out where it stopped")
    count, positive = arguments.whole(0), arguments.whole(1)
    for name, kind, text in (
            ("epochs", positive, "epochs in total"),
            ("lr", arguments.number(0, above=True), "learning rate after warmup"),
            ("warmup_steps", count, "linear warmup length in optimiser steps"),
            ("min_lr_ratio", arguments.number(0, 1), "with --decay: the floor, as a share of --lr"),
            ("frames_per_batch", positive, "mel frames per batch: the batch the optimiser sees, on every card"),
            ("max_samples", positive, "clips per batch at most"),
            ("grad_clip", arguments.number(0, above=True), "gradient norm limit"),
            ("weight_decay", arguments.number(0), "AdamW weight decay"),
            ("ema_beta", arguments.number(0, 1, above=True), "EMA decay"),
            ("keep", count, "resume states kept (0 = all)"),
            ("keep_weights", count, "per-epoch inference weights kept (0 = all)"),
            ("seed", arguments.SEED, f"seed, 0 to {arguments.SEED_MAX}"),
            ("num_workers", count, "DataLoader workers (default 0 on pre-v2 CPUs, else 2)")):
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=default(name),
                       help=f"{text} (default {default(name)})")
    p.add_argument("--pass-frames", type=positive, default=None, help="padded mel frames per forward pass; a batch "
                   "larger than this is split and its gradients summed (default: the whole batch on the CPU; on a GPU, "
                   "what its free memory holds, halved when CUDA runs out of memory)")
    p.add_argument("--decay", action="store_true", help="decay the LR linearly after warmup (default: constant)")
    p.add_argument("--ema", action="store_true", help="keep an EMA of the weights and save it as the inference "
                   "weights (off by default: on a short fine-tune a slow EMA barely leaves the pretrain)")
    p.add_argument("--device", default=default("device"), choices=("auto", "cpu", "cuda"))
    p.add_argument("--amp", default=default("amp"), choices=("auto", "bf16", "fp16", "off"),
                   help="mixed precision on a GPU (auto, the default: bf16 on compute capability 8.0 and newer, "
                        "fp16 with a loss scaler on 7.x cards with tensor cores, float32 on Pascal, Maxwell and "
                        "GTX 16xx; bf16 is refused below 8.0)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_trust_argument(p)
    return p


def config_from(args: argparse.Namespace) -> Config:
    arch = {}
    if args.model_config:
        fix = "name a JSON file of the DiT arch (like F5TTS_v1_Base's), or leave --model-config out"
        arch = reading.read_json(Path(args.model_config), "--model-config", fix)
        arch = f5_arch.check_arch(arch, f"--model-config {args.model_config}")
    if hub.is_hub_file(args.pretrained):
        hub.parse(args.pretrained)  # a malformed id is refused before the model is built
    given = {f.name: getattr(args, f.name) for f in fields(Config) if f.name not in ("pretrained", "model_config")}
    return Config(**given, pretrained=None if args.pretrained in ("none", "") else args.pretrained,
                  model_config=arch)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    world = distributed.World()
    try:
        cfg = config_from(args)
        cfg = replace(cfg, device=device_mod.pick(cfg.device))  # chosen once: every rank's process group needs it
        world = distributed.join(cfg.device)  # under torchrun: this process's rank; else a world of one
        run_state.check_out(Path(cfg.out), args.resume)
        # Rank 0 owns the run folder (its lock, its removal when the start fails); the others only read it.
        with run_state.run_folder(Path(cfg.out)) if world.main else contextlib.nullcontext():
            trainer = Trainer(cfg, trust=args.trust_checkpoint, progress=not args.quiet, world=world)
            history = run_state.train(trainer, args.resume)
    except (TtsrigError, CheckpointError) as exc:
        print(f"trainers.f5{world.label}: {exc}", file=sys.stderr)
        return 2
    finally:
        world.close()
    if history and world.main:
        print(f"done: {history[-1]['epoch']} epochs, last mean loss {history[-1]['loss']:.4f}; "
              f"checkpoints in {cfg.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
