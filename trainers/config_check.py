"""Settings read from files (a vocoder's config.yaml, an F5 run's run.json, StyleTTS2's configs, a voice's
TOML) are checked against a list of known names and plain types before anything is built from them: a
file names values, never classes or code. Imports nothing heavy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Kind:
    """What a setting may hold, and how a message names it."""
    name: str
    accepts: Callable[[object], bool]


def _is_int(value: object) -> bool:
    return type(value) is int  # not bool, which is an int to Python but never meant as one here


def _is_number(value: object) -> bool:
    return _is_int(value) or (type(value) is float and math.isfinite(value))  # nan and inf compute nothing


LIMIT = 1 << 20  # sizes beyond this are typing mistakes, not models (and would exhaust memory)
# Layers a model may stack: the deepest real one has 22 (F5TTS_v1_Base's DiT). Each layer is a dozen Python
# modules whatever its width, so 2**20 layers of width 1 would pass the parameter bound below and still take
# gigabytes of Python objects and minutes to build.
MAX_LAYERS = 1024
POSITIVE = Kind("a whole number from 1", lambda v: _is_int(v) and 0 < v <= LIMIT)
COUNT = Kind("a whole number from 0", lambda v: _is_int(v) and 0 <= v <= LIMIT)
LAYERS = Kind(f"a whole number from 1 to {MAX_LAYERS}", lambda v: _is_int(v) and 0 < v <= MAX_LAYERS)
LAYER_COUNT = Kind(f"a whole number from 0 to {MAX_LAYERS}", lambda v: _is_int(v) and 0 <= v <= MAX_LAYERS)
NUMBER = Kind("a number", _is_number)
POSITIVE_NUMBER = Kind("a number above 0", lambda v: _is_number(v) and v > 0)
NON_NEGATIVE = Kind("a number from 0", lambda v: _is_number(v) and v >= 0)
FRACTION = Kind("a number from 0 to 1", lambda v: _is_number(v) and 0 <= v <= 1)
FLAG = Kind("true or false", lambda v: type(v) is bool)
TEXT = Kind("a string", lambda v: type(v) is str)
POSITIVE_LIST = Kind("a list of whole numbers from 1", lambda v: type(v) is list and all(POSITIVE.accepts(x) for x in v))


def _int_or_float(text: str) -> object:
    try:
        return int(text)
    except ValueError:
        return float(text)


def argument(kind: Kind) -> Callable[[str], object]:
    """An argparse type for a command-line option that overrides a setting of this kind: the same values
    are accepted on the command line as in the settings file, and a wrong one is argparse's one line."""
    from envcheck.arguments import checked

    return checked(kind.name, _int_or_float, kind.accepts)


def one_of(*choices: object) -> Kind:
    return Kind(" or ".join(repr(c) for c in choices),
                lambda v: any(type(v) is type(c) and v == c for c in choices))


def optional(kind: Kind) -> Kind:
    return Kind(f"{kind.name}, or null", lambda v: v is None or kind.accepts(v))


def unknown_keys(values: dict, fields: dict[str, Kind]) -> list[str]:
    return sorted(str(k) for k in values if k not in fields)


