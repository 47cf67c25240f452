"""Build StyleTTS2 from the `styletts2` package's modules and load the pretrained pieces safely.

The package's own loaders (`load_ASR_models`, `load_F0_models`, `load_plbert`, `load_checkpoint`) call
torch.load without weights_only, which torch >= 2.6 refuses for the published files ("Unsupported global");
these do the same job through patches.checkpoints, so a legacy pickle is unpickled only when trusted.
"""
from __future__ import annotations

from pathlib import Path

import torch

from envcheck import reading
from envcheck.errors import TtsrigError
from patches.checkpoints import load_checkpoint
from patches.quiet import silenced
from trainers.config_check import (COUNT, FLAG, NUMBER, POSITIVE, TEXT, check, check_piece_size, check_styletts2_size,
                                   one_of, optional, read_yaml)


def strip_prefix(state: dict, prefix: str = "module.") -> dict:
    """DataParallel saved every key under `module.`; the modules here are not wrapped."""
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}


# The settings each piece's config may give (the keyword arguments of its fixed class), by kind: a config
# chooses sizes, never what is built or imported.
ASR_PARAMS = {k: POSITIVE for k in ("input_dim", "hidden_dim", "n_token", "n_layers", "token_embedding_dim")}
PLBERT_PARAMS = {  # AlbertConfig's arguments, and the published config's unused `dropout`
    **{k: POSITIVE for k in ("vocab_size", "embedding_size", "hidden_size", "num_hidden_layers", "num_hidden_groups",
                             "num_attention_heads", "intermediate_size", "inner_group_num", "max_position_embeddings",
                             "type_vocab_size")},
    **{k: NUMBER for k in ("hidden_dropout_prob", "attention_probs_dropout_prob", "initializer_range",
                           "layer_norm_eps", "classifier_dropout_prob", "dropout")},
    **{k: COUNT for k in ("pad_token_id", "bos_token_id", "eos_token_id")},
    "hidden_act": one_of("gelu_new", "gelu", "relu", "gelu_fast", "gelu_python", "silu", "swish", "tanh", "mish"),
    "position_embedding_type": one_of("absolute", "relative_key", "relative_key_query"),
}
DIFFUSION_TRANSFORMER = {  # StyleTransformer1d's arguments that build_model leaves to the config
    **{k: POSITIVE for k in ("num_layers", "num_heads", "head_features", "multiplier", "context_features_multiplier",
                             "embedding_max_length")},
    "use_context_time": FLAG, "use_rel_pos": FLAG,
    "rel_pos_num_buckets": optional(POSITIVE), "rel_pos_max_distance": optional(POSITIVE),
}
# WavLM config.json entries that would make transformers fetch or run code, or load differently
WAVLM_REFUSED = ("auto_map", "custom_pipelines", "quantization_config", "trust_remote_code", "attn_implementation",
                 "_attn_implementation", "_attn_implementation_internal")


def model_params(config_path: Path, fields: dict, piece: str) -> dict:
    """The checked `model_params` of a piece's config.yml."""
    config = read_yaml(config_path, f"the {piece} config", f"Use the upstream repository's {piece} config.yml.")
    if not isinstance(config, dict) or "model_params" not in config:
        raise TtsrigError(f"{config_path} has no model_params: it is not the {piece} config. Use the upstream "
                          f"repository's file (see python -m trainers.styletts2 --help for the layout).")
    where, fix = f"{piece} config {config_path}: model_params", f"Use the upstream repository's {piece} config.yml."
    checked = check(config["model_params"], fields, where, fix=fix)
    check_piece_size(checked, piece, where, fix)  # sizes that would fill the memory before a weight is read
    return checked


def check_config(config: object, where: str) -> dict:
    """A run's StyleTTS2 config, checked where it chooses what is built or loaded: the pieces it names,
    the decoder type, the diffusion transformer's arguments and the WavLM source."""
    from trainers.styletts2_pieces import PIECES

    if not isinstance(config, dict) or not isinstance(config.get("model_params"), dict):
        raise TtsrigError(f"{where} has no model_params: use the config.yml a trainers.styletts2 run wrote")
    check(config.get("pieces"), {name: TEXT for name in PIECES}, f"{where}: pieces",
          fix="Use the config.yml a trainers.styletts2 run wrote beside its checkpoints.")
    params = config["model_params"]
    fix = "Use the model_params of the pretrain's config.yml."
    for section in ("decoder", "diffusion", "slm"):
        if not isinstance(params.get(section), dict):
            raise TtsrigError(f"{where}: model_params.{section} is missing or not a section. {fix}")
    check({"type": params["decoder"].get("type")}, {"type": one_of("hifigan", "istftnet")},
          f"{where}: model_params.decoder", fix=fix)
    check(params["diffusion"].get("transformer"), DIFFUSION_TRANSFORMER, f"{where}: model_params.diffusion.transformer",
          fix=fix)
    check({"model": params["slm"].get("model", "")}, {"model": TEXT}, f"{where}: model_params.slm", fix=fix)
    check_styletts2_size(params, f"{where}: model_params", fix)  # before anything is built
    return config


def _part(checkpoint: dict, key: str, path: Path) -> dict:
    if not isinstance(checkpoint, dict) or key not in checkpoint:
        raise TtsrigError(f"{path} has no '{key}' entry: it is not the expected StyleTTS2 piece")
    return checkpoint[key]


