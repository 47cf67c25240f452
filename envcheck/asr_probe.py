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
from pathlib import Path
from types import SimpleNamespace

D_MODEL, HEADS, FFN, MELS = 64, 2, 128, 80
ENCODER_POSITIONS, DECODER_POSITIONS = 1500, 448  # Whisper's 30 s window (3000 mel frames, halved by conv2)
SPECIAL = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|translate|>", "<|transcribe|>",
           "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]
WORDS = ["a", "b", "c", "d", "the", "bath", "path", "day"]
MAX_TOKENS = 8
TIMESTAMPS = 16  # <|0.00|> ... : faster-whisper needs the first; a few more keep the vocabulary realistic


def _array(rng, *shape):
    return (rng.standard_normal(shape) * 0.05).astype("float32")


def _linear(rng, out_dim: int, in_dim: int, bias: bool = True) -> SimpleNamespace:
    return SimpleNamespace(weight=_array(rng, out_dim, in_dim), bias=_array(rng, out_dim) if bias else None)


def _norm(rng) -> SimpleNamespace:
    return SimpleNamespace(weight=1 + _array(rng, D_MODEL), bias=_array(rng, D_MODEL))


def _attention(rng) -> SimpleNamespace:
    return SimpleNamespace(q_proj=_linear(rng, D_MODEL, D_MODEL), k_proj=_linear(rng, D_MODEL, D_MODEL, bias=False),
                           v_proj=_linear(rng, D_MODEL, D_MODEL), out_proj=_linear(rng, D_MODEL, D_MODEL))


def _layer(rng, cross: bool) -> SimpleNamespace:
    layer = SimpleNamespace(self_attn=_attention(rng), self_attn_layer_norm=_norm(rng), fc1=_linear(rng, FFN, D_MODEL),
                            fc2=_linear(rng, D_MODEL, FFN), final_layer_norm=_norm(rng))
    if cross:
        layer.encoder_attn, layer.encoder_attn_layer_norm = _attention(rng), _norm(rng)
    return layer


def vocabulary() -> list[str]:
    return WORDS + SPECIAL + [f"<|{i * 0.02:.2f}|>" for i in range(TIMESTAMPS)]


def fake_model(rng, vocab_size: int) -> SimpleNamespace:
    """What CTranslate2's WhisperLoader reads of a transformers WhisperForConditionalGeneration."""
    config = SimpleNamespace(encoder_layers=1, encoder_attention_heads=HEADS, decoder_layers=1,
                             decoder_attention_heads=HEADS, d_model=D_MODEL, vocab_size=vocab_size,
                             suppress_tokens=[], begin_suppress_tokens=[vocab_size - TIMESTAMPS - len(SPECIAL)])
    encoder = SimpleNamespace(conv1=SimpleNamespace(weight=_array(rng, D_MODEL, MELS, 3), bias=_array(rng, D_MODEL)),
                              conv2=SimpleNamespace(weight=_array(rng, D_MODEL, D_MODEL, 3), bias=_array(rng, D_MODEL)),
                              embed_positions=SimpleNamespace(weight=_array(rng, ENCODER_POSITIONS, D_MODEL)),
                              layer_norm=_norm(rng), layers=[_layer(rng, cross=False)])
    embed = _array(rng, vocab_size, D_MODEL)
    decoder = SimpleNamespace(embed_tokens=SimpleNamespace(weight=embed),
                              embed_positions=SimpleNamespace(weight=_array(rng, DECODER_POSITIONS, D_MODEL)),
                              layer_norm=_norm(rng), layers=[_layer(rng, cross=True)])
    return SimpleNamespace(config=config, name_or_path="ttsrig-tiny-random", generation_config=None,
                           model=SimpleNamespace(encoder=encoder, decoder=decoder),
                           proj_out=SimpleNamespace(weight=embed, bias=None))


def tokenizer_json(tokens: list[str]) -> str:
    """A word-level tokenizers file with the special tokens faster-whisper looks up by name."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    tokenizer = Tokenizer(models.WordLevel({t: i for i, t in enumerate(tokens)}, unk_token="a"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return tokenizer.to_str()


def tiny_whisper(folder: Path) -> Path:
    """A random 1-layer Whisper in CTranslate2's format, with its tokenizer.json, in folder."""
    import numpy as np
    import ctranslate2.converters.transformers as ct2_transformers

    ct2_transformers.transformers = SimpleNamespace(Conv1D=type("Conv1D", (), {}))  # the loader's one isinstance
    tokens = vocabulary()
    model = fake_model(np.random.default_rng(0), len(tokens))
    loader = ct2_transformers.WhisperLoader()
    spec = loader.get_model_spec(model)
    tokenizer = SimpleNamespace(additional_special_tokens=[], additional_special_tokens_ids=[])  # no language ids
    loader.set_config(spec.config, model, tokenizer)
    spec.register_vocabulary(tokens)
    spec.validate()
    spec.optimize(quantization=None)
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
