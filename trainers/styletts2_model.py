"""Build StyleTTS2 from the `styletts2` package's modules and load the pretrained pieces safely.

The package's own loaders (`load_ASR_models`, `load_F0_models`, `load_plbert`, `load_checkpoint`) call
torch.load without weights_only, which torch >= 2.6 refuses for the published files ("Unsupported global");
these do the same job through patches.checkpoints, so a legacy pickle is unpickled only when trusted.
"""
from __future__ import annotations

from pathlib import Path

import torch
import yaml

from envcheck.errors import TtsrigError
from patches.checkpoints import load_checkpoint


def strip_prefix(state: dict, prefix: str = "module.") -> dict:
    """DataParallel saved every key under `module.`; the modules here are not wrapped."""
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}


def _yaml(path: Path) -> dict:
    try:
        return yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise TtsrigError(f"cannot read {path}: {exc}") from None


def _part(checkpoint: dict, key: str, path: Path) -> dict:
    if not isinstance(checkpoint, dict) or key not in checkpoint:
        raise TtsrigError(f"{path} has no '{key}' entry: it is not the expected StyleTTS2 piece")
    return checkpoint[key]


def load_asr(config_path: Path, checkpoint_path: Path, trust: bool = False) -> torch.nn.Module:
    from styletts2.Utils.ASR.models import ASRCNN

    model = ASRCNN(**_yaml(config_path)["model_params"])
    model.load_state_dict(strip_prefix(_part(load_checkpoint(checkpoint_path, trust=trust), "model",
                                             checkpoint_path)))
    return model


def load_jdc(checkpoint_path: Path, trust: bool = False) -> torch.nn.Module:
    from styletts2.Utils.JDC.model import JDCNet

    model = JDCNet(num_class=1, seq_len=192)
    model.load_state_dict(strip_prefix(_part(load_checkpoint(checkpoint_path, trust=trust), "net", checkpoint_path)))
    return model


def load_plbert(config_path: Path, checkpoint_path: Path, trust: bool = False) -> torch.nn.Module:
    from styletts2.Utils.PLBERT.util import CustomAlbert
    from transformers import AlbertConfig

    bert = CustomAlbert(AlbertConfig(**_yaml(config_path)["model_params"]))
    state = _part(load_checkpoint(checkpoint_path, trust=trust), "net", checkpoint_path)
    # PL-BERT was trained wrapped (module.encoder.*); the Albert weights are the encoder's
    weights = {k[len("module.encoder."):]: v for k, v in state.items() if k.startswith("module.encoder.")}
    weights.pop("embeddings.position_ids", None)
    missing, unexpected = bert.load_state_dict(weights, strict=False)
    missing = [k for k in missing if k != "embeddings.position_ids"]
    if missing:
        raise TtsrigError(f"{checkpoint_path} does not fit the PL-BERT of {config_path}: {len(missing)} weights "
                          f"missing (e.g. {missing[0]})")
    return bert


def install_cpu_fixes() -> None:
    """The package's spectrogram discriminator moves its window with `.to(y.get_device())`, which is -1
    (an error) for a CPU tensor: give it a forward that places the window on the input's device.
    Idempotent; changes nothing on a GPU but the spelling."""
    from styletts2.Modules import discriminators as disc

    if getattr(disc.SpecDiscriminator, "_ttsrig_device_fix", False):
        return

    def forward(self, y):
        spec = torch.stft(y.squeeze(1), self.fft_size, self.shift_size, self.win_length,
                          self.window.to(y.device), return_complex=True).abs().transpose(2, 1).unsqueeze(1)
        features = []
        for conv in self.discriminators:
            spec = torch.nn.functional.leaky_relu(conv(spec), disc.LRELU_SLOPE)
            features.append(spec)
        spec = self.out(spec)
        features.append(spec)
        return torch.flatten(spec, 1, -1), features

    disc.SpecDiscriminator.forward = forward
    disc.SpecDiscriminator._ttsrig_device_fix = True


def build(config: dict, trust: bool = False):
    """The StyleTTS2 modules (a Munch: bert, predictor, decoder, text_encoder, style encoders, diffusion,
    text_aligner, pitch_extractor, discriminators), with ASR, JDC and PL-BERT loaded."""
    from styletts2.models import build_model
    from styletts2.utils import recursive_munch

    install_cpu_fixes()
    pieces = {k: Path(v) for k, v in config["pieces"].items()}
    asr = load_asr(pieces["asr_config"], pieces["asr"], trust)
    jdc = load_jdc(pieces["jdc"], trust)
    bert = load_plbert(pieces["plbert_config"], pieces["plbert"], trust)
    return build_model(recursive_munch(config["model_params"]), asr, jdc, bert)


def load_weights(model, net: dict, source: str, *, strict: bool = True) -> list[str]:
    """Load `net` ({module name: state dict}) into the modules; returns the names loaded. A module whose
    weights do not fit is an error naming it (a checkpoint of another configuration)."""
    loaded = []
    for key in model:
        if key not in net:
            continue
        try:
            model[key].load_state_dict(strip_prefix(net[key]), strict=strict)
        except RuntimeError as exc:
            first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
            raise TtsrigError(f"{source}: the weights of '{key}' do not fit this model config ({first}). Use the "
                              "config.yml that belongs to the checkpoint.") from None
        loaded.append(key)
    return loaded


def load_pretrain(model, path: Path, trust: bool = False) -> list[str]:
    checkpoint = load_checkpoint(path, trust=trust)
    net = _part(checkpoint, "net", path)
    loaded = load_weights(model, net, str(path))
    if not {"decoder", "text_encoder", "predictor", "style_encoder"} <= set(loaded):
        raise TtsrigError(f"{path} lacks the decoder, text encoder, predictor or style encoder: it is not a "
                          "second-stage StyleTTS2 checkpoint")
    return loaded
