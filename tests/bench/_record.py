"""Where the benchmarks write their figures."""
from __future__ import annotations

import json
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def write(path: Path, result: dict) -> int:
    """Write the figures as JSON (the file README.md cites) and show them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


# The two voice benchmarks speak the same sentence with the same reference transcript.
REF_TEXT = "The bath was full of warm water, and the path was long."
TEXT = "After a long day, Clare and her brother walked home along the path by the river."


def voice_args(doc: str, steps: int, out: Path):
    """--steps, --device, --out: what both voice benchmarks take."""
    import argparse

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=out)
    return parser.parse_args()


def voice_header(args, steps_key: str) -> dict:
    import time

    import torch

    return {"date": time.strftime("%Y-%m-%d"), "device": args.device, steps_key: args.steps, "text": TEXT,
            "torch": torch.__version__, "threads": torch.get_num_threads()}


@contextmanager
def voice_bench(doc: str, steps: int, out: Path, steps_key: str) -> Iterator[tuple[object, dict, Path, Path]]:
    """What both voice benchmarks start from: (their arguments, the result's header, a temporary folder, the
    reference clip in it: REF_TEXT spoken by espeak-ng at 24 kHz)."""
    from tests.models import synth  # the scripts put the checkout on sys.path first

    args = voice_args(doc, steps, out)
    result = voice_header(args, steps_key)
    with tempfile.TemporaryDirectory() as tmp:
        ref = synth.write(Path(tmp) / "ref.wav", synth.speech(REF_TEXT, 24_000), 24_000)
        yield args, result, Path(tmp), ref


def rtf(seconds: float, samples: int, rate: int = 24_000) -> dict:
    """One render's audio length, synthesis time and real-time factor (synthesis seconds / audio seconds)."""
    return {"audio_s": round(samples / rate, 2), "synthesis_s": round(seconds, 2), "rtf": round(seconds / (samples / rate), 3)}
