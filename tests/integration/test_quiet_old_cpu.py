"""Old CPUs stay quiet: every user-facing command, run once under qemu-x86_64 on a CPU of each old tier (the
pre-v2 venv on `phenom`, the v2 venv on `Nehalem`), prints its own output and no library warning the user can
do nothing about; and the start-up hook's NNPACK decision follows the CPU.

Always run (short emulated processes, side by side): one convolution on `phenom` with the hook, the same with
its switch off (the NNPACK line is back: the evidence for the fix), and the v2 venv natively on this AVX2
machine (NNPACK kept). CI only (`bin/test --ci`): one driver per CPU runs every command in turn
(tests/integration/old_cpu_commands.py); a StyleTTS2 training step alone takes minutes under qemu.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from envcheck.isolated import EMULATION_UNSET, qemu_command

ROOT = Path(__file__).resolve().parents[2]
DRIVER = ROOT / "tests/integration/old_cpu_commands.py"
pytestmark = [pytest.mark.emulated, pytest.mark.integration]
CPUS = {"pre-v2": "phenom", "v2": "Nehalem"}
NNPACK_LINE = "Could not initialize NNPACK! Reason: Unsupported hardware."
# The same convolutions the driver runs after the commands (old_cpu_commands.CONV).
CONV = ("import torch; torch.nn.Conv1d(4, 4, 3)(torch.randn(2, 4, 20)); "
        "torch.nn.Conv2d(4, 4, 3)(torch.randn(2, 4, 20, 20)); print(torch._C._get_nnpack_enabled())")

# What a library may print that tells the user something they can act on: pattern -> what it means (README
# troubleshooting says the same). Everything else below that looks like a library warning fails the test.
MEANINGFUL: dict[str, str] = {}
LIBRARY_WARNING = re.compile(
    r"\b\w*Warning: "                   # Python warnings: "file.py:12: FutureWarning: ..."
    r"|^\[?[WE]\d{4} "                  # C++ (c10, glog): "[W1126 02:42:59.0 NNPACK.cpp:56] ..."
    r"|Could not initiali[sz]e"         # NNPACK, and its kind
    r"|(?i:deprecat)"                   # deprecation notices, however printed
    r"|^(?:WARNING|Warning|warning)\b")  # logging's and loaders' own prefixes
# Each driver takes minutes (tests/integration/old_cpu_commands.py's header has the figures); the limits leave
# room for a loaded machine.
DRIVER_LIMIT_S = 3600
CONV_LIMIT_S = 600
# The emulator's note on its CPU model (one per thread, sometimes inside a progress bar's line): not the program's.
QEMU_NOTE = re.compile(r"qemu-x86_64: warning: .*")


def library_warnings(text: str) -> list[str]:
    lines = [QEMU_NOTE.sub("", ln).strip() for ln in re.split(r"[\r\n]+", text)]
    return [ln for ln in lines if LIBRARY_WARNING.search(ln) and not any(re.search(p, ln) for p in MEANINGFUL)]


def child_env(**extra: str) -> dict[str, str]:
    """The user's environment without the switches of the hook (a run must see it on) and without what
    envcheck.isolated unsets under emulation (OPENBLAS_CORETYPE)."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "TTSRIG_SITE", "TTSRIG_ONEDNN_FIX", "TTSRIG_NNPACK_FIX", *EMULATION_UNSET)
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return {**env, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1", "TTSRIG_OFFLINE": "1",
            "HF_HUB_OFFLINE": "1", **extra}


@pytest.fixture(scope="module")
def venvs(run_bootstrap, test_venvs) -> dict[str, Path]:
    """The tier matrix's venvs (bootstrap only verifies them when they are complete)."""
    for tier in CPUS:
        run_bootstrap("--tier", tier, "--venv", str(test_venvs / tier))
    return {tier: test_venvs / tier for tier in CPUS}


def run_side_by_side(commands: dict[str, tuple[list[str], dict[str, str]]], limit_s: int) -> dict[str, dict]:
    """Start every command at once (two cores: two emulated processes), wait for all; kill what overruns."""
    running = {name: subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True) for name, (cmd, env) in commands.items()}
    results = {}
    try:
        for name, process in running.items():
            try:
                stdout, stderr = process.communicate(timeout=limit_s)
            except subprocess.TimeoutExpired:
                process.kill()
                stdout, stderr = process.communicate()
                stderr += f"\n(killed after {limit_s} s)"
            results[name] = {"rc": process.returncode, "stdout": stdout, "stderr": stderr}
    finally:
        for process in running.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    return results


