"""`python -m trainers.styletts2`: fine-tune the StyleTTS2 LibriTTS pretrain on a trainers.prepare manifest.

Built on the `styletts2` package's modules and losses; the loop is this project's own, following the
second-stage fine-tune recipe of the original repository (train_finetune.py):
- decoder and style encoders stay in eval mode (the package's decoder moves tensors to 'cuda' in train
  mode: eval keeps it device-agnostic, as the recipe does), the text aligner, text encoder, predictor,
  PL-BERT and discriminators train;
- alignment by monotonic alignment search on the aligner's attention (trainers/mas.py), half the time the
  soft attention; random crops of min(shortest mel / 2 - 1, max_len / 2) frames;
- losses, each switched off by a zero weight: mel (multi-resolution STFT), adversarial (MPD + MSD),
  SLM feature matching (WavLM), monotonic, s2s, F0, norm, duration, CE, and from diff_epoch the style
  diffusion (diff) and style reconstruction (sty); from joint_epoch the SLM adversarial training;
- a batch of one works (the upstream code squeezes it away), the CPU works (no hard-coded cuda), no
  DataLoader workers; --amp auto from the card: bf16 from compute capability 8.0, fp16 with a loss scaler
  on 7.x cards with tensor cores, float32 below;
- a batch a card cannot hold at once runs in passes of fewer clips (--pass-clips, or halved after CUDA runs
  out of memory) whose gradients are summed: every update still sees the whole batch.

Each epoch writes, atomically, `epoch_2nd_NNNNN.pth` ({"net": {module: weights}}, tensors only: it loads
with torch.load's safe default, in the package's inference code and in voices/say-default) and
`epoch_2nd_NNNNN.state.safetensors` (what --resume needs). `config.yml` is the run's config;
`train-log.tsv` holds each loss term's mean per epoch.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from envcheck import interrupt

interrupt.when_run(__name__, "trainers.styletts2", "continue with --resume")  # before torch: seconds

import numpy as np
import torch
import torch.nn.functional as F

from envcheck import arguments
from envcheck.atomic import write_atomic
from envcheck.errors import TtsrigError
from patches.checkpoints import CheckpointError, add_trust_argument, load_checkpoint
from patches.quiet import silenced
from trainers import device as device_mod
from trainers import manifest as manifest_mod
from trainers import batch_fit, distributed, mas, phonemes, precision, run_state, styletts2_model, styletts2_pieces
from trainers.guard import LoopGuard, NonFinite, check_finite
from trainers.mels import STYLETTS2_HOP, STYLETTS2_PAD

REF_FRAMES = 192  # reference mels are crops of this many frames, as upstream
MIN_FRAMES = 84  # shorter clips cannot give the decoder its 80-frame crop
TRAINED = ("bert", "bert_encoder", "predictor", "predictor_encoder", "style_encoder", "decoder",
           "text_encoder", "text_aligner")
TERMS = ("mel", "gen", "slm", "mono", "s2s", "F0", "norm", "dur", "ce", "sty", "diff", "disc", "slm_gen", "slm_disc")


# -- data -----------------------------------------------------------------------------------------

@dataclass
class Item:
    id: str
    wave: Path
    mel: Path
    tokens: list[int]
    speaker: str
    frames: int


class Data:
    """A manifest's clips, phonemised once; clips that cannot train are counted and reported."""

    def __init__(self, manifest_path: Path, language: str = "en-us", log=print):
        root = manifest_path.parent
        clips = manifest_mod.read(manifest_path)
        self.skipped: dict[str, list[str]] = {}
        self.unknown: dict[str, list[str]] = {}
        encoded = phonemes.phonemize([c.text for c in clips], language)
        self.items: list[Item] = []
        usable = []
        for clip, phon in zip(clips, encoded):
            if not phon.strip():
                self.skipped.setdefault("phonemises to nothing", []).append(clip.id)
                continue
            tokens = phonemes.tokenize(phon)
            if tokens.unknown:
                self.unknown[clip.id] = tokens.unknown
            frames = int((clip.duration * 24_000 + 2 * STYLETTS2_PAD) // STYLETTS2_HOP)
            if frames < MIN_FRAMES:
                self.skipped.setdefault(f"shorter than the {MIN_FRAMES}-frame crop", []).append(clip.id)
                continue
            self.items.append(Item(clip.id, clip.path(root, "audio"), clip.path(root, "mel_styletts2"),
                                   tokens.ids, clip.speaker, frames))
            usable.append(clip)
        manifest_mod.check_files(manifest_path, usable, ("audio", "mel_styletts2"))  # before the first epoch
        if self.unknown:
            symbols = sorted({s for v in self.unknown.values() for s in v})
            log(f"symbols outside the StyleTTS2 table (left out): {' '.join(symbols)} in {len(self.unknown)} "
                f"clip(s), e.g. {next(iter(self.unknown))}")
        for reason, ids in self.skipped.items():
            log(f"skipped {len(ids)} clip(s): {reason} (e.g. {ids[0]})")
        if not self.items:
            raise TtsrigError(f"no clip of {manifest_path} can train StyleTTS2 (skipped: "
                              + "; ".join(f"{r}: {len(i)}" for r, i in self.skipped.items()) + ")")
        self.by_speaker: dict[str, list[int]] = {}
        for index, item in enumerate(self.items):
            self.by_speaker.setdefault(item.speaker, []).append(index)
        self._cache: dict[int, tuple[np.ndarray, torch.Tensor]] = {}

    def load(self, index: int) -> tuple[np.ndarray, torch.Tensor]:
        """(padded wave, mel of even length) of one clip."""
        if index not in self._cache:
            import soundfile as sf
            from safetensors import SafetensorError
            from safetensors.torch import load_file

            item = self.items[index]
            try:
                wave, rate = sf.read(str(item.wave), dtype="float32")
                mel = load_file(item.mel)["mel"]
            except (OSError, RuntimeError, SafetensorError, KeyError) as exc:
                raise TtsrigError(f"clip {item.id}: audio or mel unreadable ({exc}); re-run trainers.prepare") from None
            if rate != 24_000 or wave.ndim != 1:
                raise TtsrigError(f"clip {item.id}: {item.wave} is not 24 kHz mono; re-run trainers.prepare")
            problem = manifest_mod.mel_problem(mel.dtype, tuple(mel.shape), "mel_styletts2")  # checked before too
            if problem:
                raise TtsrigError(f"clip {item.id}: {item.mel} {problem}; re-run trainers.prepare (with --mels "
                                  "styletts2)")
            mel = mel.float()  # float16 / bfloat16 / float64 mels as float32
            wave = np.concatenate([np.zeros(STYLETTS2_PAD, np.float32), wave, np.zeros(STYLETTS2_PAD, np.float32)])
            self._cache[index] = (wave, mel[:, : mel.shape[1] - mel.shape[1] % 2])
        return self._cache[index]

    def batches(self, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
        order = torch.randperm(len(self.items), generator=torch.Generator().manual_seed(seed * 7919 + epoch)).tolist()
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]

    def collate(self, indices: list[int], rng: random.Random) -> dict:
        indices = sorted(indices, key=lambda i: -self.load(i)[1].shape[1])  # longest first, as upstream
        waves, mels = zip(*(self.load(i) for i in indices))
        tokens = [torch.tensor(self.items[i].tokens) for i in indices]
        refs = []
        for i in indices:  # a reference clip of the same speaker, cropped
            ref = self.load(rng.choice(self.by_speaker[self.items[i].speaker]))[1]
            if ref.shape[1] > REF_FRAMES:
                start = rng.randrange(0, ref.shape[1] - REF_FRAMES)
                ref = ref[:, start:start + REF_FRAMES]
            refs.append(ref)
        others = [self.items[rng.randrange(len(self.items))].tokens for _ in indices]  # texts for SLM adversarial

        def pad(seqs, length):
            out = torch.zeros(len(seqs), length, dtype=torch.long)
            for row, seq in enumerate(seqs):
                out[row, :len(seq)] = seq if torch.is_tensor(seq) else torch.tensor(seq)
            return out

        n_mels, longest = mels[0].shape[0], max(m.shape[1] for m in mels)
        mel_batch = torch.zeros(len(indices), n_mels, longest)
        ref_batch = torch.zeros(len(indices), n_mels, REF_FRAMES)
        for row, (mel, ref) in enumerate(zip(mels, refs)):
            mel_batch[row, :, :mel.shape[1]] = mel
            ref_batch[row, :, :ref.shape[1]] = ref
        return {"waves": list(waves), "texts": pad(tokens, max(len(t) for t in tokens)),
                "input_lengths": torch.tensor([len(t) for t in tokens]),
                "ref_texts": pad(others, max(len(t) for t in others)),
                "ref_lengths": torch.tensor([len(t) for t in others]),
                "mels": mel_batch, "mel_input_length": torch.tensor([m.shape[1] for m in mels]), "ref_mels": ref_batch}


def length_to_mask(lengths: torch.Tensor) -> torch.Tensor:
    """True where padded (upstream's convention)."""
    return torch.arange(int(lengths.max()), device=lengths.device)[None, :] >= lengths[:, None]


# -- what one step's pieces hand each other ------------------------------------------------------

@dataclass
class Batch:
    """A collated batch on the trainer's device, with its padding masks (True where padded)."""
    texts: torch.Tensor
    input_lengths: torch.Tensor
    mels: torch.Tensor
    mel_len: torch.Tensor
    text_mask: torch.Tensor
    frame_mask: torch.Tensor  # over the aligner's downsampled frames

    @property
    def size(self) -> int:
        return self.texts.shape[0]


@dataclass
class Alignment:
    s2s_pred: torch.Tensor  # the aligner's token predictions, for the s2s loss
    attn: torch.Tensor  # its soft attention, text x frames, without the start token
    attn_mono: torch.Tensor  # the monotonic path through it
    asr: torch.Tensor  # the text encoding spread over the frames by one of the two
    d_gt: torch.Tensor  # each token's frames on the monotonic path: the duration target


@dataclass
class Styles:
    s_dur: torch.Tensor  # prosody style of each whole clip
    s_trg: torch.Tensor  # acoustic and prosody styles together: the diffusion's target
    bert_dur: torch.Tensor  # PL-BERT's encoding of the text
    d_en: torch.Tensor  # that encoding projected for the duration predictor


@dataclass
class Crops:
    en: torch.Tensor  # aligned text encoding
    p_en: torch.Tensor  # the predictor's prosody features
    gt: torch.Tensor  # mel
    wav: torch.Tensor  # waveform


@dataclass
class Decoded:
    y_rec: torch.Tensor  # the decoder's audio from the predicted F0 and energy
    y_rec_gt: torch.Tensor  # the real audio of the crop
    y_rec_gt_pred: torch.Tensor | None  # the decoder's audio from the real F0 and energy (SLM adversarial only)
    loss_F0: torch.Tensor
    loss_norm: torch.Tensor


@dataclass
class Forward:
    """One pass's forward: what the discriminators' and the generator's losses read."""
    b: Batch
    aligned: Alignment
    styles: Styles
    ref: torch.Tensor | None
    d: torch.Tensor  # the duration predictor's logits
    crops: Crops
    decoded: Decoded
    loss_sty: torch.Tensor
    loss_diff: torch.Tensor


# -- the trainer ----------------------------------------------------------------------------------

class Trainer:
    @silenced("empty_mel_filters")  # styletts2's MultiResolutionSTFTLoss, as upstream's recipe builds it
    def __init__(self, config: dict, manifest: Path, out: Path, *, device: str = "cpu", trust: bool = False,
                 amp: str = "auto", progress: bool = True, log=print, world: distributed.World | None = None,
                 pass_clips: int = 0):
        from styletts2.losses import DiscriminatorLoss, GeneratorLoss, MultiResolutionSTFTLoss, WavLMLoss
        from styletts2.utils import recursive_munch

        # Under torchrun each rank takes its share of every global batch and the updates average their weighted
        # gradients (trainers.distributed); rank 0 alone writes and logs.
        self.world = world or distributed.World()
        if int(config["batch_size"]) < self.world.size:
            raise TtsrigError(f"batch_size {config['batch_size']} is one batch shared by the {self.world.size} "
                              f"processes, each of which needs a clip of it: --set batch_size={self.world.size} or "
                              f"more (a multiple of {self.world.size} gives equal shares), or fewer processes")
        if pass_clips and self.world.size > 1:
            raise TtsrigError("--pass-clips is for one process: under torchrun each process already takes its "
                              f"share of every batch (batch_size {config['batch_size']} over {self.world.size})")
        self.config, self.out, self.device = config, out, device
        self.progress, self.log = progress and self.world.main, log if self.world.main else (lambda message: None)
        self.loss_w = {k[len("lambda_"):]: float(v) for k, v in config["loss_params"].items() if k.startswith("lambda_")}
        self.seed = int(config.get("seed", 0))
        torch.manual_seed(self.seed)
        random.seed(self.seed)
        np.random.seed(self.seed)
        self.rng = random.Random(self.seed)
        self.params = recursive_munch(config["model_params"])
        self.data = Data(manifest, config.get("language", "en-us"), log)
        self.model = styletts2_model.build(config, trust)
        self.resuming = any(out.glob("*.state.safetensors"))
        if not self.resuming and config["pieces"].get("model"):
            loaded = styletts2_model.load_pretrain(self.model, Path(config["pieces"]["model"]), trust)
            log(f"pretrain: loaded {', '.join(loaded)}")
        for key in self.model:
            self.model[key].to(device)
            self.world.same_weights(self.model[key])
        self.stft_loss = MultiResolutionSTFTLoss().to(device)
        self.gl = GeneratorLoss(self.model.mpd, self.model.msd).to(device)
        self.dl = DiscriminatorLoss(self.model.mpd, self.model.msd).to(device)
        self.wl = None
        if self.loss_w["slm"] > 0:
            self.wl = WavLMLoss(self.params.slm.model, self.model.wd, 24_000, self.params.slm.sr).to(device)
        self.sampler = styletts2_model.style_sampler(self.model)
        self.slmadv = None
        if self.wl is not None and int(config["loss_params"]["joint_epoch"]) < int(config["epochs"]):
            from styletts2.Modules.slmadv import SLMAdversarialLoss

            p = config["slmadv_params"]
            self.slmadv = SLMAdversarialLoss(self.model, self.wl, self.sampler, p["min_len"], p["max_len"],
                                             batch_percentage=p["batch_percentage"], skip_update=p["iter"], sig=p["sig"])
        self.optimizers = self._optimizers()
        # auto: bf16 from compute capability 8.0, fp16 on 7.x cards with tensor cores, else float32. fp16 runs
        # with one loss scaler shared by the step's updates (discriminators, generator, SLM adversarial): each
        # update unscales its own optimisers before its clipping and steps, and ends with the scaler's update.
        self.dtype = distributed.common_dtype(self.world, precision.autocast_dtype(amp, device))
        self.scaler = torch.amp.GradScaler(device) if self.dtype == torch.float16 else None
        self.epoch = self.iters = 0
        self.batch_size = int(config["batch_size"])  # what every optimiser step sees, on any card
        # clips per forward pass (0: the whole batch at once): --pass-clips, else from the card's free memory;
        # halved when CUDA runs out of memory (recorded)
        self.configured_pass_clips = int(pass_clips)
        fit = self.fit_passes()
        self.pass_clips = fit.pass_clips
        if self.pass_clips or device == "cuda":
            self.log(f"batch: {fit.why}")
        self.pass_changes: list[dict] = []
        self.share_weight = 1.0  # this rank's weight in the averaged gradients and losses (distributed.share_of)
        self.history: list[dict] = []
        self.running_std: list[float] = []
        self.n_down = self.model.text_aligner.n_down
        self.zero = torch.zeros((), device=device)  # a switched-off term

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        o = self.config["optimizer_params"]
        optimizers = {}
        for key in self.model:
            # the recipe: AdamW betas (0, 0.99) everywhere; PL-BERT at bert_lr with betas (0.9, 0.99); the
            # acoustic modules (decoder, style encoder) at ft_lr. Its OneCycle schedulers are never stepped
            # in the fine-tune loop, so the rates are constant: plain AdamW does the same.
            lr, betas, wd = float(o["lr"]), (0.0, 0.99), 1e-4
            if key == "bert":
                lr, betas, wd = float(o["bert_lr"]), (0.9, 0.99), 0.01
            elif key in ("decoder", "style_encoder"):
                lr = float(o["ft_lr"])
            optimizers[key] = torch.optim.AdamW(self.model[key].parameters(), lr=lr, betas=betas, eps=1e-9,
                                                weight_decay=wd)
        return optimizers

    def zero_grad(self) -> None:
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)

    def set_modes(self) -> None:
        for key in self.model:
            self.model[key].eval()
        for key in ("text_aligner", "text_encoder", "predictor", "bert_encoder", "bert", "msd", "mpd"):
            self.model[key].train()

    # one step: the recipe's discriminator, generator and (optionally) SLM adversarial updates over one batch,
    # collated in passes whose gradients are summed (one pass unless the card needs more). The pieces of a
    # forward run in this order because the aligner, encoders, sampler and decoder draw from torch's random
    # generator and the crops from self.rng: another order would be another (unresumable) run.

    def step(self, parts: list[dict]) -> dict[str, float] | None:
        """One step over the batch collated in `parts`, each pass's losses weighted by its share of the clips.
        With several passes and the adversarial loss on, each pass runs forward twice: once without gradients
        for the discriminators' update, then again from the same random state for the generator's, which the
        recipe computes against the updated discriminators (one pass keeps its one forward)."""
        lengths = [int(n) for part in parts for n in part["mel_input_length"]]
        crop = self.crop_frames(lengths)
        if self.world.any(crop is None):  # every rank skips the step together (a collective waits otherwise)
            return None  # as upstream: too short a crop for the decoder
        diffusing = self.epoch >= int(self.config["loss_params"]["diff_epoch"]) and \
            (self.loss_w["diff"] > 0 or self.loss_w["sty"] > 0)
        weights = [len(part["waves"]) / len(lengths) for part in parts]
        kept, states, disc = None, [], self.zero
        if self.loss_w["gen"] > 0:
            self.zero_grad()
            for part, weight in zip(parts, weights):
                if len(parts) == 1:
                    kept = self._forward(part, diffusing, crop)
                else:
                    states.append(run_state.rng_state(self.rng))
                    with self.rehearsal():
                        kept = self._forward(part, diffusing, crop)
                d_loss = self.dl(kept.decoded.y_rec_gt.detach(), kept.decoded.y_rec.detach()).mean()
                self.agree_finite({"disc": d_loss})
                self.backward(d_loss * weight)
                disc = disc + d_loss.detach() * weight
            self.apply(("msd", "mpd"))
        self.zero_grad()
        sums: dict[str, torch.Tensor] = {}
        for k, (part, weight) in enumerate(zip(parts, weights)):
            if states:
                run_state.set_rng_state(states[k], self.rng)  # the pass the discriminators saw
            f = kept if len(parts) == 1 and kept is not None else self._forward(part, diffusing, crop)
            terms = self._generator_losses(f)
            self.agree_finite(terms)
            self.backward(sum(self.loss_w[name] * value for name, value in terms.items()
                              if self.loss_w.get(name, 0) > 0) * weight)
            for name, value in terms.items():
                sums[name] = sums.get(name, self.zero) + value.detach() * weight
        self.apply(tuple(TRAINED) + (("diffusion",) if diffusing else ()))
        losses = {**sums, "disc": disc, "slm_gen": self.zero, "slm_disc": self.zero}
        if self.slmadv is not None and self.epoch >= int(self.config["loss_params"]["joint_epoch"]):
            # from the last pass's clips (with one pass: the batch's, as the recipe)
            losses.update(self.slm_adversarial(parts[-1], f.decoded.y_rec_gt, f.decoded.y_rec_gt_pred,
                                               f.styles.s_trg, f.ref))
        self.iters += 1
        return self.world.average({k: float(v) for k, v in losses.items()}, self.share_weight)

    def crop_frames(self, mel_lengths: list[int]) -> tuple[int, int] | None:
        """The batch's crop sizes (the decoder's and the style encoders', in aligner frames) from its shortest
        clip, the same for every pass; None when that gives the decoder fewer than 80 mel frames."""
        shortest = min(mel_lengths) // 2 - 1
        crop = min(shortest, int(self.config["max_len"]) // 2)
        return None if crop * 2 < 80 else (crop, shortest)

    def _forward(self, batch: dict, diffusing: bool, crop: tuple[int, int]) -> Forward:
        b = self._on_device(batch)
        ref = self._reference_styles(batch, diffusing)
        aligned = self._alignment(b)
        styles = self._styles(b)
        loss_sty, loss_diff = self._diffusion_losses(styles, ref, diffusing)
        d, p = self.model.predictor(styles.d_en, styles.s_dur, b.input_lengths, aligned.attn_mono, b.text_mask)
        crops = self._crops(b, batch["waves"], aligned.asr, p, crop)
        return Forward(b, aligned, styles, ref, d, crops, self._decode(crops), loss_sty, loss_diff)

    @contextlib.contextmanager
    def rehearsal(self):
        """A forward whose only use is the discriminators' input: no gradients, and what a forward changes
        besides its output (batch-norm statistics, the recorded style deviations) put back, so the generator's
        forward of the same pass changes them once."""
        norms = [m for key in self.model for m in self.model[key].modules()
                 if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.training]
        saved = [{name: buffer.clone() for name, buffer in m.named_buffers(recurse=False)} for m in norms]
        recorded = len(self.running_std)
        try:
            with torch.no_grad():
                yield
        finally:
            for module, buffers in zip(norms, saved):
                for name, value in buffers.items():
                    getattr(module, name).copy_(value)
            del self.running_std[recorded:]

    def _on_device(self, batch: dict) -> Batch:
        dev = self.device
        mel_len = batch["mel_input_length"].to(dev)
        input_lengths = batch["input_lengths"].to(dev)
        return Batch(texts=batch["texts"].to(dev), input_lengths=input_lengths, mels=batch["mels"].to(dev),
                     mel_len=mel_len, text_mask=length_to_mask(input_lengths),
                     frame_mask=length_to_mask(mel_len // (2 ** self.n_down)))

    def _reference_styles(self, batch: dict, diffusing: bool) -> torch.Tensor | None:
        """The reference clips' styles, the diffusion's features (multi-speaker models only)."""
        if not (self.params.multispeaker and diffusing):
            return None
        m, ref_mels = self.model, batch["ref_mels"].to(self.device).unsqueeze(1)
        with torch.no_grad():
            return torch.cat([m.style_encoder(ref_mels), m.predictor_encoder(ref_mels)], 1)

    def _alignment(self, b: Batch) -> Alignment:
        """Text aligner, its monotonic path, the text encoder spread over the frames by one of the two."""
        m = self.model
        _, s2s_pred, attn = m.text_aligner(b.mels, b.frame_mask, b.texts)
        attn = attn.transpose(-1, -2)[..., 1:].transpose(-1, -2)  # drop the aligner's start token
        mask_st = mas.mask_from_lens(attn, b.input_lengths, b.mel_len // (2 ** self.n_down))
        attn_mono = mas.maximum_path(attn, mask_st)
        t_en = m.text_encoder(b.texts, b.input_lengths, b.text_mask)
        asr = t_en @ (attn if self.rng.getrandbits(1) else attn_mono)
        return Alignment(s2s_pred, attn, attn_mono, asr, attn_mono.sum(dim=-1).detach())

    def _styles(self, b: Batch) -> Styles:
        """Whole-utterance styles, one clip at a time (the style encoders pool over time), and the BERT
        encoding the duration predictor and the diffusion read."""
        m, mels, mel_len = self.model, b.mels, b.mel_len
        s_dur = torch.cat([m.predictor_encoder(mels[i, :, :mel_len[i]][None, None]) for i in range(b.size)])
        gs = torch.cat([m.style_encoder(mels[i, :, :mel_len[i]][None, None]) for i in range(b.size)])
        s_trg = torch.cat([gs, s_dur], dim=-1).detach()
        bert_dur = m.bert(b.texts, attention_mask=(~b.text_mask).int())
        return Styles(s_dur, s_trg, bert_dur, m.bert_encoder(bert_dur).transpose(-1, -2))

    def _diffusion_losses(self, styles: Styles, ref: torch.Tensor | None,
                          diffusing: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(sty, diff): the sampled style against the clip's own, and the diffusion's denoising loss."""
        if not diffusing:
            return self.zero, self.zero
        m, s_trg, bert_dur = self.model, styles.s_trg, styles.bert_dur
        if self.params.diffusion.dist.estimate_sigma_data:
            sigma = float(s_trg.std(dim=-1).mean()) if s_trg.shape[0] > 1 or s_trg.shape[-1] > 1 else 0.2
            m.diffusion.diffusion.sigma_data = sigma
            self.running_std.append(sigma)
        extra = {"features": ref} if self.params.multispeaker else {}
        s_preds = self.sampler(noise=torch.randn_like(s_trg).unsqueeze(1), embedding=bert_dur, embedding_scale=1,
                               embedding_mask_proba=0.1, num_steps=self.rng.randint(3, 4), **extra).squeeze(1)
        loss_diff = m.diffusion(s_trg.unsqueeze(1), embedding=bert_dur, **extra).mean() if self.params.multispeaker \
            else m.diffusion.diffusion(s_trg.unsqueeze(1), embedding=bert_dur).mean()
        return F.l1_loss(s_preds, s_trg), loss_diff

    def _crops(self, b: Batch, waves: list[np.ndarray], asr: torch.Tensor, p: torch.Tensor,
               sizes: tuple[int, int]) -> Crops:
        """The same random window of aligned text, prosody, mel and waveform for every clip (sizes from
        crop_frames)."""
        crop, crop_st = sizes
        en, p_en, gt, wav, st = [], [], [], [], []
        for i in range(b.size):
            half = int(b.mel_len[i]) // 2
            start = self.rng.randrange(0, max(1, half - crop))
            en.append(asr[i, :, start:start + crop])
            p_en.append(p[i, :, start:start + crop])
            gt.append(b.mels[i, :, start * 2:(start + crop) * 2])
            wav.append(torch.from_numpy(waves[i][start * 2 * STYLETTS2_HOP:(start + crop) * 2 * STYLETTS2_HOP]))
            start = self.rng.randrange(0, max(1, half - crop_st))
            st.append(b.mels[i, :, start * 2:(start + crop_st) * 2])
        return Crops(torch.stack(en), torch.stack(p_en), torch.stack(gt).detach(),
                     torch.stack(wav).float().to(self.device).detach())

    def _decode(self, crops: Crops) -> Decoded:
        """Styles of the crop, the real and predicted F0 and energy, and the decoder's audio from the predicted
        ones (from the real ones too, for SLM adversarial training)."""
        from styletts2.utils import log_norm

        m, gt, en = self.model, crops.gt, crops.en
        s = m.style_encoder(gt.unsqueeze(1))
        s_dur = m.predictor_encoder(gt.unsqueeze(1))
        with torch.no_grad():
            F0_real = m.pitch_extractor(gt.unsqueeze(1))[0].reshape(gt.shape[0], -1)  # JDC squeezes a batch of 1
            N_real = log_norm(gt.unsqueeze(1)).squeeze(1)
            y_rec_gt = crops.wav.unsqueeze(1)
            y_rec_gt_pred = m.decoder(en, F0_real, N_real, s) if self.slmadv is not None else None
        F0_fake, N_fake = m.predictor.F0Ntrain(crops.p_en, s_dur)
        y_rec = m.decoder(en, F0_fake, N_fake, s)
        return Decoded(y_rec, y_rec_gt, y_rec_gt_pred, F.smooth_l1_loss(F0_real, F0_fake) / 10,
                       F.smooth_l1_loss(N_real, N_fake))

    def backward(self, loss: torch.Tensor) -> None:
        """Gradients of `loss`, added to those already there (with fp16 the loss is scaled first)."""
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def apply(self, keys: tuple[str, ...], adjust=None) -> None:
        """Step the optimisers of `keys` on the gradients gathered (averaged over the ranks by their shares);
        `adjust()` runs on the true gradients first (with fp16 they are unscaled before it; a step whose
        gradients overflowed is skipped by the scaler and the scale lowered)."""
        self.world.average_gradients([p for key in keys for p in self.model[key].parameters()], self.share_weight)
        if self.scaler is not None:
            for key in keys:
                self.scaler.unscale_(self.optimizers[key])
        if adjust:
            adjust()
        for key in keys:
            if self.scaler is not None:
                self.scaler.step(self.optimizers[key])
            else:
                self.optimizers[key].step()
        if self.scaler is not None:
            self.scaler.update()

    def update(self, loss: torch.Tensor, keys: tuple[str, ...], adjust=None) -> None:
        self.backward(loss)
        self.apply(keys, adjust)

    def _generator_losses(self, f: Forward) -> dict[str, torch.Tensor]:
        """Every generator term by name: mel, adversarial, SLM, monotonic, s2s, F0, norm, duration, CE, style
        and diffusion."""
        b, aligned, d, decoded = f.b, f.aligned, f.d, f.decoded
        loss_sty, loss_diff = f.loss_sty, f.loss_diff
        w, wav, y_rec = self.loss_w, f.crops.wav, decoded.y_rec
        loss_mel = self.stft_loss(y_rec.squeeze(1), wav)
        loss_gen = self.gl(decoded.y_rec_gt, y_rec).mean() if w["gen"] > 0 else self.zero
        loss_slm = self.slm_feature_loss(wav, y_rec) if self.wl is not None else self.zero
        loss_dur, loss_ce = self._duration_losses(b, d, aligned.d_gt)
        loss_s2s = sum(F.cross_entropy(pred[:length], text[:length])
                       for pred, text, length in zip(aligned.s2s_pred, b.texts, b.input_lengths)) / b.size
        loss_mono = F.l1_loss(aligned.attn, aligned.attn_mono) * 10
        return {"mel": loss_mel, "gen": loss_gen, "slm": loss_slm, "mono": loss_mono, "s2s": loss_s2s,
                "F0": decoded.loss_F0, "norm": decoded.loss_norm, "dur": loss_dur, "ce": loss_ce, "sty": loss_sty,
                "diff": loss_diff}

    def _duration_losses(self, b: Batch, d: torch.Tensor, d_gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(dur, ce): the predicted durations against the monotonic path's, as lengths and as per-frame logits."""
        loss_ce = loss_dur = self.zero
        for pred, target, length in zip(d, d_gt, b.input_lengths):
            pred, target = pred[:length], target[:length].long()
            trg = (torch.arange(pred.shape[1], device=self.device)[None, :] < target[:, None]).float()
            dur_pred = torch.sigmoid(pred).sum(dim=1)
            loss_dur = loss_dur + F.l1_loss(dur_pred[1:length - 1], target[1:length - 1].float())
            loss_ce = loss_ce + F.binary_cross_entropy_with_logits(pred.flatten(), trg.flatten())
        return loss_dur / b.size, loss_ce / b.size

    def agree_finite(self, terms: dict[str, torch.Tensor]) -> None:
        """check_finite on every term, agreed by the ranks: all stop together, the one with the bad term
        naming it."""
        bad = next((name for name, value in terms.items() if not torch.isfinite(value).all()), None)
        if self.world.any(bad is not None):
            if bad is None:
                raise NonFinite("(another rank's)", float("nan"))
            check_finite(bad, terms[bad])

    def slm_feature_loss(self, wav: torch.Tensor, y_rec: torch.Tensor) -> torch.Tensor:
        """WavLM feature matching, with the batch dimension kept (the package's version squeezes it away)."""
        with torch.no_grad():
            real = self.wl.wavlm(input_values=self.wl.resample(wav), output_hidden_states=True).hidden_states
        fake = self.wl.wavlm(input_values=self.wl.resample(y_rec.squeeze(1)), output_hidden_states=True).hidden_states
        return sum(torch.mean(torch.abs(r - g)) for r, g in zip(real, fake))

    def slm_adversarial(self, batch, y_rec_gt, y_rec_gt_pred, s_trg, ref) -> dict[str, torch.Tensor]:
        p, m = self.config["slmadv_params"], self.model
        use_ind = self.rng.random() < 0.5
        ref_texts = batch["texts"] if use_ind else batch["ref_texts"]
        ref_lengths = batch["input_lengths"] if use_ind else batch["ref_lengths"]
        out = self.slmadv(self.iters, y_rec_gt, y_rec_gt_pred, batch["waves"], batch["mel_input_length"].to(self.device),
                          ref_texts.to(self.device), ref_lengths.to(self.device), use_ind, s_trg.detach(),
                          ref if self.params.multispeaker else None)
        if self.world.any(out is None):
            return {}
        d_loss_slm, loss_gen_lm, _ = out

        def clip_and_scale() -> None:  # the recipe's: by the predictor's gradient norm, then per module
            norm = sum(float(q.grad.norm()) ** 2 for q in m.predictor.parameters() if q.grad is not None) ** 0.5
            if norm > p["thresh"]:
                for key in m:
                    for q in m[key].parameters():
                        if q.grad is not None:
                            q.grad *= 1 / norm
            for module in (m.predictor.duration_proj, m.predictor.lstm, m.diffusion):
                for q in module.parameters():
                    if q.grad is not None:
                        q.grad *= p["scale"]

        self.zero_grad()
        self.update(loss_gen_lm, ("bert_encoder", "bert", "predictor", "diffusion"), adjust=clip_and_scale)
        if not self.world.any(not (torch.is_tensor(d_loss_slm) and d_loss_slm.requires_grad)):
            self.zero_grad()
            self.update(d_loss_slm, ("wd",))
        return {"slm_gen": loss_gen_lm.detach(), "slm_disc": torch.as_tensor(d_loss_slm).detach()}

    # checkpoints

    def latest_state(self) -> Path | None:
        return run_state.latest_state(self.out, "iters")

    def inference_weights(self) -> bytes:
        """The `.pth` say-default reads: the modules inference uses (not the discriminators), tensors only."""
        net = {key: self.model[key].state_dict() for key in self.model if key not in ("mpd", "msd", "wd")}
        buffer = io.BytesIO()
        torch.save({"net": net, "epoch": self.epoch, "iters": self.iters}, buffer)
        return buffer.getvalue()

    def save(self, name: str) -> Path | None:
        if not self.world.main:  # rank 0 writes; the others hold the same weights
            return None
        net = {key: self.model[key].state_dict() for key in self.model}
        state = {"net": net, "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                 "epoch": self.epoch, "iters": torch.tensor(self.iters), "history": self.history,
                 "running_std": self.running_std, "rng": run_state.rng_state(self.rng),
                 "model_params": json.dumps(self.config["model_params"], sort_keys=True),
                 "passes": {"pass_clips": self.pass_clips, "changes": self.pass_changes}}
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        path = run_state.write_pair(self.out, name, ".pth", self.inference_weights(), state, "iters")
        keep = int(self.config.get("keep", 3))
        states = sorted(self.out.glob("epoch_2nd_*.state.safetensors"))
        for old in states[:-keep] if keep else []:
            old.unlink(missing_ok=True)
        return path

    def resume(self) -> None:
        path = self.latest_state()
        if path is None:
            raise TtsrigError(f"nothing to resume in {self.out}")
        state = load_checkpoint(path)
        with run_state.resuming_from(path):
            saved_params = json.loads(state["model_params"])
            if saved_params != json.loads(json.dumps(self.config["model_params"], sort_keys=True)):
                raise TtsrigError(f"{path} was trained with other model_params than {self.out / 'config.yml'}")
            styletts2_model.load_weights(self.model, state["net"], str(path))
            for key, opt in self.optimizers.items():
                opt.load_state_dict(state["optimizers"][key])
            self.epoch, self.iters = int(state["epoch"]), int(state["iters"])
            self.history, self.running_std = list(state["history"]), list(state["running_std"])
            run_state.set_rng_state(state["rng"], self.rng)
            self.resume_passes(state.get("passes"), state.get("batches"))
            if self.scaler is not None and "scaler" in state:
                self.scaler.load_state_dict(state["scaler"])
        restored = run_state.restore_weights(path, ".pth", self.inference_weights)
        if restored:
            print(f"note: {restored.name} was missing beside {path.name} (a run stopped between its two writes); "
                  "written again from that state", file=sys.stderr)

    def resume_passes(self, saved: dict | None, older: dict | None) -> None:
        """The pass size the stopped run had come down to after running out of memory, unless --pass-clips
        names another; `older`: the record of runs that halved batch_size instead, read as their pass size."""
        if saved is None and older:
            halved = run_state.recorded_count(older["batch_size"], "batches.batch_size")
            if halved < run_state.recorded_count(older["configured"], "batches.configured"):
                saved = {"pass_clips": halved, "changes": []}
        if not saved:
            return
        pass_clips = run_state.recorded_count(saved["pass_clips"], "passes.pass_clips")
        if self.configured_pass_clips and self.configured_pass_clips != pass_clips:
            self.log(f"note: --pass-clips {self.configured_pass_clips}, where the stopped run used "
                     f"{pass_clips or 'whole batches'}: the same batches, summed in other passes")
            return
        self.pass_clips, self.pass_changes = pass_clips, list(saved["changes"])

    def fit_passes(self) -> batch_fit.ClipFit:
        """--pass-clips when given; on a GPU what its free memory holds at this precision (batch_fit's memory
        model); else, and under torchrun (each rank holds its share; passes do not split it), the whole batch."""
        if self.configured_pass_clips:
            return batch_fit.ClipFit(self.configured_pass_clips, f"{self.configured_pass_clips} clips per pass "
                                                                 "(--pass-clips)")
        if self.device != "cuda" or self.world.size > 1:
            return batch_fit.ClipFit(0, "the whole batch in one pass" + ("" if self.device == "cuda" else " (CPU)"))
        free, _total = torch.cuda.mem_get_info()
        _capability, name = precision.card()
        params = sum(p.numel() for key in self.model for p in self.model[key].parameters())
        frozen = sum(p.numel() for p in self.wl.wavlm.parameters()) if self.wl is not None else 0
        return batch_fit.styletts2_pass_clips(free_bytes=free, card=name, params=params, frozen_params=frozen,
                                              precision=precision.describe(self.dtype), batch_clips=self.batch_size,
                                              max_len=int(self.config["max_len"]))

    def passes(self, clips: int) -> list[tuple[int, int]]:
        """[start, stop) ranges of `clips` clips, pass_clips at a time (one range when 0)."""
        size = self.pass_clips or clips
        return [(start, min(clips, start + size)) for start in range(0, clips, size)]

    def fitted_step(self, indices: list[int]) -> dict[str, float] | None:
        """The step over one batch (this rank's share of it), in passes of pass_clips clips. When CUDA runs out
        of memory, the pass size is halved (recorded) and the batch tried again from the same random state: the
        optimisers still see the whole batch. The discriminators may already have taken that batch's update
        when the generator ran out. Under torchrun the batch is shared already; running out ends the run."""
        while True:
            before = run_state.rng_state(self.rng)
            try:
                parts = [self.data.collate(indices[a:b], self.rng) for a, b in self.passes(len(indices))]
                for part in parts:
                    batch_fit.check_simulated(part["mels"].shape[0] * part["mels"].shape[-1])
                with torch.autocast("cuda", dtype=self.dtype, enabled=self.dtype is not None):
                    return self.step(parts)
            except torch.cuda.OutOfMemoryError:
                size = self.pass_clips or len(indices)
                if size == 1 or self.world.size > 1:
                    raise  # the guard names what is left to lower (under torchrun: every rank stops)
            self.zero_grad()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            run_state.set_rng_state(before, self.rng)
            self.pass_clips = size // 2
            self.pass_changes.append({"iters": self.iters, "pass_clips": self.pass_clips})
            self.log(f"note: CUDA ran out of memory at step {self.iters + 1}: now {self.pass_clips} clips per pass "
                     f"(the batch stays {self.batch_size} clips, its gradients summed over the passes; recorded "
                     "in the run)")

    # the loop

    def rank_batches(self, batches: list[list[int]]) -> list[tuple[list[int], float]]:
        """This rank's share of each batch of the epoch's order, with its weight (distributed.share_of); a last
        batch with fewer clips than processes is left out (said once). In a world of one: the batches."""
        if self.world.size == 1:
            return [(batch, 1.0) for batch in batches]
        usable = [batch for batch in batches if len(batch) >= self.world.size]
        if len(usable) < len(batches) and self.epoch == 0:
            self.log(f"note: the last batch of each epoch has fewer clips than the {self.world.size} processes and "
                     "is left out")
        return [distributed.share_of(batch, self.world.rank, self.world.size) for batch in usable]

    def write_log(self) -> None:
        header = "epoch\titers\tskipped\tseconds\t" + "\t".join(TERMS) + "\n"
        rows = "".join(f"{h['epoch']}\t{h['iters']}\t{h['skipped']}\t{h['seconds']:.2f}\t"
                       + "\t".join(f"{h['losses'].get(t, 0.0):.5f}" for t in TERMS) + "\n" for h in self.history)
        write_atomic(self.out / "train-log.tsv", (header + rows).encode())

    def run(self) -> list[dict]:
        from tqdm import tqdm

        epochs = int(self.config["epochs"])
        guard = LoopGuard(last_good=self.latest_state,
                          nonfinite_fix="Lower optimizer_params.lr (--set), or set that loss's weight to 0.",
                          out_of_memory_fix=lambda: f"Already one clip per pass: lower --set max_len (now "
                          f"{self.config['max_len']}), keep SLM adversarial training off (no --slm-adversarial), "
                          "free the card (nvidia-smi lists what holds it) or use --device cpu.")
        with guard:
            while self.epoch < epochs:
                self.set_modes()
                sums: dict[str, float] = {}
                steps = skipped = 0
                started = time.monotonic()
                batches = self.rank_batches(self.data.batches(self.batch_size, self.seed, self.epoch))
                for indices, weight in tqdm(batches, desc=f"epoch {self.epoch + 1}/{epochs}", unit="batch",
                                            disable=not self.progress):
                    self.share_weight = weight
                    with guard.step(f"at epoch {self.epoch + 1}"):
                        losses = self.fitted_step(indices)
                    if losses is None:
                        skipped += 1
                    else:
                        steps += 1
                        for k, v in losses.items():
                            sums[k] = sums.get(k, 0.0) + v
                    if self.world.any(guard.interrupted):
                        path = self.save("interrupted")
                        self.log(f"interrupted: saved {path}; continue with --resume")
                        return self.history
                self.epoch += 1
                means = {k: v / max(1, steps) for k, v in sums.items()}
                self.history.append({"epoch": self.epoch, "iters": self.iters, "skipped": skipped,
                                     "seconds": time.monotonic() - started, "losses": means})
                self.world.check_in_step((p for key in self.model for p in self.model[key].parameters()),
                                         f"after epoch {self.epoch}")
                path = self.save(f"epoch_2nd_{self.epoch:05d}")
                if not self.world.main:
                    continue
                self.write_log()
                for leftover in self.out.glob("interrupted.*"):
                    leftover.unlink()
                if self.progress:
                    self.log(f"epoch {self.epoch}: " + " ".join(f"{k} {v:.3f}" for k, v in means.items() if v)
                             + f" -> {path.name}")
        return self.history


# -- command line ---------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = arguments.Parser(prog="python -m trainers.styletts2", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("manifest", type=Path, help="manifest.jsonl from trainers.prepare (with StyleTTS2 mels)")
    p.add_argument("--out", type=Path, required=True, help="run folder (config.yml, checkpoints, train-log.tsv)")
    p.add_argument("--pretrained-dir", type=Path, help="folder with the pretrained pieces in the upstream layout")
    p.add_argument("--wavlm", help="WavLM for the SLM losses: a local transformers folder or a hub id")
    p.add_argument("--epochs", type=arguments.whole(1), help="default 20")
    p.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override any config value, e.g. --set batch_size=4 --set loss_params.lambda_slm=0")
    p.add_argument("--slm-adversarial", action="store_true", help="SLM adversarial training from the first epoch "
                   "(the recipe's joint training; the memory peak: off by default)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--pass-clips", type=arguments.whole(1), default=0, metavar="N",
                   help="clips per forward pass: each batch of batch_size clips runs in passes of N whose gradients "
                   "are summed, for a card that cannot hold the batch (default: the whole batch; halved by itself "
                   "when CUDA runs out of memory)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--amp", default="auto", choices=("auto", "off", "bf16", "fp16"), help="mixed precision on a GPU "
                   "(auto, the default: bf16 on compute capability 8.0 and newer, fp16 with a loss scaler on 7.x cards "
                   "with tensor cores, float32 on Pascal, Maxwell and GTX 16xx; bf16 is refused below 8.0)")
    p.add_argument("--language", default="en-us", help="espeak-ng voice for phonemisation (the pretrain: en-us)")
    p.add_argument("--quiet", action="store_true")
    add_trust_argument(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log = (lambda message: None) if args.quiet else (lambda message: print(message, file=sys.stderr))
    world = distributed.World()
    try:
        device = device_mod.pick(args.device)
        world = distributed.join(device)  # under torchrun: this process's rank; else a world of one
        config_path = args.out / "config.yml"
        run_state.check_out(args.out, args.resume)
        if args.resume:
            config = styletts2_pieces.read_run_config(config_path)
            styletts2_pieces.apply_sets(config, args.set)  # e.g. more epochs
            if args.epochs:
                config["epochs"] = args.epochs
            phonemes.check_language(config.get("language", "en-us"), f"the language of {config_path}")
        else:
            phonemes.check_language(args.language)  # before any piece is fetched
            sets = list(args.set) + ([f"epochs={args.epochs}"] if args.epochs else [])
            need_wavlm = not any(s.replace(" ", "").startswith("loss_params.lambda_slm=0") for s in sets)
            pieces = styletts2_pieces.find(args.pretrained_dir, args.wavlm, need_wavlm=need_wavlm)
            config = styletts2_pieces.make_config(pieces, sets, args.slm_adversarial)
            config["language"] = args.language
        # Rank 0 owns the run folder (its lock, its removal when the start fails); the others only read it.
        with run_state.run_folder(args.out) if world.main else contextlib.nullcontext():
            trainer = Trainer(config, args.manifest, args.out, device=device, trust=args.trust_checkpoint,
                              amp=args.amp, progress=not args.quiet, log=log, world=world,
                              pass_clips=args.pass_clips)
            if world.main:
                styletts2_pieces.save_config(config, config_path)  # once the data and pieces are known good
            history = run_state.train(trainer, args.resume)
    except (TtsrigError, CheckpointError) as exc:
        print(f"trainers.styletts2{world.label}: {exc}", file=sys.stderr)
        return 2
    finally:
        world.close()
    if history and world.main:
        print(f"done: {history[-1]['epoch']} epochs; checkpoints and train-log.tsv in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
