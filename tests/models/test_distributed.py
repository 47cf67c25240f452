"""Several processes, one model (trainers/distributed.py): the F5 trainer under torchrun on the CPU with gloo
(no GPU here), on the tiny DiT and the synthetic speech of test_f5_trainer.py.

Two processes take the passes one process would (pass k on rank k mod 2, each seeded by its place in the run),
so with the same pass size they end with the same weights, within floating-point rounding of the summed
gradients; rank 0 alone writes; resume works with the same and another number of processes; a rank that dies
ends the run; two torchrun agents on localhost (--nnodes 2, c10d rendezvous) train as one.
"""
from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.models import synth
from tests.models.test_f5_trainer import TINY, cli_args, dataset, tiny_json  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parents[2]
TORCHRUN = str(Path(sys.executable).parent / "torchrun")
# The batch of test_f5_trainer's CLI runs is 400 frames; passes of 200 give most batches two (one per rank).
PASS = ["--pass-frames", "200", "--frames-per-batch", "800", "--max-samples", "4"]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TTSRIG_DIST_TIMEOUT": "60"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def single(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trainers.f5", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env(), timeout=600)


def torchrun(*args: str, nproc: int = 2, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [TORCHRUN, "--standalone", f"--nproc_per_node={nproc}", "-m", "trainers.f5", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**env(), **(extra_env or {})},
                          timeout=600)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(path)


def close(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k].float(), b[k].float(), rtol=1e-4, atol=1e-6) for k in a)


@pytest.fixture(scope="module")
def two_processes(dataset, tmp_path_factory) -> Path:  # noqa: F811
    out = tmp_path_factory.mktemp("ddp") / "two"
    json_path = out.parent / "tiny.json"
    json_path.write_text(json.dumps(TINY))
    done = torchrun(*cli_args(dataset, out, json_path, "--epochs", "2", *PASS))
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_two_processes_train_the_model_one_process_would(two_processes, dataset, tmp_path, tiny_json):  # noqa: F811
    one = single(*cli_args(dataset, tmp_path / "one", tiny_json, "--epochs", "2", *PASS))
    assert one.returncode == 0, one.stderr[-3000:]
    for epoch in ("epoch_0001.safetensors", "epoch_0002.safetensors"):
        assert close(weights(two_processes / epoch), weights(tmp_path / "one" / epoch)), epoch
    two_log = (two_processes / "train-log.tsv").read_text().splitlines()
    one_log = (tmp_path / "one" / "train-log.tsv").read_text().splitlines()
    assert len(two_log) == len(one_log) == 3  # a header and one line per epoch: written once
    for a, b in zip(two_log[1:], one_log[1:]):
        assert a.split("\t")[:2] == b.split("\t")[:2]  # epoch and optimiser steps
        assert float(a.split("\t")[2]) == pytest.approx(float(b.split("\t")[2]), rel=1e-4)  # the all-reduced loss


def test_one_process_writes_the_single_process_format(two_processes):
    names = sorted(p.name for p in two_processes.iterdir())
    assert names == ["epoch_0001.safetensors", "epoch_0001.state.safetensors", "epoch_0002.safetensors",
                     "epoch_0002.state.safetensors", "run.json", "train-log.tsv"]
    from safetensors import safe_open

    with safe_open(str(two_processes / "epoch_0002.safetensors"), "pt") as fh:
        assert "ttsrig.f5.arch" in fh.metadata() and any(k.startswith("ema_model.") for k in fh.keys())
    assert '"processes": 2' in (two_processes / "run.json").read_text()


def test_resume_with_the_same_and_with_another_number_of_processes(two_processes, dataset, tmp_path):  # noqa: F811
    json_path = two_processes.parent / "tiny.json"
    out = tmp_path / "resumed"
    first = torchrun(*cli_args(dataset, out, json_path, "--epochs", "1", *PASS))
    assert first.returncode == 0, first.stderr[-3000:]
    again = torchrun(*cli_args(dataset, out, json_path, "--epochs", "2", "--resume", *PASS))
    assert again.returncode == 0, again.stderr[-3000:]
    assert close(weights(out / "epoch_0002.safetensors"), weights(two_processes / "epoch_0002.safetensors"))
    alone = single(*cli_args(dataset, out, json_path, "--epochs", "3", "--resume", *PASS))
    assert alone.returncode == 0, alone.stderr[-3000:]
    assert "the stopped run trained on 2 process(es), this one on 1" in alone.stderr
    assert (out / "epoch_0003.safetensors").is_file()