@pytest.fixture(scope="module")
def emulated_convolutions(venvs) -> dict:
    """The convolutions on phenom, with the hook as bootstrap installs it and with its NNPACK switch off."""
    # One thread: OpenMP's spin-waits, cheap on a real CPU, cost minutes under qemu. It changes no message.
    env = child_env(OMP_NUM_THREADS="1")
    command = [*qemu_command("phenom"), str(venvs["pre-v2"] / "bin/python"), "-c", CONV]
    return run_side_by_side({"hook on": (command, env), "switch off": (command, {**env, "TTSRIG_NNPACK_FIX": "0"})},
                            CONV_LIMIT_S)


@pytest.fixture(scope="module")
def emulated_commands(venvs, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("old-cpu")
    env = child_env(TTSRIG_TRUST_FILE=str(root / "trust.json"))
    # The recordings and tiny models are made natively: only the commands themselves are under test.
    subprocess.run([str(venvs["pre-v2"] / "bin/python"), str(DRIVER), "setup", str(root / "work")], cwd=ROOT,
                   env=env, check=True, capture_output=True, timeout=1800)
    emulated_env = {**env, "OMP_NUM_THREADS": "1"}
    results = run_side_by_side({tier: ([*qemu_command(cpu), str(venvs[tier] / "bin/python"), str(DRIVER), "run",
                                        str(root / "work"), str(root / tier)], emulated_env)
                                for tier, cpu in CPUS.items()}, DRIVER_LIMIT_S)
    for tier, result in results.items():
        if result["rc"] == 0:
            result.update(json.loads((root / tier / "commands.json").read_text()))
    return results


@pytest.mark.ci_only
@pytest.mark.parametrize("tier", CPUS)
def test_every_command_runs_on_an_old_cpu_without_library_warnings(emulated_commands, tier):
    run = emulated_commands[tier]
    assert run["rc"] == 0, f"the driver under -cpu {CPUS[tier]} failed ({run['rc']}):\n{run['stderr'][-4000:]}"
    names = [c["name"] for c in run["commands"]]
    assert names == ["prepare", "trainers.f5", "trainers.styletts2", "say-strong", "say-default", "audition render"]
    for command in run["commands"]:
        assert command["rc"] == 0, f"{command['name']} exit {command['rc']}:\n{command['stderr'][-3000:]}"
    noise = [f"  {c['name']}: {line}" for c in run["commands"] for line in library_warnings(c["stdout"] + c["stderr"])]
    assert not noise, f"library warnings under qemu-x86_64 -cpu {CPUS[tier]}:\n" + "\n".join(noise)
    # The commands' own output is there (the capture works, and nothing buries it).
    said = {c["name"]: c["stdout"] + c["stderr"] for c in run["commands"]}
    for trainer in ("trainers.f5", "trainers.styletts2"):
        assert "epoch 1/1" in said[trainer] and "done: 1 epoch" in said[trainer], said[trainer]  # progress, summary
    assert re.search(r"\b1 clips?\b", said["prepare"]), said["prepare"]
    assert "wrote" in said["say-strong"] and "wrote" in said["say-default"]
    assert "index.html" in said["audition render"]
    # After every command, torch on this CPU: no AVX2 seen, NNPACK off (the hook), and a convolution is quiet.
    assert run["torch"]["avx2"] is False and run["torch"]["nnpack"] is False, run["torch"]
    assert run["conv"]["stdout"].strip() == "False" and NNPACK_LINE not in run["conv"]["stderr"]


def test_the_hook_turns_nnpack_off_on_a_cpu_without_avx2(emulated_convolutions):
    run = emulated_convolutions["hook on"]
    assert run["rc"] == 0, run["stderr"][-4000:]
    assert run["stdout"].strip() == "False" and NNPACK_LINE not in run["stderr"]
    assert not library_warnings(run["stderr"]), run["stderr"]


def test_with_the_switch_off_the_nnpack_line_is_back(emulated_convolutions):
    # The evidence for the fix: the same convolutions, on the same emulated CPU and venv.
    run = emulated_convolutions["switch off"]
    assert run["rc"] == 0, run["stderr"][-4000:]
    assert run["stdout"].strip() == "True"
    assert NNPACK_LINE in run["stderr"]


def test_a_lower_tier_venv_on_an_avx2_cpu_keeps_nnpack(venvs):
    # Natively: the decision is the CPU's, not the tier's (a v2 venv on this machine).
    def native(*args: str) -> str:
        return subprocess.run([str(venvs["v2"] / "bin/python"), *args], capture_output=True, text=True, cwd=ROOT,
                              env=child_env(), check=True).stdout

    nnpack, avx2 = native("-c", "import torch; print(torch._C._get_nnpack_enabled(), "
                                "torch.cpu._is_avx2_supported())").split()
    assert nnpack == avx2
    status = native("-m", "patches", "status", "--venv", str(venvs["v2"]))
    assert ("NNPACK left on: this CPU has AVX2" if avx2 == "True" else "NNPACK off: this CPU lacks AVX2") in status
