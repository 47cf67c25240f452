"""StyleTTS2 synthesis from a checkpoint and its config: the engine of voices/say-default.

The algorithm is the LibriTTS model's inference (style diffusion conditioned on PL-BERT and a reference
style, alpha/beta mixing of timbre and prosody, duration prediction, HiFi-GAN decoding), written against the
`styletts2` package's modules; the package's own StyleTTS2 class cannot be used here (it imports langchain
and gruut, downloads nltk data at import, and always re-downloads the pitch model).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from envcheck.errors import TtsrigError
from patches.checkpoints import load_checkpoint
from trainers import phonemes, styletts2_model
from trainers.config_check import read_yaml

TAIL_TRIM = 50  # the HiFi-GAN decoder ends with a short click; upstream trims it too


@dataclass
class Voice:
    model: object
    sampler: object
    params: object
    device: str


def load(checkpoint: Path, config: Path | dict, *, device: str = "cpu", trust: bool = False) -> Voice:
    """config: a trainers.styletts2 run's config.yml (or the same as a dict)."""
    from styletts2.utils import recursive_munch

    source = "the StyleTTS2 config"
    if not isinstance(config, dict):
        source = f"the StyleTTS2 config {config}"
        config = read_yaml(config, "the StyleTTS2 config", "Use the config.yml a trainers.styletts2 run wrote "
                           "beside its checkpoints.")
    if not isinstance(config, dict) or "pieces" not in config:
        raise TtsrigError(f"{source} names no pretrained pieces: use the config.yml a "
                          "trainers.styletts2 run wrote beside its checkpoints")
    model = styletts2_model.build(config, trust, source)
    state = load_checkpoint(checkpoint, trust=trust)
    if not isinstance(state, dict) or "net" not in state:
        raise TtsrigError(f"{checkpoint} is not a StyleTTS2 checkpoint (no 'net')")
    styletts2_model.load_weights(model, state["net"], str(checkpoint))
    for key in model:
        model[key].eval().to(device)
    return Voice(model, styletts2_model.style_sampler(model), recursive_munch(config["model_params"]), device)


def reference_style(voice: Voice, wave: np.ndarray) -> torch.Tensor:
    """[1, 2 * style_dim]: acoustic and prosodic style of a 24 kHz reference clip."""
    from trainers import audio, mels

    trimmed = audio.trim(wave, top_db=30, keep_s=0.0)
    if len(trimmed) < 2400:
        raise TtsrigError("the reference clip has less than 0.1 s of sound: give a clip of a few seconds of speech")
    mel = mels.styletts2_mel(torch.from_numpy(trimmed), voice.device, pad=False).to(voice.device)[None, None]
    with torch.no_grad():
        return torch.cat([voice.model.style_encoder(mel), voice.model.predictor_encoder(mel)], dim=1)


def _shift_right(x: torch.Tensor) -> torch.Tensor:
    """The HiFi-GAN decoder of the pretrain expects its inputs delayed by one frame."""
    out = torch.zeros_like(x)
    out[:, :, 0] = x[:, :, 0]
    out[:, :, 1:] = x[:, :, :-1]
    return out


def synthesize(voice: Voice, tokens: list[int], ref_s: torch.Tensor, *, alpha: float = 0.3, beta: float = 0.7,
               diffusion_steps: int = 5, embedding_scale: float = 1.0) -> np.ndarray:
    """24 kHz float32 audio for one sentence's tokens (see trainers.phonemes.encode)."""
    return synthesize_timed(voice, tokens, ref_s, alpha=alpha, beta=beta, diffusion_steps=diffusion_steps,
                            embedding_scale=embedding_scale)[0]


def synthesize_timed(voice: Voice, tokens: list[int], ref_s: torch.Tensor, *, alpha: float = 0.3, beta: float = 0.7,
                     diffusion_steps: int = 5, embedding_scale: float = 1.0) -> tuple[np.ndarray, list[int]]:
    """synthesize()'s audio, and the frames the model gave each token (rounded, at least one; the leading
    pad first, no trailing pad): the audition screen names the phonemes whose duration collapsed."""
    m, dev, style_dim = voice.model, voice.device, voice.params.style_dim
    tokens_t = torch.tensor(tokens[:-1] if tokens[-1] == phonemes.PAD else tokens, device=dev)[None]  # upstream: one pad, at the start
    if tokens_t.shape[1] > 512:
        raise TtsrigError("a sentence longer than PL-BERT's 512 tokens: split the text into shorter sentences")
    with torch.inference_mode():
        lengths = torch.tensor([tokens_t.shape[1]], device=dev)
        text_mask = torch.arange(tokens_t.shape[1], device=dev)[None] >= lengths[:, None]
        t_en = m.text_encoder(tokens_t, lengths, text_mask)
        bert_dur = m.bert(tokens_t, attention_mask=(~text_mask).int())
        d_en = m.bert_encoder(bert_dur).transpose(-1, -2)
        s_pred = voice.sampler(noise=torch.randn(1, 1, 2 * style_dim, device=dev), embedding=bert_dur,
                               embedding_scale=embedding_scale, features=ref_s, num_steps=diffusion_steps).squeeze(1)
        timbre = alpha * s_pred[:, :style_dim] + (1 - alpha) * ref_s[:, :style_dim]
        prosody = beta * s_pred[:, style_dim:] + (1 - beta) * ref_s[:, style_dim:]
        d = m.predictor.text_encoder(d_en, prosody, lengths, text_mask)
        x, _ = m.predictor.lstm(d)
        frames = torch.round(torch.sigmoid(m.predictor.duration_proj(x)).sum(dim=-1)).clamp(min=1)[0].long()
        alignment = torch.zeros(tokens_t.shape[1], int(frames.sum()), device=dev)
        start = 0
        for i, n in enumerate(frames.tolist()):
            alignment[i, start:start + n] = 1
            start += n
        en = _shift_right(d.transpose(-1, -2) @ alignment[None])
        f0, n = m.predictor.F0Ntrain(en, prosody)
        asr = _shift_right(t_en @ alignment[None])
        out = m.decoder(asr, f0, n, timbre)
    return out.reshape(-1).float().cpu().numpy()[:-TAIL_TRIM], frames.tolist()
