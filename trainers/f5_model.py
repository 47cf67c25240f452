"""F5-TTS model code shared by the trainer (trainers.f5) and synthesis (voices.f5): the published pretrain and
its vocoder, its default architecture and vocab, building the CFM around a DiT, the weights that make an
inference checkpoint, and loading any checkpoint through the safe loader. It imports no trainer: trainers.f5 and
voices.f5 both import it, and voices never import trainers.f5.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from envcheck import reading
from envcheck.errors import TtsrigError
from patches import f5_core
from patches.checkpoints import load_checkpoint
from trainers import f5_arch, hub, mels

PRETRAINED = "hf://SWivid/F5-TTS/F5TTS_v1_Base/model_1250000.safetensors"
# The vocoder the pretrain was trained against (mels in, 24 kHz audio out), and the files of it that are read.
VOCODER = "charactr/vocos-mel-24khz"
VOCODER_FILES = ["config.yaml", "pytorch_model.bin"]
# Keys of the inference checkpoint's safetensors metadata: the architecture travels with the weights.
ARCH_KEY, VOCAB_KEY = "ttsrig.f5.arch", "ttsrig.f5.vocab"
# Upstream keys that are buffers of the mel front end, absent from newer models (upstream drops them too).
IGNORED_KEYS = ("mel_spec.mel_stft.mel_scale.fb", "mel_spec.mel_stft.spectrogram.window")


def default_arch() -> dict:
    """F5TTS_v1_Base's DiT arguments, read from the config the f5-tts wheel ships."""
    import yaml
    from importlib.resources import files

    arch = yaml.safe_load(files("f5_tts").joinpath("configs/F5TTS_v1_Base.yaml").read_text())["model"]["arch"]
    return {k: v for k, v in arch.items() if k != "checkpoint_activations"}


def default_vocab() -> str:
    """The vocab.txt the f5-tts wheel ships (the pretrain's)."""
    from importlib.resources import files

    return str(files("f5_tts").joinpath("infer/examples/vocab.txt"))


def build_model(arch: dict, vocab_path: str):
    """(CFM with a DiT of `arch`, the vocab's char -> id map); the mel front end is mels.F5_MEL_SPEC."""
    model_pkg = f5_core.install()
    from f5_tts.model.utils import get_tokenizer

    # one line for a missing, folder or non-UTF-8 vocab (upstream's reader would raise a traceback)
    reading.read_text(Path(vocab_path), "vocab file", "pass the vocab.txt the model was trained with (--vocab, or "
                    "vocab in the voice config), or leave it out for the pretrain's")
    vocab, size = get_tokenizer(vocab_path, "custom")
    transformer = model_pkg.DiT(**arch, text_num_embeds=size, mel_dim=mels.F5_MELS)
    return model_pkg.CFM(transformer=transformer, mel_spec_kwargs=dict(mels.F5_MEL_SPEC), vocab_char_map=vocab), vocab


def inference_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if not k.startswith("mel_spec.")}


def inference_bytes(model: torch.nn.Module, step: int, arch: dict, vocab_path: str | None) -> bytes:
    """The published F5TTS_v1_Base layout (`ema_model.`-prefixed weights, `step`, `initted`) with the
    architecture (and a vocab other than the default) in its metadata, so a checkpoint copied without its
    run.json still loads."""
    from safetensors.torch import save

    weights = {f"ema_model.{k}": v.detach().cpu().contiguous() for k, v in inference_state(model).items()}
    weights["step"] = torch.tensor(step)
    weights["initted"] = torch.tensor(True)
    metadata = {ARCH_KEY: json.dumps(arch)}
    if vocab_path:
        metadata[VOCAB_KEY] = vocab_path
    return save(weights, metadata=metadata)


def recorded_arch(path: str) -> tuple[dict, str | None] | None:
    """(arch, vocab path or None) from a safetensors checkpoint's metadata, checked like a run.json; None
    when the file is not safetensors or has no architecture in it (the published pretrain, older runs)."""
    if not path.endswith(".safetensors") or not reading.is_regular(Path(path)):
        return None  # not safetensors, or no regular file: the loader says what is wrong with it
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework="pt") as fh:
            metadata = fh.metadata() or {}
    except (OSError, SafetensorError):
        return None  # the loader says what is wrong with the file
    if ARCH_KEY not in metadata:
        return None
    where = f"{path} (metadata {ARCH_KEY})"
    try:
        arch = reading.loads_json(metadata[ARCH_KEY])
    except ValueError as exc:
        raise TtsrigError(f"{where} is not JSON ({exc}); set model_config to the checkpoint's architecture.") from None
    return f5_arch.from_run({"arch": arch, "vocab": metadata.get(VOCAB_KEY) or None}, where)


def vocoder_files(repo: str = VOCODER) -> Path:
    """The cache folder of a Vocos repository's VOCODER_FILES (downloaded when online; offline: the cache)."""
    return hub.download_repo(repo, VOCODER_FILES, what="vocoder",
                             instead="set vocoder to a folder with config.yaml and pytorch_model.bin")


def resolve_pretrained(spec: str, instead: str = "--pretrained PATH") -> str:
    """A local path as it is; `hf://org/repo/file` through the Hugging Face cache (offline: cache only)."""
    if not hub.is_hub_file(spec):
        return spec
    return hub.download(spec, instead=instead)


def load_pretrained(model: torch.nn.Module, path: str, *, trust: bool = False,
                    fix: str = "Use the matching --model-config and --vocab (the defaults are F5TTS_v1_Base's).") -> int:
    """Load the published layout (EMA-only `ema_model.*` weights, `step`, `initted`; safetensors or .pt) or
    one of the trainer's checkpoints. Every weight must arrive; returns the checkpoint's step. `fix` is the
    caller's way to choose the architecture."""
    checkpoint = load_checkpoint(resolve_pretrained(path), trust=trust)
    weights = checkpoint
    for key in ("ema_model_state_dict", "model_state_dict"):
        if isinstance(checkpoint, dict) and key in checkpoint:
            weights = checkpoint[key]
            break
    step = int(weights.get("step", checkpoint.get("update", 0)) if isinstance(weights, dict) else 0)
    weights = {k.removeprefix("ema_model."): v for k, v in weights.items()
               if k not in ("step", "initted") and k.removeprefix("ema_model.") not in IGNORED_KEYS}
    expected = inference_state(model)
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    wrong = [f"{k}: checkpoint {tuple(weights[k].shape)}, model {tuple(v.shape)}"
             for k, v in expected.items() if k in weights and weights[k].shape != v.shape]
    if missing or unexpected or wrong:
        raise TtsrigError(
            f"{path} is a checkpoint of another architecture: {len(missing)} weights missing"
            f"{' (e.g. ' + missing[0] + ')' if missing else ''}, {len(unexpected)} unexpected"
            f"{' (e.g. ' + unexpected[0] + ')' if unexpected else ''}"
            f"{', shapes differ: ' + '; '.join(wrong[:3]) if wrong else ''}. {fix}")
    model.load_state_dict(weights, strict=False)  # strict=False only for the mel front end's buffers
    return step
