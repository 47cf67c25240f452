"""Benchmark: trainers/f5.py against upstream's Trainer, CPU, tiny DiT, same data (run on demand).

    python tests/bench/bench_f5_trainer.py [--clips 24] [--epochs 25] [--skip-upstream] [--out FILE]

1. Makes a synthetic data set (espeak-ng speech, trainers.prepare) once under .cache/bench/.
2. ttsrig: `python -m trainers.f5` in the host tier's venv; steps per second from train-log.tsv, and the
   share of step time spent waiting for data.
3. upstream: f5_tts.model.Trainer (accelerate, datasets; mels computed per item from the audio, as
   upstream does) in its own venv: the v3 lock plus `accelerate datasets wandb` (unpinned; this venv is
   for the benchmark only, never for users). Same tiny arch, same frame budget, no logger; ttsrig with
   num_workers 0, upstream with 1 (its DataLoader sets persistent_workers and refuses 0).
Writes JSON (default tests/bench/results/f5-trainer.json).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _record  # tests/bench/_record.py, beside this script

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "bench"
VENVS = Path(os.environ.get("TTSRIG_TEST_VENVS", ROOT / ".cache" / "test-venvs"))
TINY = {"dim": 64, "depth": 2, "heads": 2, "dim_head": 32, "ff_mult": 2, "text_dim": 32, "conv_layers": 1,
        "text_mask_padding": True}
FRAMES = 1200

MAKE_DATA = """
import sys, subprocess
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.models import synth
from trainers import prepare
root = Path({data!r})
words = "the rig speaks in a calm voice along the path north of the bath on happy days".split()
for i in range({clips}):
    text = " ".join(words[(i * 3 + k) % len(words)] for k in range(8))
    synth.write(root / "in" / f"c{{i:03d}}.wav", synth.speech(text))
    (root / "in" / f"c{{i:03d}}.txt").write_text(text)
prepare.prepare(root / "in", root / "set", prepare.Settings(mels=("f5",)), None, "cpu", progress=False)
"""

UPSTREAM = """
import json, sys, time, torch
from pathlib import Path
from datasets import Dataset as HFDataset
from f5_tts.model import CFM, DiT, Trainer
from f5_tts.model.dataset import CustomDataset
from f5_tts.model.utils import get_tokenizer
from importlib.resources import files
manifest, arch, epochs, frames, out = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
root = Path(manifest).parent
rows = [json.loads(l) for l in open(manifest)]
data = HFDataset.from_list([{"audio_path": str(root / r["audio"]), "text": r["text"], "duration": r["duration"]} for r in rows])
vocab, size = get_tokenizer(str(files("f5_tts").joinpath("infer/examples/vocab.txt")), "custom")
torch.manual_seed(0)
mel = dict(n_fft=1024, hop_length=256, win_length=1024, n_mel_channels=100, target_sample_rate=24000, mel_spec_type="vocos")
model = CFM(transformer=DiT(**arch, text_num_embeds=size, mel_dim=100), mel_spec_kwargs=mel, vocab_char_map=vocab)
trainer = Trainer(model, epochs, 1e-4, num_warmup_updates=2, save_per_updates=10**9, checkpoint_path=out,
                  batch_size_per_gpu=frames, batch_size_type="frame", max_samples=32, logger=None,
                  last_per_updates=10**9, keep_last_n_checkpoints=0)
dataset = CustomDataset(data, durations=[r["duration"] for r in rows])
start = time.monotonic()
trainer.train(dataset, num_workers=1, resumable_with_seed=0)  # its DataLoader demands workers (persistent_workers=True)
seconds = time.monotonic() - start
from torch.utils.data import SequentialSampler
from f5_tts.model.dataset import DynamicBatchSampler
per_epoch = len(list(DynamicBatchSampler(SequentialSampler(dataset), frames, max_samples=32, random_seed=0)))
print(json.dumps({"seconds": seconds, "steps": per_epoch * epochs}))
"""


def host_tier() -> str:
    out = subprocess.run([sys.executable, "-m", "envcheck", "probe", "--json"], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)["tier"]


def bootstrap(venv: Path, tier: str) -> None:
    subprocess.run([str(ROOT / "bin/bootstrap"), "--venv", str(venv), "--tier", tier, "--python", sys.executable],
                   check=True, stdout=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--skip-upstream", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "tests/bench/results/f5-trainer.json")
    args = parser.parse_args()

    tier = host_tier()
    venv = VENVS / tier
    bootstrap(venv, tier)
    data = CACHE / f"f5-data-{args.clips}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if not (data / "set" / "manifest.jsonl").exists():
        subprocess.run([str(venv / "bin/python"), "-c", MAKE_DATA.format(root=str(ROOT), data=str(data),
                        clips=args.clips)], check=True, env=env)
    manifest = data / "set" / "manifest.jsonl"
    clips = sum(1 for _ in manifest.open())
    result: dict = {"date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} cores, CPU only", "tier": tier,
                    "clips": clips, "epochs": args.epochs, "frames_per_batch": FRAMES, "arch": TINY}

    with tempfile.TemporaryDirectory() as tmp:
        arch = Path(tmp) / "tiny.json"
        arch.write_text(json.dumps(TINY))
        subprocess.run([str(venv / "bin/python"), "-m", "trainers.f5", str(manifest), "--out", f"{tmp}/run",
                        "--pretrained", "none", "--model-config", str(arch), "--epochs", str(args.epochs),
                        "--frames-per-batch", str(FRAMES), "--num-workers", "0", "--quiet", "--lr", "1e-4"],
                       check=True, env=env, cwd=ROOT)
        log = [line.split("\t") for line in (Path(tmp) / "run/train-log.tsv").read_text().splitlines()[1:]]
        steps = int(log[-1][1])
        seconds = sum(float(r[4]) for r in log)
        data_seconds = sum(float(r[5]) for r in log)
        result["ttsrig"] = {"steps": steps, "seconds": round(seconds, 2), "steps_per_s": round(steps / seconds, 2),
                            "data_share": round(data_seconds / seconds, 3)}

    if not args.skip_upstream:
        up = CACHE / "upstream-venv"
        bootstrap(up, "v3")
        subprocess.run([str(up / "bin/uv"), "pip", "install", "--python", str(up / "bin/python"), "-q",
                        "accelerate", "datasets", "wandb"], check=True)
        with tempfile.TemporaryDirectory() as tmp:
            run = subprocess.run([str(up / "bin/python"), "-c", UPSTREAM, str(manifest), json.dumps(TINY),
                                  str(args.epochs), str(FRAMES), f"{tmp}/ckpt"], capture_output=True, text=True,
                                 cwd=tmp, env={**os.environ, "WANDB_MODE": "disabled"})
            if run.returncode != 0:
                print(run.stderr[-3000:], file=sys.stderr)
                return 1
            measured = json.loads(run.stdout.strip().splitlines()[-1])
            seconds, up_steps = measured["seconds"], measured["steps"]
        result["upstream"] = {"steps": up_steps, "seconds": round(seconds, 2),
                              "steps_per_s": round(up_steps / seconds, 2),
                              "note": "same frame budget; its own batch packing; mels computed per item from the audio"}
        result["ttsrig_over_upstream_steps_per_s"] = round(result["ttsrig"]["steps_per_s"] /
                                                           result["upstream"]["steps_per_s"], 2)
    return _record.write(args.out, result)


if __name__ == "__main__":
    sys.exit(main())
