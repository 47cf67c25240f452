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
