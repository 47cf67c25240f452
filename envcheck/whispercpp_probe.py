"""whisper.cpp end to end without a download: a random Whisper in whisper.cpp's ggml file format.

whisper.cpp is the only ASR backend of `audition screen` and `trainers.prepare` that runs on a pre-v2 CPU
(CTranslate2 dies there, requirements/README.md), and the user builds it; no ggml model can be downloaded where
ttsrig is tested. `ggml_model()` writes one with random weights in the layout whisper.cpp's own
models/convert-pt-to-ggml.py writes (the legacy "ggml" header, mel filters, the vocabulary, then each tensor
under openai-whisper's name), so the real `whisper-cli` loads it, encodes and decodes: the evidence that a
build runs on a CPU (`envcheck evidence --checks whisper.cpp --whisper-cli PATH`) and the source of the
captured output samples of tests/models/data/asr/. Random weights hear nonsense; only whether it runs, the
output's form and the time are measured. Two decoders can be written instead of a random one: one that answers a
single word (fast under qemu, and a wrong sum shows) and one that says a given script of tokens (as many decoder
steps as a trained model spends on a known transcript: tests/bench/bench_screen.py --whisper-cli).
"""
from __future__ import annotations

import contextlib
import json
import shlex
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from envcheck.asr_probe import ENCODER_POSITIONS, DECODER_POSITIONS, MELS, TEXT_TOKENS, Shape, noise_wav
from envcheck.atomic import write_atomic
from envcheck.asr_backends import GGML_MAGIC, WhisperCpp  # the backend's own command line, not a copy of it

ENGLISH_VOCABULARY = 51864  # n_vocab of the .en models: whisper.cpp derives every special token id from it
FFT_BINS = 201  # whisper.cpp's WHISPER_N_FFT / 2 + 1 (400-sample window)
SAMPLE_RATE = 16_000
F32, F16 = 0, 1  # the tensor type codes of the file
# whisper.cpp sizes its MLP as 4 x n_state (no separate width in the header), so the shapes here keep ffn = 4 d.
TINY = Shape("ttsrig-tiny-ggml-random", d_model=64, heads=2, ffn=256, encoder_layers=1, decoder_layers=1,
             full_vocabulary=True)
TINY_EN = Shape("ttsrig-tiny.en-shaped-ggml-random", d_model=384, heads=6, ffn=1536, encoder_layers=4,
                decoder_layers=4, full_vocabulary=True)


