"""faster-whisper end to end without a download: the evidence that its wheels run on a CPU tier.

`envcheck evidence --checks asr` imports this module in the interpreter of a venv that holds faster-whisper
(not one of ttsrig's locks: faster-whisper is the user's choice), often under `qemu-x86_64 -cpu MODEL`.
It builds a tiny Whisper model with random weights in CTranslate2's format (through CTranslate2's own
Whisper converter, fed numpy arrays instead of a transformers model) and a tokenizer.json, then runs
faster-whisper's whole path on one second of noise: PyAV decodes a WAV, the Silero VAD runs in onnxruntime,
CTranslate2 encodes and decodes, tokenizers decodes the tokens. Random weights hear nothing sensible; what
is measured is whether each compiled library runs (or which one dies with which signal).
"""
from __future__ import annotations

import json
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace


@dataclass(frozen=True)
class Shape:
    """A Whisper architecture's sizes (what CTranslate2's converter reads of a transformers config)."""

    name: str  # the model's name_or_path: a ttsrig name, never a real model's (no alignment heads are looked up)
    d_model: int
    heads: int
    ffn: int
    encoder_layers: int
    decoder_layers: int
    full_vocabulary: bool  # English-only Whisper's 51864 ids (english_vocabulary) rather than the probe's 33


# The probe's model: small enough to run under emulation (envcheck evidence --checks asr).
TINY = Shape("ttsrig-tiny-random", d_model=64, heads=2, ffn=128, encoder_layers=1, decoder_layers=1,
             full_vocabulary=False)
# tiny.en's architecture and size, for timing only (tests/bench/bench_screen.py); its weights stay random. Sizes
# from whisper.cpp's and openai-whisper's tiny.en dimensions (n_audio_state/n_text_state 384, 6 heads, 4 + 4
# layers, n_vocab 51864, n_audio_ctx 1500, n_text_ctx 448, n_mels 80; e.g. Const-me/Whisper sModelParams.h,
# k2-fsa/sherpa-onnx scripts/whisper/model-info.md) and openai-whisper's MLP width, 4 x n_state = 1536.
TINY_EN = Shape("ttsrig-tiny.en-shaped-random", d_model=384, heads=6, ffn=1536, encoder_layers=4, decoder_layers=4,
                full_vocabulary=True)
D_MODEL, HEADS, FFN, MELS = TINY.d_model, TINY.heads, TINY.ffn, 80
ENCODER_POSITIONS, DECODER_POSITIONS = 1500, 448  # Whisper's 30 s window (3000 mel frames, halved by conv2)
SPECIAL = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|translate|>", "<|transcribe|>",
           "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]
WORDS = ["a", "b", "c", "d", "the", "bath", "path", "day"]
MAX_TOKENS = 8
TIMESTAMPS = 16  # <|0.00|> ... : faster-whisper needs the first; a few more keep the vocabulary realistic
# English-only Whisper's ids (whisper.cpp's whisper_vocab, after openai-whisper's tokenizer): 50256 GPT-2 text
# tokens, <|endoftext|> 50256, <|startoftranscript|> 50257, 99 language tokens, then the task and other specials
# from <|translate|> 50357 to <|notimestamps|> 50362, and 1501 timestamps <|0.00|> ... <|30.00|> from 50363.
TEXT_TOKENS, LANGUAGES, FULL_TIMESTAMPS = 50256, 99, 1501


def _array(rng, *shape):
    return (rng.standard_normal(shape) * 0.05).astype("float32")


def _linear(rng, out_dim: int, in_dim: int, bias: bool = True) -> SimpleNamespace:
    return SimpleNamespace(weight=_array(rng, out_dim, in_dim), bias=_array(rng, out_dim) if bias else None)


def _norm(rng, dim: int) -> SimpleNamespace:
    return SimpleNamespace(weight=1 + _array(rng, dim), bias=_array(rng, dim))


def _attention(rng, dim: int) -> SimpleNamespace:
    return SimpleNamespace(q_proj=_linear(rng, dim, dim), k_proj=_linear(rng, dim, dim, bias=False),
                           v_proj=_linear(rng, dim, dim), out_proj=_linear(rng, dim, dim))


