"""F5-TTS synthesis from a checkpoint: the engine of voices/say-strong.

The algorithm is upstream's inference (reference mel as the condition, the reference transcript prefixed
to the text, duration from the reference's speaking rate, flow-matching sampling with classifier-free
guidance and sway sampling, Vocos decoding), written against f5-tts' model classes and imported without
its trainer (patches/f5_core.py); the model is built and its weights loaded, through the safe loader, by
the model code the trainer shares (trainers.f5_model).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from envcheck import reading
from envcheck.errors import TtsrigError
from patches.checkpoints import load_checkpoint
from trainers import f5_arch, f5_model, hub
from trainers.mels import F5_HOP, F5_MELS, F5_RATE
from trainers.config_check import NUMBER, POSITIVE, check, one_of, optional, read_yaml

TARGET_RMS = 0.1  # upstream levels quiet references to this RMS and scales the output back

# Sway sampling warps the flow-matching time grid t in [0, 1] to t + s * (cos(pi/2 t) - 1 + t), which keeps 0 and 1
# where they are; its slope is 1 + s * (1 - pi/2 sin(pi/2 t)), and the bracket runs from 1 (t = 0) down to
# 1 - pi/2 (t = 1). So the grid stays increasing (the ODE solver requires it) exactly for -1 <= s <= 1 / (pi/2 - 1)
# = 2 / (pi - 2), about 1.752; upstream samples with -1 (more steps early), and a positive s spends them late.
SWAY_MIN, SWAY_MAX = -1.0, 2.0 / (math.pi - 2.0)
# Speaking rate relative to the reference's: beyond these the words are unintelligible (upstream's app offers 0.3-2)
SPEED_MIN, SPEED_MAX = 0.1, 10.0
# Mel frames (reference and generated) one sampling may ask for: F5TTS_v1_Base's text embedding has positions for
# 8192 frames (about 87 s); more fails inside the model, and upstream's own cap (65536) does not stop it.
MAX_FRAMES = 8192


@dataclass
class Voice:
    model: torch.nn.Module
    vocoder: torch.nn.Module
    vocab: dict[str, int]
    device: str


# The one vocoder ttsrig supports: the classes of charactr/vocos-mel-24khz's config.yaml. A config names
# them by `class_path`, which vocos' own Vocos.from_hparams imports and calls with any arguments; here each
# section may only name its class, and its init_args are checked plain values of the names below.
VOCOS_DEFAULT = f5_model.VOCODER
VOCOS_SECTIONS = {
    "feature_extractor": ("vocos.feature_extractors.MelSpectrogramFeatures",
                          {"sample_rate": POSITIVE, "n_fft": POSITIVE, "hop_length": POSITIVE, "n_mels": POSITIVE,
                           "padding": one_of("center", "same")}, ()),
    "backbone": ("vocos.models.VocosBackbone",
                 {"input_channels": POSITIVE, "dim": POSITIVE, "intermediate_dim": POSITIVE, "num_layers": POSITIVE,
                  "layer_scale_init_value": optional(NUMBER)},
                 ("input_channels", "dim", "intermediate_dim", "num_layers")),
    "head": ("vocos.heads.ISTFTHead",
             {"dim": POSITIVE, "n_fft": POSITIVE, "hop_length": POSITIVE, "padding": one_of("center", "same")},
             ("dim", "n_fft", "hop_length")),
}


def _vocos_classes() -> dict[str, type]:
    """class_path -> class, imported here by name in the code, never from a string in a file."""
    from vocos.feature_extractors import MelSpectrogramFeatures
    from vocos.heads import ISTFTHead
    from vocos.models import VocosBackbone

    return {"vocos.feature_extractors.MelSpectrogramFeatures": MelSpectrogramFeatures,
            "vocos.models.VocosBackbone": VocosBackbone, "vocos.heads.ISTFTHead": ISTFTHead}


def vocoder_settings(config_file: Path) -> dict[str, dict]:
    """{section: init_args} of a Vocos config.yaml, refused (one line) unless every section names the
    supported class and plain arguments of it."""
    config = read_yaml(config_file, "vocoder config", f"Use the config.yaml of {VOCOS_DEFAULT}.")
    if not isinstance(config, dict):
        raise TtsrigError(f"vocoder config {config_file} is not a Vocos config (no sections). Use the config.yaml "
                          f"of {VOCOS_DEFAULT}.")
    settings = {}
    for section, (class_path, fields, required) in VOCOS_SECTIONS.items():
        part = config.get(section)
        named = part.get("class_path") if isinstance(part, dict) else None
        if named != class_path:
            allowed = ", ".join(f"{s}: {c}" for s, (c, _, _) in VOCOS_SECTIONS.items())
            raise TtsrigError(f"vocoder config {config_file}: {section}.class_path {named!r} is not allowed; ttsrig "
                              f"builds only the vocoder of {VOCOS_DEFAULT} ({allowed}). Use that vocoder's "
                              "config.yaml.")
        unexpected = sorted(set(part) - {"class_path", "init_args"})
        if unexpected:
            raise TtsrigError(f"vocoder config {config_file}: {section} has {', '.join(map(str, unexpected))}; only "
                              f"class_path and init_args are read. Use the config.yaml of {VOCOS_DEFAULT}.")
        settings[section] = check(part.get("init_args") or {}, fields, f"vocoder config {config_file}: {section}",
                                  required=required, fix=f"Use the config.yaml of {VOCOS_DEFAULT}.")
    if settings["backbone"]["input_channels"] != F5_MELS:
        raise TtsrigError(f"vocoder config {config_file}: the vocoder reads {settings['backbone']['input_channels']} "
                          f"mel bins, F5-TTS makes {F5_MELS}. Use {VOCOS_DEFAULT}.")
    if settings["head"]["dim"] != settings["backbone"]["dim"]:
        raise TtsrigError(f"vocoder config {config_file}: head.dim {settings['head']['dim']} differs from "
                          f"backbone.dim {settings['backbone']['dim']}. Use the config.yaml of {VOCOS_DEFAULT}.")
    return settings


def build_vocoder(config_file: Path) -> torch.nn.Module:
    """A Vocos built from a checked config: the same modules Vocos.from_hparams makes, without its imports."""
    from vocos import Vocos

    settings, classes = vocoder_settings(config_file), _vocos_classes()
    parts = {section: classes[VOCOS_SECTIONS[section][0]](**settings[section]) for section in VOCOS_SECTIONS}
    return Vocos(**parts)


def vocoder_folder(source: str) -> Path:
    """The folder of a vocoder setting: a folder as it is, a Hugging Face repository id through its cache."""
    folder = Path(source).expanduser()
    if folder.is_dir():
        return folder
    if not hub.is_repo_id(source):
        raise TtsrigError(f"vocoder {source} is neither a folder nor a Hugging Face repository id (org/repo, e.g. "
                          f"{VOCOS_DEFAULT}). Set vocoder to a folder with config.yaml and pytorch_model.bin, or "
                          "to a repository id.")
    return f5_model.vocoder_files(source)


def load_vocoder(source: str, device: str, trust: bool = False) -> torch.nn.Module:
    """Vocos from a folder (config.yaml + pytorch_model.bin) or a Hugging Face id (downloaded or cached)."""
    folder = vocoder_folder(source)
    if not (folder / "config.yaml").is_file():
        raise TtsrigError(f"vocoder folder {folder} has no config.yaml")
    vocoder = build_vocoder(folder / "config.yaml")
    vocoder.load_state_dict(load_checkpoint(folder / "pytorch_model.bin", trust=trust))
    return vocoder.eval().to(device)


def architecture(checkpoint: str | None, model_config: str | None,
                 weights: str | None = None) -> tuple[dict, str | None]:
    """(DiT arch, vocab or None): model_config when given, else the one in the checkpoint's metadata
    (`weights` is its local file), else the run.json beside a run's checkpoint (runs trained before the
    metadata), else F5TTS_v1_Base. Each is checked: known names, plain values."""
    if model_config:
        fix = "name a JSON file of the DiT arch (the run.json's arch of a trainers.f5 run), or leave model_config empty"
        arch = reading.read_json(Path(model_config), "model_config", fix)
        return f5_arch.check_arch(arch, f"model_config {model_config}"), None
    recorded = f5_model.recorded_arch(weights) if weights else None
    if recorded is not None:
        return recorded
    run = Path(checkpoint).with_name("run.json") if checkpoint and not hub.is_hub_file(checkpoint) else None
    if run is not None and run.is_file():  # a trainers.f5 run says what it trained
        record = reading.read_json(run, "the run record", "it should be the run.json trainers.f5 wrote; remove it, "
                                   "or set model_config")
        return f5_arch.from_run(record, str(run))
    return f5_model.default_arch(), None


def load(checkpoint: str | None, *, vocab: str | None, model_config: str | None, vocoder: str, device: str,
         trust: bool = False) -> Voice:
    weights = f5_model.resolve_pretrained(checkpoint or f5_model.PRETRAINED, instead="--checkpoint PATH")
    arch, recorded_vocab = architecture(checkpoint, model_config, weights)
    model, vocab_map = f5_model.build_model(arch, vocab or recorded_vocab or f5_model.default_vocab())
    f5_model.load_pretrained(model, weights, trust=trust, fix="Set model_config and vocab to the checkpoint's "
                             "(the defaults are F5TTS_v1_Base's).")
    return Voice(model.eval().to(device), load_vocoder(vocoder, device, trust), vocab_map, device)


def check_text(voice: Voice, text: str) -> list[str]:
    """Characters the vocab lacks (upstream would silently read them as spaces)."""
    from f5_tts.model.utils import convert_char_to_pinyin

    chars = convert_char_to_pinyin([text], polyphone=True)[0]
    unknown = sorted({c for c in chars if c not in voice.vocab})
    if unknown and all(c in unknown or c == " " for c in chars):
        raise TtsrigError(f"no character of {text!r} is in the model's vocab ({' '.join(unknown)})")
    return unknown


def time_grid(steps: int, sway_sampling_coef: float) -> torch.Tensor:
    """The time grid upstream's CFM.sample integrates over (its epss steps or a linspace, then sway), in float32."""
    from patches import f5_core

    f5_core.install()  # f5_tts.model without its package __init__ (which imports upstream's trainer)
    from f5_tts.model.utils import get_epss_timesteps

    t = get_epss_timesteps(steps, device="cpu", dtype=torch.float32)
    return t + sway_sampling_coef * (torch.cos(torch.pi / 2 * t) - 1 + t)


