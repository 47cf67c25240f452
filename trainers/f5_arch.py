"""The F5-TTS DiT architecture as settings (a --model-config / model_config JSON file, the `arch` of a
trainers.f5 run's run.json): the keyword arguments of f5-tts' DiT, each a plain value of its kind. The
class is always DiT; a file chooses its sizes, never what is built. Imports nothing heavy.
"""
from __future__ import annotations

from envcheck.errors import TtsrigError
from trainers.config_check import (COUNT, FLAG, LAYER_COUNT, LAYERS, NUMBER, POSITIVE, TEXT, check, check_parameters,
                                   one_of, optional)

# DiT's own arguments (f5_tts.model.backbones.dit.DiT), less mel_dim and text_num_embeds, which the
# trainer sets from the mel front end and the vocab.
ARCH = {
    "dim": POSITIVE, "depth": LAYERS, "heads": POSITIVE, "dim_head": POSITIVE, "dropout": NUMBER,
    "ff_mult": POSITIVE, "text_dim": optional(POSITIVE), "text_mask_padding": FLAG,
    "text_embedding_average_upsampling": FLAG, "qk_norm": optional(one_of("rms_norm")), "conv_layers": LAYER_COUNT,
    "pe_attn_head": optional(COUNT), "attn_backend": one_of("torch", "flash_attn"), "attn_mask_enabled": FLAG,
    "long_skip_connection": FLAG, "checkpoint_activations": FLAG,
}
FIX = "Use the run.json the trainer wrote, or a model config like F5TTS_v1_Base's arch (dim, depth, heads, ...)."


MEL_DIM = 100  # mels.F5_MELS (which imports torch): the DiT's mel_dim, and its text_dim when the arch has none
# DiT's defaults for what an arch may leave out (f5_tts.model.backbones.dit.DiT's signature)
DEFAULTS = {"depth": 8, "heads": 8, "dim_head": 64, "ff_mult": 4, "text_dim": None, "conv_layers": 0,
            "long_skip_connection": False}


def check_arch(arch: object, where: str, vocab_size: int = 0) -> dict:
    """`arch` if it names DiT's arguments, each of its kind, and a model within config_check.MAX_PARAMETERS
    (`vocab_size`: the vocab's entries, when known, whose text embedding counts too)."""
    arch = check(arch, ARCH, where, required=("dim",), fix=FIX)
    check_parameters(parameters(arch, vocab_size), where, FIX)
    return arch


def parameters(arch: dict, vocab_size: int = 0) -> int:
    """About how many parameters the DiT of a checked `arch` has: its matrices, from f5-tts's constructors
    (F5TTS_v1_Base: 336.8 M counted of its 337.1 M, with the pretrain's vocab)."""
    a = {**DEFAULTS, **arch}
    dim, inner, ff = a["dim"], a["heads"] * a["dim_head"], a["dim"] * a["ff_mult"]
    text = a["text_dim"] or MEL_DIM
    block = 6 * dim * dim + 4 * dim * inner + 2 * dim * ff  # AdaLayerNorm, q/k/v/out, feed-forward
    embeddings = (vocab_size + 1) * text + a["conv_layers"] * 4 * text * text  # ConvNeXtV2 blocks of width 2x
    inputs = (2 * MEL_DIM + text) * dim + 2 * 31 * dim * (dim // 16)  # projection and grouped position convs
    outputs = 2 * dim * dim + dim * MEL_DIM + 2 * dim * dim * a["long_skip_connection"]
    return a["depth"] * block + embeddings + inputs + 256 * dim + dim * dim + outputs  # ... + time embedding


def from_run(record: object, where: str) -> tuple[dict, str | None]:
    """(arch, vocab path or None) of a trainers.f5 run.json; its other entries are not read."""
    if not isinstance(record, dict) or "arch" not in record:
        raise TtsrigError(f"{where} has no 'arch': it is not the run.json of a trainers.f5 run. Remove it, or pass "
                          "--voice-config with model_config set.")
    vocab = record.get("vocab")
    if vocab is not None and not TEXT.accepts(vocab):
        raise TtsrigError(f"{where}: vocab = {vocab!r:.60} should be the path of a vocab.txt. {FIX}")
    return check_arch(record["arch"], f"{where}: arch"), vocab or None