def check(values: object, fields: dict[str, Kind], where: str, *, required: tuple[str, ...] = (), fix: str = "",
          allow_unknown: bool = False) -> dict:
    """`values` if it is a mapping of known names to values of their kinds; else TtsrigError naming the first
    problem, the allowed names or kind, and `fix`."""
    from envcheck.errors import TtsrigError

    tail = f" {fix}" if fix else ""
    if not isinstance(values, dict):
        raise TtsrigError(f"{where} is {type(values).__name__}, not a mapping of settings.{tail}")
    unknown = unknown_keys(values, fields)
    if unknown and not allow_unknown:
        raise TtsrigError(f"{where}: unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                          f"allowed: {', '.join(fields)}.{tail}")
    missing = [k for k in required if k not in values]
    if missing:
        raise TtsrigError(f"{where}: missing {', '.join(missing)}.{tail}")
    for key, value in values.items():
        kind = fields.get(key)
        if kind is not None and not kind.accepts(value):
            shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
            raise TtsrigError(f"{where}: {key} = {shown} should be {kind.name}.{tail}")
    return values


# -- the size of the model settings describe ----------------------------------------------------------

# Each size is bounded on its own (LIMIT), but a product of them is not: dim 4096 with depth 1000 passes every
# single check and asks for 240 G parameters. What a settings file or a checkpoint's metadata describes is
# estimated (its big matrices, so a real model is never over-counted) and refused before anything is allocated
# when it passes this: about 3x F5TTS_v1_Base (337 M), 5x StyleTTS2 LibriTTS (about 190 M with its pieces), and
# 4 GB of float32 weights, which a 16 GB machine still builds.
MAX_PARAMETERS = 1_000_000_000


def check_parameters(parameters: int, where: str, fix: str) -> None:
    """One TtsrigError when a model of `parameters` (an estimate) is over MAX_PARAMETERS."""
    from envcheck.errors import TtsrigError

    if parameters > MAX_PARAMETERS:
        raise TtsrigError(f"{where} describes a model of {_about(parameters)} parameters, more than the "
                          f"{MAX_PARAMETERS // 1_000_000:,} M ttsrig builds (F5TTS_v1_Base has 337 M, StyleTTS2 LibriTTS "
                          f"about 190 M): a size in it is a mistake. {fix}")


def _about(count: int) -> str:
    # a YAML integer has no bound: a float of it could overflow, and its digits could fill the terminal
    return f"about {count // 1_000_000:,} M" if count < 10 ** 18 else "more than 10^18"


def _size(section: object, key: str, default: int = 0) -> int:
    """A whole-number size of a section, or `default` when it is missing or not one (the check of its kind,
    or the model's constructor, says so; the estimate only needs the sizes that are given)."""
    value = section.get(key, default) if isinstance(section, dict) else default
    return value if _is_int(value) and value > 0 else default


def _section(values: object, key: str) -> dict:
    value = values.get(key) if isinstance(values, dict) else None
    return value if isinstance(value, dict) else {}


def _sizes(section: object, key: str) -> list:
    """A list of sizes (a list of lists stays one), [] when missing or not a list."""
    value = section.get(key) if isinstance(section, dict) else None
    return value if isinstance(value, list) else []


def _layers(where: str, fix: str, **counts: int) -> None:
    from envcheck.errors import TtsrigError

    for name, count in counts.items():
        if count > MAX_LAYERS:
            raise TtsrigError(f"{where}: {name} = {count} layers, more than the {MAX_LAYERS} ttsrig builds (real "
                              f"models have up to 22): it is a mistake. {fix}")


# StyleTTS2's discriminators whose sizes its code fixes (MultiPeriodDiscriminator, MultiResSpecDiscriminator)
STYLETTS2_FIXED = 41_386_672
STYLETTS2_DECODER = 1024  # the HiFi-GAN / iSTFTNet decoder's own width, fixed by the package's code
PLBERT_HIDDEN = 768  # PL-BERT's hidden size (its config's), which the diffusion transformer's width adds to


def styletts2_parameters(params: dict, bert_hidden: int = PLBERT_HIDDEN) -> int:
    """About how many parameters StyleTTS2's modules of these model_params have (PL-BERT, the ASR and JDC
    aside: their own configs size them), from the package's constructors (styletts2.models.build_model)."""
    h, s, n = _size(params, "hidden_dim"), _size(params, "style_dim"), _size(params, "n_layer")

    def adain(dim_in: int, dim_out: int) -> int:  # AdainResBlk1d: two k3 convs, two AdaIN fcs, a 1x1 shortcut
        shortcut = dim_in * dim_out if dim_in != dim_out else 0
        return 3 * dim_in * dim_out + 3 * dim_out ** 2 + 2 * s * (dim_in + dim_out) + shortcut

    lstm = 3 * h * (h + s) + 3 * h * h // 2  # a bidirectional LSTM of H + S inputs, H / 2 per direction
    text_encoder = _size(params, "n_token") * h + n * 5 * h * h + 3 * h * h
    predictor = n * (lstm + 2 * s * h) + 2 * lstm + h * _size(params, "max_dur") \
        + 2 * (adain(h, h) + adain(h, h // 2) + adain(h // 2, h // 2))
    style_encoder, dim = 9 * _size(params, "dim_in"), _size(params, "dim_in")
    for _ in range(4):  # StyleEncoder: four down-sampling ResBlks, the width doubling up to hidden_dim
        wider = min(2 * dim, h)
        style_encoder += 9 * dim * dim + 9 * dim * wider + dim * wider * (dim != wider)
        dim = wider
    style_encoder += 25 * dim * dim + dim * s
    wide = STYLETTS2_DECODER
    decoder = adain(h + 2, wide) + 3 * adain(wide + 66, wide) + adain(wide + 66, wide // 2) + generator(params, s)
    transformer = _section(_section(params, "diffusion"), "transformer")
    features, inner = 2 * s + bert_hidden, _size(transformer, "num_heads") * _size(transformer, "head_features")
    diffusion = _size(transformer, "num_layers") * (4 * features * inner + 8 * s * features
                                                    + 2 * _size(transformer, "multiplier") * features ** 2) \
        + 2 * features ** 2
    slm = _section(params, "slm")
    channels = _size(slm, "initial_channel")
    wavlm_head = _size(slm, "hidden") * _size(slm, "nlayers") * channels + 5 * 26 * channels ** 2
    return (text_encoder + predictor + 2 * style_encoder + decoder + diffusion + wavlm_head + bert_hidden * h
            + STYLETTS2_FIXED)


def generator(params: dict, style: int) -> int:
    """The HiFi-GAN generator of StyleTTS2's decoder (styletts2.Modules.hifigan.Generator; iSTFTNet's is smaller)."""
    decoder = _section(params, "decoder")
    rates, kernels = _sizes(decoder, "upsample_rates"), _sizes(decoder, "upsample_kernel_sizes")
    resblocks = [k for k, _ in zip(_sizes(decoder, "resblock_kernel_sizes"), _sizes(decoder, "resblock_dilation_sizes"))
                 if _is_int(k) and k > 0]
    channels, total = _size(decoder, "upsample_initial_channel"), 0
    if not all(_is_int(x) and x > 0 for x in rates + kernels):
        return 0  # the model's constructor refuses them
    levels = min(len(rates), len(kernels))
    after = [1] * levels  # the up-sampling still to come after each level: its noise source's stride
    for i in range(levels - 2, -1, -1):
        after[i] = after[i + 1] * rates[i + 1]
    for i in range(levels):
        wider, channels = channels, channels // 2
        total += wider * channels * kernels[i]  # the transposed convolution up
        total += channels * 2 * after[i] if i + 1 < len(rates) else channels  # the noise source's convolution
        total += sum(6 * channels * channels * k + 12 * style * channels for k in resblocks) \
            + 6 * channels * channels * 7 + 12 * style * channels  # and the noise branch's block
    return total


def check_styletts2_size(params: object, where: str, fix: str, bert_hidden: int = PLBERT_HIDDEN) -> None:
    """StyleTTS2's model_params (and `bert_hidden`, its PL-BERT's width) describe a model ttsrig builds: at most
    MAX_LAYERS layers of each kind and MAX_PARAMETERS parameters, else one TtsrigError naming `where`."""
    if not isinstance(params, dict):
        return  # the caller's check names what a model_params section is
    decoder, transformer = _section(params, "decoder"), _section(_section(params, "diffusion"), "transformer")
    _layers(where, fix, n_layer=_size(params, "n_layer"),
            **{"decoder.upsample_rates": len(_sizes(decoder, "upsample_rates")),
               "decoder.resblock_kernel_sizes": len(_sizes(decoder, "resblock_kernel_sizes")),
               "diffusion.transformer.num_layers": _size(transformer, "num_layers"),
               "slm.nlayers": _size(_section(params, "slm"), "nlayers")})
    check_parameters(styletts2_parameters(params, bert_hidden), where, fix)


def asr_parameters(params: dict) -> int:
    """StyleTTS2's text aligner (styletts2.Utils.ASR.models.ASRCNN) of these model_params."""
    h, tokens, embedding = _size(params, "hidden_dim", 256), _size(params, "n_token", 35), \
        _size(params, "token_embedding_dim", 256)
    return (_size(params, "input_dim", 80) // 2 * h * 7 + 18 * h * h * _size(params, "n_layers", 6) + h * h
            + h * h // 2 + h * tokens + tokens * embedding + h // 2 * tokens + 2 * h * (h + embedding))


def plbert_parameters(params: dict) -> int:
    """PL-BERT (transformers' AlbertModel) of these model_params: its layers are shared, so one group of
    inner_group_num layers per hidden group is allocated, whatever num_hidden_layers says."""
    hidden, embedding = _size(params, "hidden_size", 4096), _size(params, "embedding_size", 128)
    layer = 4 * hidden * hidden + 2 * hidden * _size(params, "intermediate_size", 16384)
    positions = _size(params, "vocab_size", 30000) + _size(params, "max_position_embeddings", 512) \
        + _size(params, "type_vocab_size", 2)
    return (positions * embedding + embedding * hidden + hidden * hidden
            + _size(params, "num_hidden_groups", 1) * _size(params, "inner_group_num", 1) * layer)


def check_piece_size(params: object, piece: str, where: str, fix: str) -> None:
    """A StyleTTS2 piece's model_params (`piece`: "ASR" or "PL-BERT") within MAX_LAYERS and MAX_PARAMETERS."""
    if not isinstance(params, dict):
        return
    if piece == "ASR":
        _layers(where, fix, n_layers=_size(params, "n_layers"))
        check_parameters(asr_parameters(params), where, fix)
    else:
        _layers(where, fix, num_hidden_groups=_size(params, "num_hidden_groups"),
                inner_group_num=_size(params, "inner_group_num"))
        check_parameters(plbert_parameters(params), where, fix)


# -- YAML settings files -----------------------------------------------------------------------------

def load_yaml(text: str, where: str, fix: str) -> object:
    """A YAML settings file's values, or one TtsrigError naming `where`, the problem and `fix`.

    Plain values only (yaml's safe loader: no tags that build objects), and no aliases (`*name`): an alias
    repeats a node by reference, so a file of a kilobyte can name billions of values ("billion laughs"),
    which would exhaust memory as soon as anything walks or copies them. No settings file of the field
    needs them. Nesting is bounded too (yaml's composer recurses)."""
    import yaml

    from envcheck.errors import TtsrigError

    class NoAliases(yaml.SafeLoader):
        def compose_node(self, parent, index):  # noqa: ANN001, ANN202 (yaml's own signature)
            if self.check_event(yaml.AliasEvent):
                mark = self.peek_event().start_mark
                raise TtsrigError(f"{where}:{mark.line + 1}: YAML aliases (*name) are not accepted in settings "
                                  f"files (they can make a small file expand without bound). Write the values "
                                  f"out. {fix}")
            if self._depth >= MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise TtsrigError(f"{where}:{mark.line + 1} is nested more than {MAX_YAML_DEPTH} levels deep: it is "
                                  f"not a settings file. {fix}")
            self._depth += 1
            try:
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

    loader = NoAliases(text)
    loader._depth = 0
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise TtsrigError(f"{where} is not valid YAML ({str(exc).splitlines()[0]}): {fix}") from None
    finally:
        loader.dispose()


MAX_YAML_DEPTH = 32  # StyleTTS2's configs nest 4 levels, a Vocos config 3


def read_yaml(path, what: str, fix: str) -> object:  # noqa: ANN001 (a str or Path)
    """A YAML settings file named by the user or by another settings file: a regular file of bounded size
    (envcheck.reading), UTF-8, parsed by load_yaml."""
    from pathlib import Path

    from envcheck import reading

    text = reading.read_text(Path(path), what, fix)
    return load_yaml(text, f"{what} {path}", fix)