def check_sampling(*, steps: int, sway_sampling_coef: float, speed: float, where: str = "") -> None:
    """The sampling settings F5-TTS can compute with (see SWAY_MIN, SPEED_MIN, MAX_FRAMES), or one line naming
    the setting (`where`: where it was set) and its range."""
    where = f" {where}" if where else ""
    if not SWAY_MIN <= sway_sampling_coef <= SWAY_MAX:
        raise TtsrigError(f"sway_sampling_coef {sway_sampling_coef:g}{where} is outside {SWAY_MIN:g} to "
                          f"{SWAY_MAX:.3f}: beyond that range the warped time grid is no longer increasing and F5-TTS "
                          "cannot sample. Use -1 (upstream's) or a value in the range (--sway).")
    if not SPEED_MIN <= speed <= SPEED_MAX:
        raise TtsrigError(f"speed {speed:g}{where} is outside {SPEED_MIN:g} to {SPEED_MAX:g} (1 = the reference's "
                          "speaking rate): use a value in that range (--speed).")
    grid = time_grid(steps, sway_sampling_coef)
    if not bool((grid[1:] > grid[:-1]).all()):  # at the range's ends, many steps round to equal float32 times
        raise TtsrigError(f"steps {steps} with sway_sampling_coef {sway_sampling_coef:g}{where} give a time grid "
                          "whose steps round to the same float32 time: use fewer steps (--steps 32 is upstream's) "
                          "or a sway further inside its range.")


