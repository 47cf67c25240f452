"""F5-TTS synthesis from a checkpoint: the engine of voices/say-strong.

The algorithm is upstream's inference (reference mel as the condition, the reference transcript prefixed
to the text, duration from the reference's speaking rate, flow-matching sampling with classifier-free
guidance and sway sampling, Vocos decoding), written against f5-tts' model classes and imported without
its trainer (patches/f5_core.py); weights load through the safe loader (trainers.f5.load_pretrained).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from envcheck.errors import TtsrigError
from patches.checkpoints import load_checkpoint
from trainers import f5 as f5_trainer

TARGET_RMS = 0.1  # upstream levels quiet references to this RMS and scales the output back


@dataclass
class Voice:
    model: torch.nn.Module
    vocoder: torch.nn.Module
    vocab: dict[str, int]
    device: str


def load_vocoder(source: str, device: str, trust: bool = False) -> torch.nn.Module:
    """Vocos from a folder (config.yaml + pytorch_model.bin) or a Hugging Face id (downloaded or cached)."""
    from vocos import Vocos

    folder = Path(source).expanduser()
    if not folder.is_dir():
        from huggingface_hub import snapshot_download

        try:
            folder = Path(snapshot_download(source, allow_patterns=["config.yaml", "pytorch_model.bin"]))
        except Exception as exc:
            raise TtsrigError(f"vocoder {source} is neither a folder nor in the Hugging Face cache, and cannot be "
                              f"downloaded ({str(exc).splitlines()[0][:100]}). Offline: copy the cache of "
                              "charactr/vocos-mel-24khz, or set vocoder to a folder with config.yaml and "
                              "pytorch_model.bin.") from None
    if not (folder / "config.yaml").is_file():
        raise TtsrigError(f"vocoder folder {folder} has no config.yaml")
    vocoder = Vocos.from_hparams(str(folder / "config.yaml"))
    vocoder.load_state_dict(load_checkpoint(folder / "pytorch_model.bin", trust=trust))
    return vocoder.eval().to(device)


def load(checkpoint: str | None, *, vocab: str | None, model_config: str | None, vocoder: str, device: str,
         trust: bool = False) -> Voice:
    arch = f5_trainer.default_arch()
    run = Path(checkpoint).with_name("run.json") if checkpoint and not checkpoint.startswith("hf://") else None
    if run is not None and run.is_file() and not model_config:  # a trainers.f5 run says what it trained
        recorded = json.loads(run.read_text())
        arch, vocab = recorded["arch"], vocab or recorded.get("vocab")
    if model_config:
        try:
            arch = json.loads(Path(model_config).read_text())
        except (OSError, ValueError) as exc:
            raise TtsrigError(f"model_config {model_config}: {exc}") from None
    model, vocab_map = f5_trainer.build_model(arch, vocab or f5_trainer.default_vocab())
    f5_trainer.load_pretrained(model, checkpoint or f5_trainer.PRETRAINED, trust=trust)
    return Voice(model.eval().to(device), load_vocoder(vocoder, device, trust), vocab_map, device)


def check_text(voice: Voice, text: str) -> list[str]:
    """Characters the vocab lacks (upstream would silently read them as spaces)."""
    from f5_tts.model.utils import convert_char_to_pinyin

    chars = convert_char_to_pinyin([text], polyphone=True)[0]
    unknown = sorted({c for c in chars if c not in voice.vocab})
    if unknown and all(c in unknown or c == " " for c in chars):
        raise TtsrigError(f"no character of {text!r} is in the model's vocab ({' '.join(unknown)})")
    return unknown


def synthesize(voice: Voice, ref: np.ndarray, ref_text: str, text: str, *, steps: int = 32,
               cfg_strength: float = 2.0, sway_sampling_coef: float = -1.0, speed: float = 1.0) -> np.ndarray:
    from f5_tts.model.utils import convert_char_to_pinyin

    if not ref_text.strip():
        raise TtsrigError("F5-TTS needs the reference clip's transcript: set reference_text or --ref-text")
    audio = torch.from_numpy(ref).float()[None].to(voice.device)
    rms = float(torch.sqrt(torch.mean(audio ** 2)))
    if rms < TARGET_RMS:
        audio = audio * TARGET_RMS / rms
    ref_text = ref_text.strip()
    ref_text = ref_text + (" " if ref_text.endswith(".") else ". ")  # the model expects a sentence break
    ref_frames = audio.shape[-1] // f5_trainer.HOP
    frames = ref_frames + int(ref_frames / len(ref_text.encode()) * len(text.encode()) / speed)
    with torch.inference_mode():
        generated, _ = voice.model.sample(cond=audio, text=convert_char_to_pinyin([ref_text + text]),
                                          duration=frames, steps=steps, cfg_strength=cfg_strength,
                                          sway_sampling_coef=sway_sampling_coef)
        mel = generated[:, ref_frames:, :].permute(0, 2, 1).float()
        wave = voice.vocoder.decode(mel)
    if rms < TARGET_RMS:
        wave = wave * rms / TARGET_RMS
    return wave.reshape(-1).float().cpu().numpy()
