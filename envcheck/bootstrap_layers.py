"""`bin/bootstrap --with asr`: the optional layers bootstrap adds on top of a tier's lock, and keeps.

A layer is either a lock (requirements/py3.X/<tier>-<layer>.txt, envcheck.locks.LAYERS: compiled against the
tier's lock, so it never moves one of its pins; installed hash-checked with --no-deps after it), or, where no
wheel runs, a build: on a pre-v2 CPU the ASR layer is whisper.cpp's whisper-cli and whisper-quantize, built
from hash-pinned source into the venv's bin/ (envcheck.whispercpp_build), for this CPU (or for plain x86-64
when the venv is for a lower tier than the CPU building it). The venv's record lists its layers: a re-run
without --with keeps them (and says so), `--without asr` takes one away.

Standard library only (bin/bootstrap runs on any Python 3.8 or newer).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from envcheck import locks, whispercpp_build
from envcheck.bootstrap_common import rel
from envcheck.errors import TtsrigError

NAMES = tuple(locks.LAYERS)


@dataclass(frozen=True)
class Layer:
    name: str
    lock: Path | None = None  # a lock layer: requirements/py3.X/<tier>-<name>.txt
    build: str | None = None  # a built layer: "native" (this CPU) or "portable" (plain x86-64)
    kept: bool = False  # installed by an earlier run and not asked for now

    def record(self) -> dict:
        """What the venv's record keeps of it (a later run compares this with its own plan)."""
        if self.lock:
            return {"lock": rel(self.lock)}
        return {"whisper.cpp": whispercpp_build.WHISPER_CPP_VERSION, "source_sha256": whispercpp_build.SOURCE_SHA256,
                "build": self.build}

    def describe(self) -> str:
        if self.lock:
            return f"the {self.name} layer: faster-whisper and what it needs, from {rel(self.lock)}"
        return (f"the {self.name} layer: whisper.cpp {whispercpp_build.WHISPER_CPP_VERSION}'s whisper-cli and "
                f"whisper-quantize, built from hash-pinned source into the venv's bin/ "
                f"({'for this CPU' if self.build == 'native' else 'for plain x86-64, which runs on every tier'})")


def plan(wanted: list[str], unwanted: list[str], recorded: object, lock_name: str, tier: str,
         probed_tier: str | None, python_version: str) -> list[Layer]:
    """The layers this run brings: those asked for with --with and those the venv has (unless --without)."""
    both = sorted(set(wanted) & set(unwanted))
    if both:
        raise TtsrigError(f"--with {both[0]} and --without {both[0]} together: choose one")
    had = [name for name in (recorded if isinstance(recorded, dict) else {}) if name in NAMES]
    layers = []
    for name in [n for n in NAMES if (n in wanted or n in had) and n not in unwanted]:
        lock = locks.layer_path(name, lock_name, python_version)
        kept = name not in wanted
        if lock:
            layers.append(Layer(name, lock=lock, kept=kept))
        else:  # pre-v2: no wheel of the ASR runs there; build whisper.cpp
            layers.append(Layer(name, build="native" if probed_tier == tier else "portable", kept=kept))
    return layers


def check_before_install(layer: Layer, cache: Path, offline: bool) -> None:
    """What a built layer needs, checked before anything in the venv changes: the build tools and the source
    (downloaded into the cache now, or found there offline)."""
    if layer.build is None:
        return
    missing = whispercpp_build.missing_tools()
    if missing:
        raise TtsrigError(f"--with {layer.name} builds whisper.cpp on this CPU (no wheel of an ASR runs on tier "
                          f"pre-v2) and needs {missing}; install them, then re-run. Nothing was changed.")
    whispercpp_build.source_archive(cache, offline)


def install_build(layer: Layer, venv: Path, cache: Path, offline: bool, recorded: dict) -> str | None:
    """Build the layer into the venv's bin/ unless the record and the binaries say it is there; what was done."""
    bin_dir = venv / "bin"
    if recorded == layer.record() and all((bin_dir / p).is_file() for p in whispercpp_build.PROGRAMS):
        return None
    whispercpp_build.build(bin_dir, cache, portable=layer.build == "portable", offline=offline)
    return f"built whisper.cpp {whispercpp_build.WHISPER_CPP_VERSION} ({layer.build}) into {bin_dir}"


def remove_build(venv: Path) -> list[str]:
    """--without asr on a venv whose ASR layer was built: its programs leave bin/."""
    gone = []
    for program in whispercpp_build.PROGRAMS:
        path = venv / "bin" / program
        if path.is_file():
            path.unlink()
            gone.append(program)
    return gone
