"""Benchmark: `audition screen` time per render against the render's own time (run on demand, not by bin/test).

    python tests/bench/bench_screen.py [--renders 5] [--out FILE]
    python tests/bench/bench_screen.py --random-tiny-en [--site DIR] [--gpt2-ranks FILE] [--renders 5] [--out FILE]
    python tests/bench/bench_screen.py --random-tiny-en --whisper-cli PATH [--gpt2-ranks FILE] [--beam N] ...

The marker passage (voices/markers.py) spoken by espeak-ng sentence by sentence and joined as audition
joins a render, screened by voices/screen.py: the ASR-free checks always; the word check when
$TTSRIG_BENCH_WHISPER_MODEL names a model (a ggml file with whisper-cli on PATH, or a faster-whisper model
folder with faster-whisper installed). The render time it is set against is the passage's audio length times
the real-time factors of results/voices.json (say-strong) and results/say-default.json, measured on the same
machine. Run with the test venv's python and PYTHONPATH set to the checkout.

--random-tiny-en times the word check without a download: a Whisper of tiny.en's architecture and size with
RANDOM weights (envcheck/asr_probe.py, TINY_EN, saved as float16 as faster-whisper's published conversions
are), run by faster-whisper on the CPU with 2 threads, and the ASR-free checks in the same run (results:
screen-tiny-en.json). Random weights hear nothing, so the decode length is fixed to what the passage's
transcript would need (decode_tokens: exact with --gpt2-ranks, else estimated) and its words are nonsense: the time is what is measured, never the WER.
--site names a site-packages folder holding faster-whisper (appended to sys.path, after this venv's own).
--whisper-cli times whisper.cpp instead (the backend of pre-v2 CPUs), through ttsrig's own backend and command line,
on a tiny.en-shaped ggml model whose decoder is scripted to say exactly the passage's token count
(envcheck/whispercpp_probe.py): results screen-tiny-en-whispercpp.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import _record  # tests/bench/_record.py, beside this script

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from envcheck import asr_probe  # noqa: E402
from tests import whisper_cpp  # noqa: E402
from tests.models import synth  # noqa: E402
from trainers import audio  # noqa: E402
from voices import asr, markers, screen, signalcheck  # noqa: E402
from voices import text as text_mod  # noqa: E402


def make_folder(folder: Path, renders: int) -> float:
    """`renders` copies of the marker passage (one per 'checkpoint'); returns its length in seconds."""
    pieces = [synth.speech(s, 24_000) for s in text_mod.sentences(markers.PASSAGE)]
    wave = text_mod.join(pieces)
    ends = [round(e / 24_000, 4) for e in signalcheck.sentence_ends([len(p) for p in pieces])]
    ref = synth.write(folder / "ref.wav", synth.speech(_record.REF_TEXT))
    entries = []
    for epoch in range(1, renders + 1):
        name = f"{epoch:02d}-epoch_{epoch:04d}.wav"
        audio.write_wav(folder / name, wave)
        entries.append({"checkpoint": f"epoch_{epoch:04d}.safetensors", "label": f"epoch_{epoch:04d}", "file": name,
                        "seconds": round(len(wave) / 24_000, 2), "sentence_ends": ends})
    (folder / "renders.json").write_text(json.dumps({"passage": markers.PASSAGE, "reference": str(ref),
                                                     "reference_text": _record.REF_TEXT, "renders": entries}))
    return len(wave) / 24_000


# The decode length of a random-weight model, set to what tiny.en would decode for the passage: about 1.3 GPT-2
# tokens per word (an estimate: GPT-2's vocabulary is not here; decode_tokens() also records the passage's
# GPT-2 pre-token count, a lower bound), plus two timestamp tokens per sentence, since voices/asr.py decodes with
# timestamps (faster-whisper's default) and Whisper brackets each segment with a start and an end.
TOKENS_PER_WORD = 1.3
THREADS = 2  # this machine's cores


# The regular expression of GPT-2's pre-tokenizer, as openai-whisper's tokenizer.py gives it to tiktoken.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def gpt2_tokens(texts: list[str], ranks_file: Path) -> int:
    """The text tokens English-only Whisper writes for these segments: GPT-2's BPE (the ranks file openai-whisper
    ships as whisper/assets/gpt2.tiktoken), each segment's text starting with a space as Whisper's do."""
    import base64

    import tiktoken

    lines = [line.split() for line in ranks_file.read_text().splitlines() if line]
    encoding = tiktoken.Encoding("gpt2", pat_str=GPT2_PATTERN,
                                 mergeable_ranks={base64.b64decode(t): int(r) for t, r in lines}, special_tokens={})
    return sum(len(encoding.encode(" " + text)) for text in texts)


def decode_tokens(passage: str, gpt2_ranks: Path | None = None) -> dict:
    """How many tokens a real tiny.en would decode for one render of the passage, and how that was counted."""
    words, sentences = len(passage.split()), len(text_mod.sentences(passage))
    if gpt2_ranks:
        text = gpt2_tokens(text_mod.sentences(passage), gpt2_ranks)
        how = (f"{text} GPT-2 BPE tokens of the passage's sentences (openai-whisper's gpt2.tiktoken) + 2 timestamp "
               "tokens per sentence")
    else:
        text = round(words * TOKENS_PER_WORD)
        how = f"round(words x {TOKENS_PER_WORD}) text tokens (GPT-2-like estimate) + 2 timestamp tokens per sentence"
    basis = {"tokens": text + 2 * sentences, "words": words, "sentences": sentences, "how": how}
    try:
        from tokenizers import pre_tokenizers

        basis["gpt2_pretokens"] = len(pre_tokenizers.ByteLevel(add_prefix_space=True).pre_tokenize_str(passage))
    except ImportError:
        pass
    return basis


def capped_options(model, tokens: int) -> dict:
    """faster-whisper transcribe() options that make a random-weight model decode exactly `tokens` tokens per
    30 s window, once: the end-of-text and timestamp tokens suppressed, so no beam stops early and no window
    is split; the temperature fallback thresholds off, as a real model on clean speech passes them at the
    first temperature (random weights fail them and would decode five more times)."""
    from faster_whisper.tokenizer import Tokenizer

    tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual)
    prompt = len(tokenizer.sot_sequence) + 1  # + <|notimestamps|>
    return {"without_timestamps": True,  # the timestamp tokens are counted in `tokens` instead
            # CTranslate2 decodes at most half of max_length = prompt + max_new_tokens (src/models/whisper.cc)
            "max_new_tokens": 2 * tokens - prompt,
            "suppress_tokens": [-1, tokenizer.eot,
                                *range(tokenizer.timestamp_begin, model.hf_tokenizer.get_vocab_size())],
            "log_prob_threshold": None, "compression_ratio_threshold": None}


@dataclasses.dataclass
class CappedFasterWhisper:
    """envcheck/asr_backends.py's FasterWhisper call (16 kHz audio, language "en", faster-whisper's other
    defaults: beam 5, no VAD) plus capped_options(). voices/asr.py cannot pass those options (it is not
    changed for a benchmark), so the bench calls faster-whisper itself, with the same screen around it."""

    folder: Path
    tokens: int
    threads: int = THREADS
    beam_size: int = 5  # upstream's; the screen's --asr-beam
    name: str = "faster-whisper, tiny.en-shaped, random weights"
    decoded: list[int] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        from faster_whisper import WhisperModel

        self._model = WhisperModel(str(self.folder), device="cpu", cpu_threads=self.threads)
        self._options = capped_options(self._model, self.tokens)

    def __call__(self, wave: np.ndarray, rate: int) -> str:
        import soxr

        audio = soxr.resample(wave, rate, 16_000) if rate != 16_000 else wave
        segments = list(self._model.transcribe(audio.astype(np.float32), language="en", beam_size=self.beam_size,
                                               **self._options)[0])
        self.decoded.append(sum(len(s.tokens) for s in segments))
        return " ".join(s.text.strip() for s in segments).strip()

    def describe(self) -> dict:
        import ctranslate2
        import faster_whisper

        shape = dataclasses.asdict(asr_probe.TINY_EN) | {"mels": asr_probe.MELS,
                                                          "vocabulary": self._model.hf_tokenizer.get_vocab_size()}
        return {"architecture": shape, "weights": "random (normal, std 0.05), saved as float16",
                "compute_type": self._model.model.compute_type, "cpu_threads": self.threads, "beam_size": self.beam_size,
                # CTranslate2's libgomp threads spin while they wait (its default); on a loaded machine that
                # decides the decode time (OMP_WAIT_POLICY=PASSIVE: they sleep)
                "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset (libgomp's default: spin)"),
                "faster_whisper": faster_whisper.__version__, "ctranslate2": ctranslate2.__version__,
                "max_new_tokens": self._options["max_new_tokens"]}


@dataclasses.dataclass
class ScriptedWhisperCpp:
    """ttsrig's own whisper.cpp backend (voices/asr.py -> envcheck/asr_backends.py's command line, unchanged: beam
    from --beam, no timestamps) on a tiny.en-shaped ggml model from envcheck/whispercpp_probe.py whose decoder says
    exactly `text_tokens` distinct tokens and stops: as many decoder steps as tiny.en spends on the passage's
    transcript (whisper-cli runs with -nt, so no timestamp tokens), with no temperature fallback."""

    binary: Path
    folder: Path
    text_tokens: int
    beam_size: int = 5
    quantize: str | None = None  # e.g. "q8_0": whisper-quantize (beside whisper-cli) makes the copy that is timed
    name: str = "whisper.cpp, tiny.en-shaped, random weights, scripted decoder"
    decoded: list[int] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        from envcheck import whispercpp_probe

        self.script = [1000 + 7 * i for i in range(self.text_tokens)]  # distinct, so no repetition check fires
        model = whispercpp_probe.ggml_model(self.folder / "ggml-tiny.en-shaped-scripted.bin",
                                            whispercpp_probe.TINY_EN, script=self.script)
        if self.quantize:
            quantized = model.with_name(f"{model.stem}-{self.quantize}.bin")
            subprocess.run([str(self.binary.with_name("whisper-quantize")), str(model), str(quantized), self.quantize],
                           check=True, capture_output=True)
            model = quantized
        self.weights = asr.ggml_weight_type(model)
        bin_dir = whisper_cpp.on_path(self.folder, str(self.binary))
        os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
        self._backend = asr.find("whisper.cpp", model=str(model), language="en", beam_size=self.beam_size)

    def __call__(self, wave: np.ndarray, rate: int) -> str:
        text = self._backend(wave, rate)
        self.decoded.append(len(text.split()))
        return text

    def describe(self) -> dict:
        from envcheck import digests, whispercpp_probe

        shape = dataclasses.asdict(whispercpp_probe.TINY_EN) | {"mels": asr_probe.MELS, "vocabulary": 51864}
        return {"architecture": shape, "weights": "random (normal, std 0.05) encoder; decoder scripted "
                "(envcheck/whispercpp_probe.py _scripted)", "beam_size": self.beam_size,
                "ggml_weights": self.weights,
                "whisper_cli": str(self.binary), "whisper_cli_sha256": digests.file_sha256(self.binary),
                "text_tokens_scripted": self.text_tokens}


def backend() -> asr.Hears | None:
    model = os.environ.get("TTSRIG_BENCH_WHISPER_MODEL")
    if not model:
        return None
    return asr.find("whisper.cpp" if Path(model).is_file() else "faster-whisper", model=model, language="en")


def rtf(name: str, *keys: str) -> float | None:
    path = Path(__file__).with_name("results") / name
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    for key in keys:
        data = data.get(key, {}) if isinstance(data, dict) else {}
    return data if isinstance(data, (int, float)) else None


def screen_timed(folder: Path, hears: asr.Hears | None) -> dict:
    """Screen the folder twice (the first pass warms up imports, the phonemiser and the model; its first
    render is kept as the cold figure) and time the second."""
    cold = screen.screen(folder, backend=hears, write=False)
    started = time.monotonic()
    result = screen.screen(folder, backend=hears)
    return {"result": result, "total": time.monotonic() - started,
            "cold_first_render": cold["renders"][0]["screen_seconds"],
            "per_render": statistics.median(r["screen_seconds"] for r in result["renders"])}


def render_shares(figures: dict, seconds: float, per_render: float, prefix: str = "") -> None:
    """The render time of the passage by each voice (CPU), and the screen's share of it."""
    strong, default = rtf("voices.json", "say_strong", "rtf"), rtf("say-default.json", "say_default", "rtf")
    for name, factor in (("say_strong_cpu", strong), ("say_default_cpu", default)):
        if factor:
            figures[f"{name}_render_s"] = round(seconds * factor, 1)
            figures[f"{prefix}{name}_screen_share"] = round(per_render / (seconds * factor), 6)


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").is_file() else ""
    return {"cpu": model, "cores": os.cpu_count(), "load_average_before": [round(x, 2) for x in os.getloadavg()]}


