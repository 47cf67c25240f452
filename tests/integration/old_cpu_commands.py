"""Every user-facing command once, in one interpreter of a tier venv, each one's output captured at the fd level.

    python tests/integration/old_cpu_commands.py setup WORK      # natively: recordings, tiny models, configs
    python tests/integration/old_cpu_commands.py run WORK OUT [NAME ...]  # under qemu-x86_64: each command's main

`run` writes OUT/commands.json: per command its argv, exit status, seconds, stdout and stderr, and what torch
ended up with (AVX2 seen, NNPACK, oneDNN). tests/integration/test_quiet_old_cpu.py reads it.

One interpreter for all commands because emulation is slow (importing torch alone takes ~15 s under qemu).
To keep that faithful to one process per command: fds 1 and 2 are redirected around each command (torch's
C++ warnings bypass sys.stderr), the warning filters a command installs are undone after it, the
"once per place" memory of Python warnings is cleared between commands, and the DeprecationWarnings that
`python -m MODULE` would show (those raised in MODULE itself, there `__main__`) are shown. What a library
prints only once per process (a warning at import, TORCH_WARN_ONCE) lands in the first command that
triggers it: still caught, only attributed to that command.

Seconds per command, measured under qemu on this 2-core machine while other work loaded it (load 3 to 6, so each
emulated process had under half a core): prepare 336 / 340, trainers.f5 16 / 19, trainers.styletts2 1570 / 1526,
say-strong 19 / 17, say-default 217 / 203 (phenom / Nehalem). A StyleTTS2 step is the cost: its decoder's
1024-channel blocks and HiFi-GAN are fixed by the package, and the shortest crop the recipe trains on is 80 frames.
"""
from __future__ import annotations

import json
import os
import re
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINES = ["a bath and a path along the grass"]  # one clip: one step of each trainer
REF_TEXT = "The bath was full of warm water."


def setup(work: Path) -> None:
    """Recordings (espeak-ng), a tiny F5 arch and run, a random vocoder, tiny StyleTTS2 pieces and a run."""
    from tests.models import synth, tiny_styletts2, voices_fixtures

    synth.transcribed(work / "recordings", LINES)
    synth.write(work / "ref.wav", synth.speech(REF_TEXT))
    (work / "f5-arch.json").write_text(json.dumps(voices_fixtures.TINY_F5))
    voices_fixtures.strong_config(work / "strong.toml", voices_fixtures.vocoder(work / "vocos"))
    voices_fixtures.f5_run(work / "f5run", epochs=2)
    pieces = tiny_styletts2.make(work / "st2-pieces")
    shortest_durations(voices_fixtures.styletts2_checkpoint(pieces, work / "st2run"))
    (work / "passage.txt").write_text("A bath and a path. The car stood near the star.\n")


def shortest_durations(checkpoint: Path) -> None:
    """Make the random duration predictor give every phoneme one frame, so say-default's "Hi." is a fifth of a
    second of audio instead of seconds: the decoder's 1024-channel blocks run about 36x slower under qemu than
    natively, and the length of the audio changes no message."""
    import munch
    import torch

    with torch.serialization.safe_globals([munch.Munch]):  # the test's own file, made just above
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    state["net"]["predictor"]["module.duration_proj.linear_layer.bias"].fill_(-20.0)
    torch.save(state, checkpoint)


