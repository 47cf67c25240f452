"""Benchmark: real-time factor of say-strong against upstream's f5_tts.api.F5TTS.infer (run on demand).

    python tests/bench/bench_voices.py [--steps 32] [--device cpu] [--out FILE]

Full-size F5TTS_v1_Base architecture with random weights saved in the published layout, a random Vocos of
the published vocoder's size, the same reference clip (espeak-ng speech), text and steps, for both.
RTF = synthesis seconds / audio seconds, model loading excluded, after one warm-up render each. Target:
say-strong no slower than upstream. Run with the host venv's python and PYTHONPATH set to the checkout.

say-default against the styletts2 package's `inference` is not measured here: that class cannot be
imported in ttsrig's environments (it needs langchain and gruut and downloads nltk data at import).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import _record  # tests/bench/_record.py, beside this script

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.models import voices_fixtures  # noqa: E402

REF_TEXT, TEXT = _record.REF_TEXT, _record.TEXT


def main() -> int:
    with _record.voice_bench(__doc__, 32, ROOT / "tests/bench/results/voices.json", "steps") as (args, result, tmp, ref):
        from safetensors.torch import save_file

        from trainers import f5_model as f5
        from voices import f5 as engine
        from voices import reference

        torch.manual_seed(0)
        model, _ = f5.build_model(f5.default_arch(), f5.default_vocab())
        weights = {f"ema_model.{k}": v for k, v in f5.inference_state(model).items()}
        weights.update({"step": torch.tensor(0), "initted": torch.tensor(True)})
        save_file(weights, tmp / "model.safetensors")
        del model
        vocoder = voices_fixtures.vocoder(tmp / "vocos", dim=512, intermediate=1536, layers=8)

        voice = engine.load(str(tmp / "model.safetensors"), vocab=None, model_config=None, vocoder=str(vocoder),
                            device=args.device)
        clip = reference.load(ref)
        times = []
        for _ in range(2):
            torch.manual_seed(0)
            start = time.monotonic()
            wave = engine.synthesize(voice, clip, REF_TEXT, TEXT, steps=args.steps)
            times.append(time.monotonic() - start)
        ours = _record.rtf(times[-1], len(wave))
        result["say_strong"] = ours
        del voice

        from f5_tts.api import F5TTS

        upstream = F5TTS(model="F5TTS_v1_Base", ckpt_file=str(tmp / "model.safetensors"), vocoder_local_path=str(vocoder),
                         device=args.device)
        times = []
        for _ in range(2):
            start = time.monotonic()
            wav, rate, _ = upstream.infer(str(ref), REF_TEXT, TEXT, nfe_step=args.steps, seed=0, show_info=lambda *a: None)
            times.append(time.monotonic() - start)
        result["upstream_f5tts_infer"] = _record.rtf(times[-1], len(wav), rate)
        result["say_strong_over_upstream_rtf"] = round(ours["rtf"] / result["upstream_f5tts_infer"]["rtf"], 3)
    return _record.write(args.out, result)


if __name__ == "__main__":
    sys.exit(main())