def mel_filters(n_mels: int = MELS, bins: int = FFT_BINS, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Triangular filters on the HTK mel scale ([n_mels, bins]); Whisper's own are Slaney-style, which only
    changes what a trained model hears, not what whisper.cpp computes."""
    def mel(hz):
        return 2595.0 * np.log10(1.0 + hz / 700.0)

    edges_mel = np.linspace(mel(0.0), mel(rate / 2), n_mels + 2)
    edges = 700.0 * (10 ** (edges_mel / 2595.0) - 1.0)
    freqs = np.linspace(0.0, rate / 2, bins)
    lower = (freqs[None, :] - edges[:-2, None]) / (edges[1:-1, None] - edges[:-2, None])
    upper = (edges[2:, None] - freqs[None, :]) / (edges[2:, None] - edges[1:-1, None])
    return np.maximum(0.0, np.minimum(lower, upper)).astype("<f4")


SPACE_ID = 220  # GPT-2's " ": whisper.cpp looks it up by text to suppress a blank first token


def text_tokens() -> list[bytes]:
    """Stand-ins for GPT-2's 50256 byte strings (not shipped here): each a word of its own, so the transcript
    is words, and the lone space at its GPT-2 id. whisper.cpp names the special tokens after them itself."""
    return [b" " if i == SPACE_ID else b" w%d" % i for i in range(TEXT_TOKENS)]


def tensor_shapes(shape: Shape, vocab: int = ENGLISH_VOCABULARY) -> Iterator[tuple[str, tuple[int, ...]]]:
    """Every tensor whisper.cpp loads (src/whisper-arch.h), in openai-whisper's [out, in] order; the conv
    biases as [d, 1], as the converter reshapes them."""
    d = shape.d_model
    yield "encoder.positional_embedding", (ENCODER_POSITIONS, d)
    yield "encoder.conv1.weight", (d, MELS, 3)
    yield "encoder.conv1.bias", (d, 1)
    yield "encoder.conv2.weight", (d, d, 3)
    yield "encoder.conv2.bias", (d, 1)
    for i in range(shape.encoder_layers):
        yield from _block(f"encoder.blocks.{i}", d, cross=False)
    yield "encoder.ln_post.weight", (d,)
    yield "encoder.ln_post.bias", (d,)
    yield "decoder.positional_embedding", (DECODER_POSITIONS, d)
    yield "decoder.token_embedding.weight", (vocab, d)
    for i in range(shape.decoder_layers):
        yield from _block(f"decoder.blocks.{i}", d, cross=True)
    yield "decoder.ln.weight", (d,)
    yield "decoder.ln.bias", (d,)


def _block(prefix: str, d: int, cross: bool) -> Iterator[tuple[str, tuple[int, ...]]]:
    for attn in ("attn", "cross_attn") if cross else ("attn",):
        yield f"{prefix}.{attn}_ln.weight", (d,)
        yield f"{prefix}.{attn}_ln.bias", (d,)
        for part in ("query", "key", "value", "out"):
            yield f"{prefix}.{attn}.{part}.weight", (d, d)
            if part != "key":  # Whisper's key projection has no bias
                yield f"{prefix}.{attn}.{part}.bias", (d,)
    yield f"{prefix}.mlp_ln.weight", (d,)
    yield f"{prefix}.mlp_ln.bias", (d,)
    yield f"{prefix}.mlp.0.weight", (4 * d, d)
    yield f"{prefix}.mlp.0.bias", (4 * d,)
    yield f"{prefix}.mlp.2.weight", (d, 4 * d)
    yield f"{prefix}.mlp.2.bias", (d,)


def _stored_as_f32(name: str, dims: tuple[int, ...]) -> bool:
    """The converter's rule for an f16 model: vectors, conv biases and positional embeddings stay float32."""
    return len(dims) < 2 or name.endswith(("conv1.bias", "conv2.bias", "positional_embedding"))


def ggml_bytes(shape: Shape = TINY, seed: int = 0, answer: int | None = None,
               script: list[int] | None = None) -> bytes:
    """A whole ggml model file, float16 as whisper.cpp's published models are, weights drawn from N(0, 0.05)
    (layer-norm weights around 1).

    With `answer` (a text token id) the decoder says that one word and stops, whatever it hears: its final
    layer norm emits a constant vector whose best token is <|endoftext|> and next best `answer`
    (<|endoftext|> is barred as a first token). Every kernel still runs, but a run costs one window and two
    tokens instead of whisper.cpp's 224-token decodes at six temperatures that random weights provoke: what
    makes a run under qemu take seconds rather than minutes.

    With `script` (text token ids) the decoder says exactly those tokens, in order, then stops: what a trained
    model decodes for a known transcript, so a benchmark times as many decoder steps as a real model would
    (see _scripted)."""
    rng = np.random.default_rng(seed)
    forced = (_answering(shape.d_model, answer) if answer is not None
              else _scripted(shape.d_model, script) if script is not None else {})

    def weight(name: str, dims: tuple[int, ...]) -> np.ndarray:
        data = rng.standard_normal(dims).astype("<f4") * np.float32(0.05)
        if name.endswith("ln.weight") or name.endswith("ln_post.weight"):
            data += np.float32(1.0)
        replace = forced.get(name) or forced.get(_any_block(name))
        return replace(data) if replace else data

    return ggml_file_bytes(shape, mel_filters(), text_tokens(), weight)


def ggml_file_bytes(shape: Shape, filters: np.ndarray, tokens: list[bytes],
                    weight: Callable[[str, tuple[int, ...]], np.ndarray]) -> bytes:
    """The float16 ggml file whisper.cpp loads, in the layout of its models/convert-pt-to-ggml.py: the header,
    the mel filters ([n_mels, bins]), the text tokens' bytes, then every tensor of tensor_shapes(shape) as
    `weight(name, dims)` gives it (float32, openai-whisper's [out, in] order), stored as float16 where the
    converter stores it so."""
    d = shape.d_model
    parts = [struct.pack("<12i", GGML_MAGIC, ENGLISH_VOCABULARY, ENCODER_POSITIONS, d, shape.heads,
                         shape.encoder_layers, DECODER_POSITIONS, d, shape.heads, shape.decoder_layers, MELS, F16)]
    filters = np.ascontiguousarray(filters, dtype="<f4")
    parts += [struct.pack("<2i", *filters.shape), filters.tobytes()]
    parts.append(struct.pack("<i", len(tokens)))
    parts += [struct.pack("<i", len(t)) + t for t in tokens]
    for name, dims in tensor_shapes(shape):
        data = np.asarray(weight(name, dims), dtype="<f4")
        if data.shape != dims:
            raise ValueError(f"{name}: shape {data.shape}, whisper.cpp loads {dims}")
        f32 = _stored_as_f32(name, dims)
        if not f32:
            data = data.astype("<f2")
        encoded = name.encode()
        parts.append(struct.pack(f"<3i{len(dims)}i", len(dims), len(encoded), F32 if f32 else F16, *reversed(dims)))
        parts += [encoded, np.ascontiguousarray(data).tobytes()]
    return b"".join(parts)


EOT = TEXT_TOKENS  # <|endoftext|> of the English-only vocabulary


def _answering(d: int, answer: int) -> dict:
    """Replacements for the decoder's final norm and two embedding rows (see ggml_bytes)."""
    constant = np.ones(d, dtype="<f4")

    def rows(embedding: np.ndarray) -> np.ndarray:
        embedding = embedding.copy()
        embedding[EOT] = constant * np.float32(20.0 / d)  # logit 20 against random ones of about +-0.4
        embedding[answer] = constant * np.float32(10.0 / d)
        return embedding

    return {"decoder.ln.weight": np.zeros_like, "decoder.ln.bias": lambda _: constant,
            "decoder.token_embedding.weight": rows}


# The prompt of an English-only model run with -nt (as envcheck/asr_backends.py runs whisper-cli): <|startoftranscript|>
# <|notimestamps|> (whisper.cpp's whisper_full_with_state); the first token said is predicted at its last position.
PROMPT = 2


def _any_block(name: str) -> str:
    """'decoder.blocks.3.mlp.2.bias' -> 'decoder.blocks.*.mlp.2.bias': one replacement for every block."""
    parts = name.split(".")
    return ".".join(parts[:2] + ["*"] + parts[3:]) if parts[1:2] == ["blocks"] else name


def _scripted(d: int, script: list[int]) -> dict:
    """A decoder whose blocks add nothing to the residual stream (their output projections are zero; their
    attention and MLP still run), so the final norm sees token embedding + position embedding. Each position's
    embedding is a large multiple of the embedding of the token to say next, and <|endoftext|>'s after the
    script: a peaked choice (log-probability about 0) that no temperature fallback questions."""
    directions = np.random.default_rng(12345).standard_normal((len(script) + 1, d)).astype("<f4") * np.float32(0.05)
    said = {token: directions[i] for i, token in enumerate(script)}
    said[EOT] = directions[-1]
    if len(said) != len(script) + 1:
        raise ValueError("a script names each token once (and never <|endoftext|>)")

    def rows(embedding: np.ndarray) -> np.ndarray:
        embedding = embedding.copy()
        for token, row in said.items():
            embedding[token] = row
        return embedding

    def positions(embedding: np.ndarray) -> np.ndarray:
        embedding = embedding.copy()
        for position in range(len(embedding)):
            step = position - (PROMPT - 1)
            embedding[position] = np.float32(8.0) * (directions[step] if 0 <= step < len(script) else said[EOT])
        return embedding

    zero = np.zeros_like
    return {"decoder.token_embedding.weight": rows, "decoder.positional_embedding": positions,
            "decoder.ln.weight": lambda data: np.full_like(data, 2.0), "decoder.ln.bias": zero,
            **{f"decoder.blocks.*.{part}": zero for part in ("attn.out.weight", "attn.out.bias",
                                                            "cross_attn.out.weight", "cross_attn.out.bias",
                                                            "mlp.2.weight", "mlp.2.bias")}}


def ggml_model(path: Path, shape: Shape = TINY, seed: int = 0, answer: int | None = None,
               script: list[int] | None = None) -> Path:
    write_atomic(path, ggml_bytes(shape, seed, answer, script))
    return path


ANSWER = 1234  # the probes' model says " w1234"


def emulated(binary: str, cpu: str, folder: Path) -> str:
    """A script that runs `binary` under `qemu-x86_64 -cpu CPU`: handed to ttsrig's backend in the binary's place,
    so the backend runs its own command line unchanged while the build meets the old CPU's instruction set."""
    from envcheck.isolated import EMULATION_UNSET, qemu_command

    wrapper = folder / "whisper-cli"
    command = " ".join(shlex.quote(part) for part in [*qemu_command(cpu), str(Path(binary).resolve())])
    wrapper.write_text(f'#!/bin/sh\nunset {" ".join(EMULATION_UNSET)}\nexec {command} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


@contextlib.contextmanager
def _prepared(binary: str, emulate: str | None, seconds: float) -> Iterator[tuple[str, Path, Path]]:
    """In a temporary folder: what to run (the binary, or its qemu wrapper), the one-word model and a noise WAV."""
    with tempfile.TemporaryDirectory(prefix="ttsrig-whispercpp-probe-") as tmp:
        folder = Path(tmp)
        runs = emulated(binary, emulate, folder) if emulate else binary
        yield runs, ggml_model(folder / "ggml-tiny-random.bin", answer=ANSWER), noise_wav(folder / "noise.wav", seconds)


def transcribe(binary: str, emulate: str | None = None, seconds: float = 1.0) -> str:
    """One line: whisper-cli run as ttsrig runs it (envcheck/asr_backends.py's WhisperCpp) on noise with the
    one-word model, under `-cpu EMULATE` when given: what it heard, the only word the model can say, and how
    long it took. A build that heard anything else computed wrong sums: that raises."""
    import soundfile as sf

    with _prepared(binary, emulate, seconds) as (runs, model, wav):
        wave, _ = sf.read(str(wav), dtype="float32")
        started = time.monotonic()
        text = WhisperCpp(runs, model, language="en", beam_size=1)(wave, SAMPLE_RATE)
        took = time.monotonic() - started
    expected = text_tokens()[ANSWER].decode().strip()
    if text != expected:  # the model can say nothing else: a build that computes wrong sums says otherwise
        raise RuntimeError(f"whisper-cli heard {text[:80]!r}, where the probe's model can only say {expected!r}")
    return json.dumps({"audio_s": seconds, "heard": text, "expected": expected,
                       "whisper_cli_s": round(took, 1)})


def system_info(binary: str, emulate: str | None = None) -> str:
    """The CPU features the build uses, as whisper-cli reports them in its 'system_info' line."""
    with _prepared(binary, emulate, 0.5) as (runs, model, wav):
        run = subprocess.run([runs, "-m", str(model), "-f", str(wav), "-bs", "1", "-l", "en", "-nt"],
                             capture_output=True, text=True, errors="replace")
    if run.returncode != 0:
        raise RuntimeError(f"{binary} exit {run.returncode}: {(run.stderr or run.stdout).strip()[-300:]}")
    line = next((l for l in (run.stderr + run.stdout).splitlines() if "system_info" in l), "no system_info line")
    return line.split("system_info:", 1)[-1].strip()