def test_a_rank_that_dies_mid_epoch_ends_the_run_and_the_last_checkpoint_stays_whole(two_processes, dataset,  # noqa: F811
                                                                                    tmp_path):
    json_path = two_processes.parent / "tiny.json"
    out = tmp_path / "killed"
    first_epoch_steps = int((two_processes / "train-log.tsv").read_text().splitlines()[1].split("\t")[1])
    started = time.monotonic()
    done = torchrun(*cli_args(dataset, out, json_path, "--epochs", "3", *PASS),
                    extra_env={"TTSRIG_CRASH_AT": f"train:step:rank1@{first_epoch_steps + 2}"})
    assert done.returncode != 0 and time.monotonic() - started < 300, done.stderr[-2000:]
    assert "-9" in done.stderr or "SIGKILL" in done.stderr, done.stderr[-2000:]  # torchrun names the dead rank
    assert load_file(out / "epoch_0001.safetensors") and not (out / "epoch_0002.safetensors").exists()


def test_ctrl_c_under_torchrun_saves_the_same_batch_once_and_the_run_resumes(two_processes, dataset,  # noqa: F811
                                                                             tmp_path):
    """Ctrl-C in the terminal reaches torchrun and both ranks (one process group); torchrun passes SIGINT on to
    them as well. The ranks agree to stop at the same batch, rank 0 writes the interrupted pair whole, and
    --resume continues from it."""
    json_path = two_processes.parent / "tiny.json"
    out = tmp_path / "ctrl-c"
    cmd = [TORCHRUN, "--standalone", "--nproc_per_node=2", "-m", "trainers.f5",
           *cli_args(dataset, out, json_path, "--epochs", "200", *PASS)]
    run = subprocess.Popen(cmd, cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           start_new_session=True)  # its own process group, as a terminal's foreground job
    deadline = time.monotonic() + 300
    while not (out / "epoch_0001.safetensors").exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(run.pid, signal.SIGINT)
    _stdout, stderr = run.communicate(timeout=120)
    assert "interrupted: saved" in stderr, stderr[-3000:]
    state = load_file(out / "interrupted.state.safetensors")
    assert load_file(out / "interrupted.safetensors") and int(state["step"]) > 0
    assert "Traceback" not in stderr.split("interrupted: saved")[0], stderr[-3000:]
    finished = max(int(p.name[6:10]) for p in out.glob("epoch_????.safetensors"))  # the interrupted epoch's before
    resumed = torchrun(*cli_args(dataset, out, json_path, "--epochs", str(finished + 1), "--resume", *PASS))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert load_file(out / f"epoch_{finished + 1:04d}.safetensors") and not (out / "interrupted.safetensors").exists()


def test_two_agents_on_localhost_train_as_one_with_a_c10d_rendezvous(two_processes, dataset, tmp_path):  # noqa: F811
    json_path = two_processes.parent / "tiny.json"
    out = tmp_path / "nodes"
    endpoint = f"127.0.0.1:{free_port()}"
    agents = [subprocess.Popen([TORCHRUN, "--nnodes=2", f"--node-rank={node}", "--nproc_per_node=1",
                                "--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint}", "--rdzv-id=ttsrig-test",
                                "-m", "trainers.f5", *cli_args(dataset, out, json_path, "--epochs", "2", *PASS)],
                               cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for node in (0, 1)]
    results = [agent.communicate(timeout=600) for agent in agents]
    assert [a.returncode for a in agents] == [0, 0], [r[1][-2000:] for r in results]
    assert close(weights(out / "epoch_0002.safetensors"), weights(two_processes / "epoch_0002.safetensors"))


def test_more_processes_than_gpus_is_one_line(dataset, tmp_path, tiny_json, monkeypatch):  # noqa: F811
    from envcheck.errors import TtsrigError
    from trainers import distributed

    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "2")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(TtsrigError, match=r"rank 2: LOCAL_RANK 2, but this machine shows 2 GPU\(s\): "
                                          r"--nproc_per_node may not exceed them"):
        distributed.join("cuda")
    monkeypatch.setenv("TTSRIG_DIST_BACKEND", "nccl")
    with pytest.raises(TtsrigError, match="rank 2: NCCL needs GPUs, and this run is on the cpu"):
        distributed.join("cpu")


@pytest.mark.parametrize("rank, held", [(0, True), (1, False)], ids=["port-in-use", "rendezvous-never-completes"])
def test_a_process_group_that_cannot_start_is_one_line_naming_the_rank(rank, held, dataset, tmp_path,  # noqa: F811
                                                                      tiny_json):  # noqa: F811
    """The env:// rendezvous torchrun hands each rank (MASTER_ADDR:MASTER_PORT), set by hand: rank 0 finding its
    port held by another program, and rank 1 waiting for a rank 0 that never comes, end in one line within the
    time-out, with nothing written."""
    port = free_port()
    with socket.socket() as other_program:
        if held:
            other_program.bind(("127.0.0.1", port))
            other_program.listen()
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "trainers.f5", *cli_args(dataset, tmp_path / "run", tiny_json)],
                              capture_output=True, text=True, cwd=ROOT, timeout=300,
                              env={**env(), "WORLD_SIZE": "2", "RANK": str(rank), "LOCAL_RANK": str(rank),
                                   "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "TTSRIG_DIST_TIMEOUT": "5"})
    assert done.returncode == 2 and time.monotonic() - started < 120, done.stderr[-2000:]
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"trainers.f5: rank {rank}: the gloo process group did not start (") and \
        "check torchrun's --rdzv-endpoint / MASTER_ADDR:MASTER_PORT" in line, line
    assert not (tmp_path / "run").exists()


