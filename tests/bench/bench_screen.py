"""Benchmark: `audition screen` time per render against the render's own time (run on demand, not by bin/test).

    python tests/bench/bench_screen.py [--renders 5] [--out FILE]

The marker passage (voices/markers.py) spoken by espeak-ng sentence by sentence and joined as audition
joins a render, screened by voices/screen.py: the ASR-free checks always; the word check when
$TTSRIG_BENCH_WHISPER_MODEL names a model (a ggml file with whisper-cli on PATH, or a faster-whisper model
folder with faster-whisper installed). The render time it is set against is the passage's audio length times
the real-time factors of results/voices.json (say-strong) and results/say-default.json, measured on the same
machine. Run with the test venv's python and PYTHONPATH set to the checkout.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _record  # tests/bench/_record.py, beside this script

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--renders", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results") / "screen.json")
    args = parser.parse_args()
    hears = backend()
    with tempfile.TemporaryDirectory(prefix="ttsrig-bench-screen-") as tmp:
        folder = Path(tmp)
        seconds = make_folder(folder, args.renders)
        screen.screen(folder, backend=hears, write=False)  # warm-up: imports, the phonemiser
        started = time.monotonic()
        result = screen.screen(folder, backend=hears)
        total = time.monotonic() - started
    per_render = statistics.median(r["screen_seconds"] for r in result["renders"])
    strong, default = rtf("voices.json", "say_strong", "rtf"), rtf("say-default.json", "say_default", "rtf")
    figures = {"date": time.strftime("%Y-%m-%d"), "asr": result["asr"]["backend"], "renders": args.renders,
               "audio_s_per_render": round(seconds, 2), "screen_s_per_render_median": round(per_render, 4),
               "screen_s_total_with_setup": round(total, 2),
               "flags_on_clean_espeak_renders": sorted({f for r in result["renders"] for f in r["signal"]["flags"]})}
    for name, factor in (("say_strong_cpu", strong), ("say_default_cpu", default)):
        if factor:
            figures[f"{name}_render_s"] = round(seconds * factor, 1)
            figures[f"{name}_screen_share"] = round(per_render / (seconds * factor), 6)
    return _record.write(args.out, figures)


if __name__ == "__main__":
    sys.exit(main())
