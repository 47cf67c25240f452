"""Import f5-tts' model code without its package `__init__`.

`f5_tts/model/__init__.py` imports the upstream Trainer, which imports wandb and accelerate (and, through
`f5_tts.model.dataset`, datasets/pyarrow): none of them is in ttsrig's locks, and pyarrow cannot run on
pre-v2 CPUs. ttsrig's trainer and voices need only the model (CFM, DiT) and the inference helpers. So
`f5_tts.model` is registered as a plain package object whose submodules import normally, with CFM and DiT
set on it (upstream's inference does `from f5_tts.model import CFM`); anything else is imported from its
submodule on first use, so `f5_tts.model.Trainer` still works where accelerate and wandb exist.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

PACKAGE = "f5_tts.model"
LAZY = {"MMDiT": "f5_tts.model.backbones.mmdit", "UNetT": "f5_tts.model.backbones.unett",
        "Trainer": "f5_tts.model.trainer"}


def install() -> ModuleType:
    """Idempotent. Returns the `f5_tts.model` package object; raises ImportError when f5-tts is absent."""
    existing = sys.modules.get(PACKAGE)
    if existing is not None:
        return existing
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.submodule_search_locations is None:
        raise ImportError("f5-tts is not installed in this environment: run bin/bootstrap")
    package = importlib.util.module_from_spec(spec)  # created, never executed
    sys.modules[PACKAGE] = package
    try:
        package.CFM = importlib.import_module("f5_tts.model.cfm").CFM
        package.DiT = importlib.import_module("f5_tts.model.backbones.dit").DiT
    except BaseException:
        del sys.modules[PACKAGE]
        raise

    def lazy(name: str):
        if name in LAZY:
            return getattr(importlib.import_module(LAZY[name]), name)
        raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}")

    package.__getattr__ = lazy
    return package
