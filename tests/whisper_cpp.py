"""A whisper.cpp `whisper-cli` for the tests of ttsrig's whisper.cpp backend, built once and cached.

Which binary: $TTSRIG_TEST_WHISPER_CLI, else `whisper-cli` on PATH, else under `bin/test --ci` (TTSRIG_CI=1) one
built here by envcheck.whispercpp_build (the source bootstrap builds on a pre-v2 CPU: whisper.cpp 1.8.5 from the
pywhispercpp sdist on PyPI, hash-checked) into .cache/test-tools/. Built
for plain x86-64 (SSE2, no -march): the same binary then runs on this machine and under `qemu-x86_64 -cpu
phenom`, the pre-v2 CPU whisper.cpp is the only ASR backend for. About 80 s on 2 cores; under `--ci` the
integration tests' pre-v2 `--with asr` bootstrap builds the same binary first, and keep() keeps it here.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from envcheck import whispercpp_build
from envcheck.whispercpp_build import SOURCE_SHA256, WHISPER_CPP_VERSION

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / ".cache" / "test-tools"  # the source archive is kept here too
CACHE = TOOLS / f"whisper.cpp-{WHISPER_CPP_VERSION}-x86-64-{SOURCE_SHA256[:12]}"


def find() -> str | None:
    """The whisper-cli the tests run, building it under CI; None when there is none and CI did not ask."""
    named = os.environ.get("TTSRIG_TEST_WHISPER_CLI") or shutil.which("whisper-cli")
    if named:
        return named
    built = CACHE / "whisper-cli"
    if built.is_file():
        return str(built)
    if os.environ.get("TTSRIG_CI") == "1":
        return str(build())
    return None


def required() -> str:
    """find()'s binary, or the test is skipped, saying how to get one."""
    binary = find()
    if binary is None:
        import pytest

        pytest.skip("no whisper.cpp build here: set TTSRIG_TEST_WHISPER_CLI to a whisper-cli binary (or put one on "
                    "PATH), or run `bin/test --ci`, which builds one (tests/whisper_cpp.py)")
    return binary


def on_path(folder: Path, binary: str) -> Path:
    """A folder holding `whisper-cli` (a link to binary), to put first on PATH: how ttsrig's backend finds it."""
    bin_dir = folder / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "whisper-cli").symlink_to(Path(binary).resolve())
    return bin_dir


def keep(binary: Path) -> None:
    """A portable whisper-cli built earlier in the run, kept as the tests' binary so that the run builds it once:
    bootstrap's --with asr on pre-v2 (tests/integration) builds the same source with the same options as
    build() below."""
    if not (CACHE / "whisper-cli").is_file():
        whispercpp_build.place(binary, CACHE / "whisper-cli")


def build(dest: Path = CACHE, march: str | None = None, programs: tuple[str, ...] = ("whisper-cli",)) -> Path:
    """envcheck.whispercpp_build's build of `programs` into dest: plain x86-64 or, with `march`, for that GCC
    -march (what GGML_NATIVE picks on such a CPU, e.g. amdfam10 for a Phenom II, core2)."""
    return whispercpp_build.build(dest, TOOLS, portable=True, march=march, programs=programs)


def main() -> int:
    """`python -m tests.whisper_cpp DEST [--march M]`: the builds behind requirements/evidence/asr-whispercpp-*.txt
    and tests/bench's whisper.cpp rows (whisper-cli and whisper-quantize)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--march", help="GCC -march, e.g. amdfam10 (Phenom II) or core2; default: plain x86-64")
    args = parser.parse_args()
    print(build(args.dest, args.march, ("whisper-cli", "whisper-quantize")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