def _layer(rng, shape: Shape, cross: bool) -> SimpleNamespace:
    dim = shape.d_model
    layer = SimpleNamespace(self_attn=_attention(rng, dim), self_attn_layer_norm=_norm(rng, dim),
                            fc1=_linear(rng, shape.ffn, dim), fc2=_linear(rng, dim, shape.ffn),
                            final_layer_norm=_norm(rng, dim))
    if cross:
        layer.encoder_attn, layer.encoder_attn_layer_norm = _attention(rng, dim), _norm(rng, dim)
    return layer


def vocabulary() -> list[str]:
    return WORDS + SPECIAL + [f"<|{i * 0.02:.2f}|>" for i in range(TIMESTAMPS)]


def english_vocabulary() -> list[str]:
    """English-only Whisper's 51864 tokens with every special token at its real id. The text tokens stand in
    for GPT-2's (not shipped here): one token each, never a real word; faster-whisper looks up only the
    specials, by name. Language tokens other than <|en|> are never used by an English-only model."""
    languages = ["<|en|>"] + [f"<|lang{i:02d}|>" for i in range(1, LANGUAGES)]
    specials = ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>",
                "<|notimestamps|>"]
    return ([f"t{i}" for i in range(TEXT_TOKENS)] + ["<|endoftext|>", "<|startoftranscript|>"] + languages
            + specials + [f"<|{i * 0.02:.2f}|>" for i in range(FULL_TIMESTAMPS)])


def vocabulary_of(shape: Shape) -> list[str]:
    return english_vocabulary() if shape.full_vocabulary else vocabulary()


def fake_model(rng, vocab_size: int, shape: Shape = TINY, eot: int | None = None) -> SimpleNamespace:
    """What CTranslate2's WhisperLoader reads of a transformers WhisperForConditionalGeneration (the arrays are
    drawn in the same order whatever the shape, so TINY's model is the same as before Shape existed)."""
    dim = shape.d_model
    eot = vocab_size - TIMESTAMPS - len(SPECIAL) if eot is None else eot  # the probe vocabulary's <|endoftext|>
    config = SimpleNamespace(encoder_layers=shape.encoder_layers, encoder_attention_heads=shape.heads,
                             decoder_layers=shape.decoder_layers, decoder_attention_heads=shape.heads,
                             d_model=dim, vocab_size=vocab_size, suppress_tokens=[], begin_suppress_tokens=[eot])
    encoder = SimpleNamespace(conv1=SimpleNamespace(weight=_array(rng, dim, MELS, 3), bias=_array(rng, dim)),
                              conv2=SimpleNamespace(weight=_array(rng, dim, dim, 3), bias=_array(rng, dim)),
                              embed_positions=SimpleNamespace(weight=_array(rng, ENCODER_POSITIONS, dim)),
                              layer_norm=_norm(rng, dim),
                              layers=[_layer(rng, shape, cross=False) for _ in range(shape.encoder_layers)])
    embed = _array(rng, vocab_size, dim)
    decoder = SimpleNamespace(embed_tokens=SimpleNamespace(weight=embed),
                              embed_positions=SimpleNamespace(weight=_array(rng, DECODER_POSITIONS, dim)),
                              layer_norm=_norm(rng, dim),
                              layers=[_layer(rng, shape, cross=True) for _ in range(shape.decoder_layers)])
    return SimpleNamespace(config=config, name_or_path=shape.name, generation_config=None,
                           model=SimpleNamespace(encoder=encoder, decoder=decoder),
                           proj_out=SimpleNamespace(weight=embed, bias=None))


def tokenizer_json(tokens: list[str]) -> str:
    """A word-level tokenizers file with the special tokens faster-whisper looks up by name."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    # unknown text reads as the first token ("a" in the probe's vocabulary, "t0" in english_vocabulary())
    tokenizer = Tokenizer(models.WordLevel({t: i for i, t in enumerate(tokens)}, unk_token=tokens[0]))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return tokenizer.to_str()


def tiny_whisper(folder: Path) -> Path:
    """A random 1-layer Whisper in CTranslate2's format, with its tokenizer.json, in folder."""
    return whisper_model(folder)


