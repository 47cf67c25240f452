"""The F5-TTS DiT architecture as settings (a --model-config / model_config JSON file, the `arch` of a
trainers.f5 run's run.json): the keyword arguments of f5-tts' DiT, each a plain value of its kind. The
class is always DiT; a file chooses its sizes, never what is built. Imports nothing heavy.
"""
from __future__ import annotations

from envcheck.errors import TtsrigError
from trainers.config_check import COUNT, FLAG, NUMBER, POSITIVE, TEXT, check, one_of, optional

# DiT's own arguments (f5_tts.model.backbones.dit.DiT), less mel_dim and text_num_embeds, which the
# trainer sets from the mel front end and the vocab.
ARCH = {
    "dim": POSITIVE, "depth": POSITIVE, "heads": POSITIVE, "dim_head": POSITIVE, "dropout": NUMBER,
    "ff_mult": POSITIVE, "text_dim": optional(POSITIVE), "text_mask_padding": FLAG,
    "text_embedding_average_upsampling": FLAG, "qk_norm": optional(one_of("rms_norm")), "conv_layers": COUNT,
    "pe_attn_head": optional(COUNT), "attn_backend": one_of("torch", "flash_attn"), "attn_mask_enabled": FLAG,
    "long_skip_connection": FLAG, "checkpoint_activations": FLAG,
}
FIX = "Use the run.json the trainer wrote, or a model config like F5TTS_v1_Base's arch (dim, depth, heads, ...)."


def check_arch(arch: object, where: str) -> dict:
    return check(arch, ARCH, where, required=("dim",), fix=FIX)


def from_run(record: object, where: str) -> tuple[dict, str | None]:
    """(arch, vocab path or None) of a trainers.f5 run.json; its other entries are not read."""
    if not isinstance(record, dict) or "arch" not in record:
        raise TtsrigError(f"{where} has no 'arch': it is not the run.json of a trainers.f5 run. Remove it, or pass "
                          "--voice-config with model_config set.")
    vocab = record.get("vocab")
    if vocab is not None and not TEXT.accepts(vocab):
        raise TtsrigError(f"{where}: vocab = {vocab!r:.60} should be the path of a vocab.txt. {FIX}")
    return check_arch(record["arch"], f"{where}: arch"), vocab or None
