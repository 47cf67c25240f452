"""Where the benchmarks write their figures."""
from __future__ import annotations

import json
from pathlib import Path


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