def commands(work: Path, out: Path) -> list[tuple[str, str, list[str]]]:
    """(name, module, argv): what a user runs, on the tiny models; one step or one epoch of each trainer."""
    ref = ["--ref", str(work / "ref.wav")]
    manifest = str(out / "data" / "manifest.jsonl")
    return [
        ("prepare", "trainers.prepare", [str(work / "recordings"), str(out / "data"), "--device", "cpu"]),
        ("trainers.f5", "trainers.f5",
         [manifest, "--out", str(out / "f5"), "--pretrained", "none", "--model-config", str(work / "f5-arch.json"),
          "--epochs", "1", "--warmup-steps", "2",
          # workers fork, and QEMU user mode does not survive fork() once torch has started threads
          "--num-workers", "0", "--device", "cpu"]),
        ("trainers.styletts2", "trainers.styletts2",
         [manifest, "--out", str(out / "st2"), "--pretrained-dir", str(work / "st2-pieces"), "--epochs", "1",
          # the shortest crop, and no discriminator passes: a step of the reduced model is minutes under qemu
          "--set", "max_len=80", "loss_params.lambda_gen=0", "--device", "cpu", "--trust-checkpoint"]),
        ("say-strong", "voices.say",
         ["strong", "A short sentence to say.", "--voice-config", str(work / "strong.toml"), "--checkpoint",
          str(work / "f5run" / "epoch_0002.safetensors"), *ref, "--ref-text", REF_TEXT, "--seed", "1",
          "--device", "cpu", "-o", str(out / "strong.wav")]),
        ("say-default", "voices.say",
         ["default", "Hi.", "--checkpoint", str(work / "st2run" / "epoch_2nd_00020.pth"),
          *ref, "--diffusion-steps", "3", "--seed", "1", "--device", "cpu", "-o", str(out / "default.wav"),
          "--trust-checkpoint"]),
        ("audition render", "voices.audition",
         ["render", "strong", str(work / "f5run" / "epoch_*.safetensors"), *ref, "--ref-text", REF_TEXT,
          "--passage", str(work / "passage.txt"), "--voice-config", str(work / "strong.toml"), "--device", "cpu",
          "--out", str(out / "audition")]),
    ]


@contextmanager
def captured(stdout: Path, stderr: Path):
    """fds 1 and 2 into files: Python's prints, tqdm, logging and C++ (torch's [W ...] lines) alike."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def run_one(name: str, module: str, argv: list[str], out: Path) -> dict:
    import importlib

    slug = re.sub(r"\W+", "-", name)
    stdout, stderr = out / f"{slug}.stdout", out / f"{slug}.stderr"
    filters = warnings.filters[:]
    warnings.filterwarnings("default", category=DeprecationWarning, module=re.escape(module) + "$")
    warnings._filters_mutated()  # forget which warnings were already shown: each command starts afresh
    started = time.monotonic()
    with captured(stdout, stderr):
        try:
            rc = importlib.import_module(module).main(argv)
        except SystemExit as exc:  # argparse
            rc = exc.code if isinstance(exc.code, int) else 1
        except BaseException as exc:  # a traceback is output too: the test shows it
            import traceback

            traceback.print_exc()
            rc = f"raised {type(exc).__name__}"
    seconds = time.monotonic() - started
    warnings.filters[:] = filters
    warnings._filters_mutated()
    return {"name": name, "argv": argv, "rc": rc, "seconds": round(seconds, 1),
            "stdout": stdout.read_text(errors="replace"), "stderr": stderr.read_text(errors="replace")}


def conv(out: Path) -> dict:
    """Convolutions that reach NNPACK's initialisation on a CPU without AVX2 (test_quiet_old_cpu.CONV, which
    runs them with the switch off)."""
    import torch

    with captured(out / "conv.stdout", out / "conv.stderr"):
        torch.nn.Conv1d(4, 4, 3)(torch.randn(2, 4, 20))
        torch.nn.Conv2d(4, 4, 3)(torch.randn(2, 4, 20, 20))
        print(torch._C._get_nnpack_enabled())
    return {"stdout": (out / "conv.stdout").read_text(), "stderr": (out / "conv.stderr").read_text()}


def run(work: Path, out: Path, only: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    results = [run_one(name, module, argv, out) for name, module, argv in commands(work, out)
               if not only or name in only]
    import torch

    state = {"avx2": bool(torch.cpu._is_avx2_supported()), "nnpack": bool(torch._C._get_nnpack_enabled()),
             "onednn": bool(torch.backends.mkldnn.enabled), "capability": torch.backends.cpu.get_cpu_capability()}
    (out / "commands.json").write_text(json.dumps({"commands": results, "torch": state, "conv": conv(out)},
                                                  indent=1))
    print("ran", len(results), "commands")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    action, work = sys.argv[1], Path(sys.argv[2])
    if action == "setup":
        setup(work)
    else:
        run(work, Path(sys.argv[3]), sys.argv[4:])  # optionally only the commands named