def whisper_model(folder: Path, shape: Shape = TINY, quantization: str | None = None) -> Path:
    """A random Whisper of `shape` in CTranslate2's format (weights saved as `quantization`, e.g. "float16"
    as faster-whisper's published conversions are; None: float32), with its tokenizer.json, in folder."""
    import numpy as np
    import ctranslate2.converters.transformers as ct2_transformers

    ct2_transformers.transformers = SimpleNamespace(Conv1D=type("Conv1D", (), {}))  # the loader's one isinstance
    tokens = vocabulary_of(shape)
    model = fake_model(np.random.default_rng(0), len(tokens), shape, eot=tokens.index("<|endoftext|>"))
    loader = ct2_transformers.WhisperLoader()
    spec = loader.get_model_spec(model)
    tokenizer = SimpleNamespace(additional_special_tokens=[], additional_special_tokens_ids=[])  # no language ids
    loader.set_config(spec.config, model, tokenizer)
    spec.register_vocabulary(tokens)
    spec.validate()
    spec.optimize(quantization=quantization)
    folder.mkdir(parents=True, exist_ok=True)
    spec.save(str(folder))
    (folder / "tokenizer.json").write_text(tokenizer_json(tokens), encoding="utf-8")
    return folder


def noise_wav(path: Path, seconds: float = 1.0, rate: int = 16_000) -> Path:
    import numpy as np

    samples = (np.random.default_rng(1).standard_normal(int(seconds * rate)) * 3000).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


def transcribe(compute_type: str = "float32") -> str:
    """One line: what faster-whisper heard in noise with the random model (the words do not matter)."""
    from faster_whisper import WhisperModel, decode_audio

    with tempfile.TemporaryDirectory(prefix="ttsrig-asr-probe-") as tmp:
        folder = tiny_whisper(Path(tmp) / "model")
        audio = decode_audio(str(noise_wav(Path(tmp) / "noise.wav")))  # PyAV
        model = WhisperModel(str(folder), device="cpu", compute_type=compute_type, cpu_threads=1)
        # One greedy pass of at most MAX_TOKENS words (every token but the words suppressed, the end token too,
        # so the decoder must run): random weights would otherwise make faster-whisper retry at five more
        # temperatures, up to 448 tokens each, for hours under emulation, while the kernels that run are the
        # same. The VAD is left out here (it finds no speech in noise, and then the model would not run): vad().
        not_words = list(range(len(WORDS), len(vocabulary())))
        segments, info = model.transcribe(audio, language="en", beam_size=1, temperature=0.0,
                                          max_new_tokens=MAX_TOKENS, suppress_tokens=not_words, vad_filter=False,
                                          without_timestamps=True, condition_on_previous_text=False)
        text = " ".join(s.text.strip() for s in segments)
    return json.dumps({"compute_type": compute_type, "samples": len(audio), "heard_words": len(text.split()),
                       "duration": round(info.duration, 2)})


def encode(compute_type: str = "float32") -> str:
    """CTranslate2 alone: load the tiny model and run its encoder over 30 s of random features."""
    import ctranslate2
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="ttsrig-asr-probe-") as tmp:
        model = ctranslate2.models.Whisper(str(tiny_whisper(Path(tmp) / "model")), device="cpu",
                                           compute_type=compute_type, intra_threads=1)
        features = np.random.default_rng(3).standard_normal((1, MELS, 2 * ENCODER_POSITIONS)).astype("float32")
        encoded = model.encode(ctranslate2.StorageView.from_array(features))
    return f"{compute_type}: encoder output {list(encoded.shape)}"


def vad() -> str:
    """faster-whisper's Silero VAD (onnxruntime) over one second of noise."""
    import numpy as np
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    audio = (np.random.default_rng(2).standard_normal(16_000) * 0.1).astype("float32")
    return f"{len(get_speech_timestamps(audio, VadOptions()))} speech spans"