def load_asr(config_path: Path, checkpoint_path: Path, trust: bool = False) -> torch.nn.Module:
    from styletts2.Utils.ASR.models import ASRCNN

    model = ASRCNN(**model_params(config_path, ASR_PARAMS, "ASR"))
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

    bert = CustomAlbert(AlbertConfig(**model_params(config_path, PLBERT_PARAMS, "PL-BERT")))
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


def load_wavlm(source: str):
    """WavLM (the SLM of the SLM losses) from a transformers folder or a Hugging Face id in the cache: always
    transformers' WavLMModel, its config.json checked, its weights through the safe loader. Stands in for the
    package's AutoModel.from_pretrained, which would build whatever class the folder's config names."""
    import json

    from transformers import WavLMConfig, WavLMModel

    from trainers.styletts2_pieces import wavlm_folder

    folder = wavlm_folder(source)
    settings = reading.read_json(folder / "config.json", f"WavLM {source}:", "use microsoft/wavlm-base-plus or a "
                                 "folder saved from it (--wavlm PATH)")
    if not isinstance(settings, dict) or settings.get("model_type") != "wavlm":
        kind = settings.get("model_type") if isinstance(settings, dict) else None
        raise TtsrigError(f"WavLM {source}: its config.json says model_type {kind!r}, not 'wavlm'; the SLM "
                          "losses need microsoft/wavlm-base-plus or a folder saved from it (--wavlm PATH).")
    refused = sorted(k for k in settings if k in WAVLM_REFUSED)
    if refused:
        raise TtsrigError(f"WavLM {source}: its config.json sets {', '.join(refused)}, which would load code or "
                          "change how weights load; ttsrig loads WavLM only as transformers' own WavLMModel. Use "
                          "microsoft/wavlm-base-plus or remove those entries.")
    weights = next((folder / n for n in ("model.safetensors", "pytorch_model.bin") if (folder / n).is_file()), None)
    if weights is None:
        raise TtsrigError(f"WavLM {source}: {folder} has neither model.safetensors nor pytorch_model.bin")
    state = load_checkpoint(weights)
    model, info = WavLMModel.from_pretrained(None, config=WavLMConfig.from_dict(settings), state_dict=state,
                                             output_loading_info=True)
    missing = info["missing_keys"] + [str(m[0]) if isinstance(m, tuple) else str(m) for m in info["mismatched_keys"]]
    if missing:
        raise TtsrigError(f"WavLM {source}: {weights} does not fit its config.json ({len(missing)} weights missing "
                          f"or of another shape, e.g. {missing[0]})")
    return model


class _SafeAutoModel:
    """What styletts2.losses calls AutoModel: WavLM only, through load_wavlm."""

    @staticmethod
    def from_pretrained(source, *args, **kwargs):
        if args or kwargs:  # the package passes the source alone; anything more is not its call
            raise TtsrigError("WavLM is loaded by ttsrig from a folder or a Hugging Face id only")
        return load_wavlm(str(source))


def install_safe_loading() -> None:
    """The package builds the SLM of WavLMLoss with AutoModel.from_pretrained(model_params.slm.model): point
    that name at load_wavlm, so a config never chooses the class and its weights load through the safe
    loader. Idempotent."""
    from styletts2 import losses

    losses.AutoModel = _SafeAutoModel


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


@silenced("weight_norm", "rnn_dropout")  # the styletts2 package's modules, as upstream builds them
def build(config: dict, trust: bool = False, source: str = "the StyleTTS2 config"):
    """The StyleTTS2 modules (a Munch: bert, predictor, decoder, text_encoder, style encoders, diffusion,
    text_aligner, pitch_extractor, discriminators), with ASR, JDC and PL-BERT loaded."""
    from styletts2.models import build_model
    from styletts2.utils import recursive_munch

    install_cpu_fixes()
    install_safe_loading()
    check_config(config, source)
    pieces = {k: Path(v) for k, v in config["pieces"].items()}
    asr = load_asr(pieces["asr_config"], pieces["asr"], trust)
    jdc = load_jdc(pieces["jdc"], trust)
    bert = load_plbert(pieces["plbert_config"], pieces["plbert"], trust)
    try:
        return build_model(recursive_munch(config["model_params"]), asr, jdc, bert)
    except (KeyError, AttributeError, TypeError) as exc:  # upstream reads model_params' keys as attributes
        raise TtsrigError(f"{source}: model_params lacks or mistypes a setting the StyleTTS2 model needs "
                          f"({type(exc).__name__}: {exc}). Use the model_params of the pretrain's config.yml") from None


def style_sampler(model):
    """The diffusion sampler of the style vector (upstream's ADPM2 on a Karras schedule): the trainer's
    style-diffusion and SLM losses and synthesis use the same one."""
    from styletts2.Modules.diffusion.sampler import ADPM2Sampler, DiffusionSampler, KarrasSchedule

    return DiffusionSampler(model.diffusion.diffusion, sampler=ADPM2Sampler(),
                            sigma_schedule=KarrasSchedule(sigma_min=1e-4, sigma_max=3.0, rho=9.0), clamp=False)


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
