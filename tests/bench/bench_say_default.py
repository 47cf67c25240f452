"""Benchmark: real-time factor of say-default against the styletts2 package's `StyleTTS2.inference`
(run on demand, not by bin/test).

    python tests/bench/bench_say_default.py [--steps 5] [--device cpu] [--out FILE]

Full-size LibriTTS architecture with random weights (tests/models/tiny_styletts2.full_size), the same
reference clip, text and diffusion steps for both; RTF: the median of three renders after a warm-up, loading excluded.
The package's module cannot be imported as it is in ttsrig's environments (it imports langchain and gruut,
and downloads nltk data at import): those imports are stubbed, its phonemiser and word tokenizer are
replaced by the same espeak-ng phonemes and nltk tokenizer ttsrig uses, and its download URLs point at the
local pieces. Its own inference code runs unchanged. Target: say-default no slower.
Run with the host venv's python and PYTHONPATH set to the checkout.
"""
from __future__ import annotations

import sys
import time
import types
from pathlib import Path

import torch

import _record  # tests/bench/_record.py, beside this script

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.models import tiny_styletts2  # noqa: E402

TEXT = _record.TEXT


def timed(render, repeats: int = 3) -> tuple[float, int]:
    """Median seconds of `repeats` renders after a warm-up, and the samples rendered."""
    render()
    times = []
    for _ in range(repeats):
        torch.manual_seed(0)
        start = time.monotonic()
        samples = len(render())
        times.append(time.monotonic() - start)
    return sorted(times)[len(times) // 2], samples


def package_engine(pieces: Path, config_path: Path, device: str):
    import nltk
    from nltk.tokenize.destructive import NLTKWordTokenizer

    from trainers import phonemes

    splitter = types.ModuleType("langchain.text_splitter")
    splitter.RecursiveCharacterTextSplitter = object
    sys.modules.update({"langchain": types.ModuleType("langchain"), "langchain.text_splitter": splitter})
    gruut = types.ModuleType("gruut")
    gruut.sentences = lambda *a, **k: []
    sys.modules["gruut"] = gruut
    nltk.download = lambda *a, **k: True
    from styletts2 import tts

    local = {tts.F0_CHECKPOINT_URL: str(pieces / "Utils/JDC/bst.t7"),
             tts.BERT_CONFIG_URL: str(pieces / "Utils/PLBERT/config.yml"),
             tts.BERT_CHECKPOINT_URL: str(pieces / "Utils/PLBERT/step_1000000.t7")}
    tts.cached_path = lambda url: local[url]
    tts.word_tokenize = NLTKWordTokenizer().tokenize
    engine = tts.StyleTTS2(model_checkpoint_path=str(pieces / "Models/LibriTTS/epochs_2nd_00020.pth"),
                           config_path=str(config_path))
    engine.device = device

    class Espeak:
        def phonemize(self, text: str) -> str:
            return phonemes.phonemize([text])[0]

    engine.phoneme_converter = Espeak()
    return engine


def main() -> int:
    with _record.voice_bench(__doc__, 5, ROOT / "tests/bench/results/say-default.json",
                             "diffusion_steps") as (args, result, tmp, ref):
        from trainers import phonemes, styletts2_model, styletts2_pieces
        from voices import reference, styletts2

        pieces = tiny_styletts2.make(tmp / "pieces", legacy_pretrain=False, sizes=tiny_styletts2.full_size())
        config = styletts2_pieces.make_config(styletts2_pieces.find(pieces, need_wavlm=False))
        styletts2_pieces.save_config(config, tmp / "config.yml")
        styletts2_model.install_cpu_fixes()

        voice = styletts2.load(pieces / "Models/LibriTTS/epochs_2nd_00020.pth", config, device=args.device)
        style = styletts2.reference_style(voice, reference.load(ref))
        [(_, tokens)] = phonemes.encode([TEXT])
        seconds, samples = timed(lambda: styletts2.synthesize(voice, tokens.ids, style, diffusion_steps=args.steps))
        result["say_default"] = _record.rtf(seconds, samples)
        del voice

        engine = package_engine(pieces, tmp / "config.yml", args.device)
        ref_s = engine.compute_style(str(ref))
        seconds, samples = timed(lambda: engine.inference(TEXT, ref_s=ref_s, diffusion_steps=args.steps))
        result["styletts2_package_inference"] = _record.rtf(seconds, samples)
        result["say_default_over_package_rtf"] = round(result["say_default"]["rtf"] /
                                                       result["styletts2_package_inference"]["rtf"], 3)
    return _record.write(args.out, result)


if __name__ == "__main__":
    sys.exit(main())