def test_envchecks_process_group_check_all_reduces_across_processes():
    """The report's "NCCL across the GPUs" check, run here with gloo across two CPU processes (the same code)."""
    from envcheck import isolated, probes

    verdict = isolated.run_check(probes.distributed_check("gloo", 2), sys.executable)
    assert verdict.status == "ok", verdict.output[-2000:]
    assert verdict.detail == "gloo all-reduce across 2: CPU processes; torchrun --nproc_per_node=2 can use them"
    assert "NCCL across the GPUs" in [c.name for c in probes.GPU]


@pytest.mark.parametrize("chosen, agreed", [((torch.bfloat16, torch.bfloat16), torch.bfloat16),
                                            ((torch.bfloat16, torch.float16), torch.float16),
                                            ((torch.bfloat16, None), None), ((torch.float16, None), None)])
def test_cards_of_different_generations_share_the_lowest_precision(chosen, agreed):
    """What each rank's card chose (trainers/precision.py), agreed as every rank would: an RTX 3060 (bf16) beside a
    T4 (fp16) trains in fp16, beside a P40 (fp32) in fp32."""
    from trainers import distributed

    class TwoCards(distributed.World):  # the MIN all-reduce over two ranks, without a process group
        def smallest(self, number: int) -> int:
            return min(distributed.PRECISION_ORDER.index(c) for c in chosen)

    assert all(distributed.common_dtype(TwoCards(0, 2), own) == agreed for own in chosen)
    assert distributed.common_dtype(distributed.World(), chosen[0]) == chosen[0]


@pytest.mark.parametrize("batch, size", [([5, 1, 4, 2], 2), ([5, 1, 4], 2), ([3, 9, 4, 7, 1], 3), ([8, 6], 2)])
def test_the_ranks_weighted_shares_average_to_the_whole_batchs_mean(batch, size):
    """StyleTTS2's sharing of one global batch: every clip in exactly one share, shares differing by one clip at
    most, and the weighted per-share means (what each rank's loss and gradients are) averaged over the ranks,
    as World.average and average_gradients do, give the mean over the whole batch."""
    from trainers import distributed

    shares = [distributed.share_of(batch, rank, size) for rank in range(size)]
    assert sorted(c for share, _ in shares for c in share) == sorted(batch)
    assert max(len(s) for s, _ in shares) - min(len(s) for s, _ in shares) <= 1
    averaged = sum(weight * sum(share) / len(share) for share, weight in shares) / size
    assert math.isclose(averaged, sum(batch) / len(batch))


# -- StyleTTS2 ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def st_pieces(tmp_path_factory) -> Path:
    from tests.models import tiny_styletts2

    return tiny_styletts2.make(tmp_path_factory.mktemp("st-pretrained"))


@pytest.fixture(scope="module")
def st_dataset(tmp_path_factory) -> Path:
    from tests.models import test_styletts2

    return synth.styletts2_set(tmp_path_factory.mktemp("st-voice"), test_styletts2.SENTENCES)


def test_styletts2_two_processes_train_one_model_slm_adversarial_included(st_pieces, st_dataset, tmp_path):
    """StyleTTS2 (test_styletts2.py's reduced model and data; here, before that file's in-process trainers have
    grown this process) under torchrun with gloo on the CPU: each rank takes its clip of every batch of two,
    every update averages the gradients of its modules over the ranks (the discriminators, the generator and
    the SLM adversarial steps, the parts upstream's DDP breaks on), the ranks end each epoch with the same
    weights (checked by the trainer itself, which stops otherwise), and rank 0 alone writes the single-process
    checkpoint."""
    from tests.models import test_styletts2

    torchrun = str(Path(sys.executable).parent / "torchrun")
    run = tmp_path / "ddp"
    cmd = [torchrun, "--standalone", "--nproc_per_node=2", "-m", "trainers.styletts2", str(st_dataset),
           "--out", str(run), "--quiet", "--device", "cpu", "--pretrained-dir", str(st_pieces), "--trust-checkpoint", "--epochs", "1",
           "--slm-adversarial", "--set", *test_styletts2.FAST, "batch_size=2"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "TTSRIG_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)},
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    [row] = test_styletts2.log_rows(run)
    assert row["iters"] == str(len(test_styletts2.SENTENCES) // 2)  # the batches one process takes
    for term in ("mel", "gen", "disc", "slm_gen"):
        assert math.isfinite(float(row[term])), term
    assert sorted(p.name for p in run.iterdir()) == ["config.yml", "epoch_2nd_00001.pth",
                                                     "epoch_2nd_00001.state.safetensors", "train-log.tsv"]
    saved = torch.load(run / "epoch_2nd_00001.pth", weights_only=True)
    assert {"decoder", "predictor", "style_encoder"} <= set(saved["net"])