def frames_needed(ref_samples: int, ref_text: str, text: str, speed: float) -> tuple[int, int]:
    """(reference frames, total frames) upstream's duration rule asks for: the reference plus the text at the
    reference's speaking rate (in UTF-8 bytes) over speed; refused above MAX_FRAMES."""
    ref_frames = ref_samples // F5_HOP
    generated = ref_frames / len(ref_text.encode()) * len(text.encode()) / speed
    if not ref_frames + generated <= MAX_FRAMES:
        seconds = lambda frames: frames * F5_HOP / F5_RATE  # noqa: E731
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise TtsrigError(f"the sentence {shown!r} at speed {speed:g} would take {seconds(generated):.0f} s after the "
                          f"{seconds(ref_frames):.1f} s reference, more than the {seconds(MAX_FRAMES):.0f} s F5-TTS "
                          "can generate at once: raise --speed, split the sentence (end it with . ! or ?), or use a "
                          "reference whose transcript matches it")
    return ref_frames, ref_frames + int(generated)


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
    check_sampling(steps=steps, sway_sampling_coef=sway_sampling_coef, speed=speed)
    ref_frames, frames = frames_needed(audio.shape[-1], ref_text, text, speed)
    with torch.inference_mode():
        generated, _ = voice.model.sample(cond=audio, text=convert_char_to_pinyin([ref_text + text]),
                                          duration=frames, steps=steps, cfg_strength=cfg_strength,
                                          sway_sampling_coef=sway_sampling_coef)
        mel = generated[:, ref_frames:, :].permute(0, 2, 1).float()
        wave = voice.vocoder.decode(mel)
    if rms < TARGET_RMS:
        wave = wave * rms / TARGET_RMS
    return wave.reshape(-1).float().cpu().numpy()