def plain(args: argparse.Namespace) -> dict:
    """The default run: the ASR-free checks, or the word check with $TTSRIG_BENCH_WHISPER_MODEL."""
    hears = backend()
    with tempfile.TemporaryDirectory(prefix="ttsrig-bench-screen-") as tmp:
        folder = Path(tmp)
        seconds = make_folder(folder, args.renders)
        timed = screen_timed(folder, hears)
    result, per_render = timed["result"], timed["per_render"]
    figures = {"date": time.strftime("%Y-%m-%d"), "asr": result["asr"]["backend"], "renders": args.renders,
               "audio_s_per_render": round(seconds, 2), "screen_s_per_render_median": round(per_render, 4),
               "screen_s_total_with_setup": round(timed["total"], 2),
               "flags_on_clean_espeak_renders": sorted({f for r in result["renders"] for f in r["signal"]["flags"]})}
    render_shares(figures, seconds, per_render)
    return figures


def random_tiny_en(args: argparse.Namespace) -> dict:
    """The ASR-free checks and the word check with a tiny.en-shaped random model, on the same renders."""
    figures = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "renders": args.renders}
    decode = decode_tokens(markers.PASSAGE, args.gpt2_ranks)
    with tempfile.TemporaryDirectory(prefix="ttsrig-bench-screen-") as tmp:
        folder = Path(tmp) / "auditions"
        folder.mkdir()
        seconds = make_folder(folder, args.renders)
        started = time.monotonic()
        if args.whisper_cli:  # -nt: no timestamp tokens, only the transcript's text tokens
            hears = ScriptedWhisperCpp(args.whisper_cli, Path(tmp), decode["tokens"] - 2 * decode["sentences"],
                                       beam_size=args.beam, quantize=args.quantize)
        else:
            model = asr_probe.whisper_model(Path(tmp) / "model", asr_probe.TINY_EN, quantization="float16")
            hears = CappedFasterWhisper(model, decode["tokens"], beam_size=args.beam)
        load = time.monotonic() - started
        without = screen_timed(folder, None)
        with_words = screen_timed(folder, hears)
    figures["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    figures["audio_s_per_render"] = round(seconds, 2)
    figures["without_asr"] = {"screen_s_per_render_median": round(without["per_render"], 4),
                              "flags_on_clean_espeak_renders": sorted({f for r in without["result"]["renders"]
                                                                       for f in r["signal"]["flags"]})}
    figures["word_check"] = {"backend": hears.name, **hears.describe(), "decode_tokens_per_render": decode,
                             "decoded_tokens_seen": sorted(set(hears.decoded)), "model_load_s": round(load, 2),
                             "screen_s_first_render_cold": with_words["cold_first_render"],
                             "screen_s_per_render_median": round(with_words["per_render"], 3),
                             "screen_s_total_warm": round(with_words["total"], 2),
                             "wer": "meaningless: random weights hear nonsense"}
    render_shares(figures, seconds, without["per_render"], prefix="without_asr_")
    render_shares(figures, seconds, with_words["per_render"], prefix="word_check_")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--renders", type=int, default=5)
    parser.add_argument("--random-tiny-en", action="store_true",
                        help="time the word check with a tiny.en-shaped random-weight model (see above)")
    parser.add_argument("--site", type=Path, help="a site-packages folder holding faster-whisper")
    parser.add_argument("--beam", type=int, default=5, help="the word check's beam (audition screen --asr-beam)")
    parser.add_argument("--whisper-cli", type=Path, help="with --random-tiny-en: time whisper.cpp's whisper-cli "
                        "(through ttsrig's backend) instead of faster-whisper")
    parser.add_argument("--quantize", metavar="TYPE", help="with --whisper-cli: time a copy of the model made by "
                        "whisper-quantize (beside whisper-cli) as TYPE, e.g. q8_0")
    parser.add_argument("--gpt2-ranks", type=Path, help="openai-whisper's whisper/assets/gpt2.tiktoken (from its "
                        "PyPI sdist; tiktoken on --site): decode the passage's exact token count, not an estimate")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.site:
        sys.path.append(str(args.site))
    stem = ("screen-tiny-en-whispercpp" + (f"-{args.quantize}" if args.quantize else "")) if args.whisper_cli \
        else "screen-tiny-en"
    name = (f"{stem}.json" if args.beam == 5 else f"{stem}-beam{args.beam}.json") if args.random_tiny_en \
        else "screen.json"
    figures = random_tiny_en(args) if args.random_tiny_en else plain(args)
    return _record.write(args.out or Path(__file__).with_name("results") / name, figures)


if __name__ == "__main__":
    sys.exit(main())
