"""Tiny checkpoints and a random vocoder for the voice tests (no downloads)."""
from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import threading
from pathlib import Path

import torch
import yaml

TINY_F5 = {"dim": 64, "depth": 2, "heads": 2, "dim_head": 32, "ff_mult": 2, "text_dim": 32, "conv_layers": 1,
           "text_mask_padding": True}


def vocoder(folder: Path, dim: int = 64, intermediate: int = 128, layers: int = 2) -> Path:
    """A randomly initialised Vocos in the layout of charactr/vocos-mel-24khz (config.yaml + weights);
    dim 512, intermediate 1536, layers 8 is the published size."""
    from vocos import Vocos

    folder.mkdir(parents=True, exist_ok=True)
    config = {"feature_extractor": {"class_path": "vocos.feature_extractors.MelSpectrogramFeatures",
                                    "init_args": {"sample_rate": 24000, "n_fft": 1024, "hop_length": 256,
                                                  "n_mels": 100, "padding": "center"}},
              "backbone": {"class_path": "vocos.models.VocosBackbone",
                           "init_args": {"input_channels": 100, "dim": dim, "intermediate_dim": intermediate,
                                         "num_layers": layers}},
              "head": {"class_path": "vocos.heads.ISTFTHead",
                       "init_args": {"dim": dim, "n_fft": 1024, "hop_length": 256, "padding": "center"}}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    torch.manual_seed(0)
    torch.save(Vocos.from_hparams(str(folder / "config.yaml")).state_dict(), folder / "pytorch_model.bin")
    return folder


def f5_run(out: Path, epochs: int = 3) -> Path:
    """A trainers.f5 run folder with `epochs` per-epoch checkpoints of a tiny random DiT (random init, no
    training: the voices only need loadable checkpoints of the real format)."""
    from trainers import f5_model as f5

    out.mkdir(parents=True, exist_ok=True)
    model, _ = f5.build_model(TINY_F5, f5.default_vocab())
    from safetensors.torch import save_file

    for epoch in range(1, epochs + 1):
        torch.manual_seed(epoch)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.01 * torch.randn_like(p))
        weights = {f"ema_model.{k}": v.clone() for k, v in f5.inference_state(model).items()}
        weights.update({"step": torch.tensor(epoch * 10), "initted": torch.tensor(True)})
        save_file(weights, out / f"epoch_{epoch:04d}.safetensors")
    (out / "run.json").write_text(json.dumps({"arch": TINY_F5, "vocab": f5.default_vocab()}))
    return out


def strong_config(path: Path, vocoder_dir: Path, **extra) -> Path:
    lines = {"checkpoint": "", "vocab": "", "model_config": "", "vocoder": str(vocoder_dir), "reference": "",
             "reference_text": "", "steps": 4, "cfg_strength": 2.0, "sway_sampling_coef": -1.0, "speed": 1.0, **extra}
    path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in lines.items()))
    return path


def styletts2_checkpoint(pieces: Path, out: Path) -> Path:
    """The tiny pretrain as a run's checkpoint, with the run's config.yml beside it."""
    from trainers import styletts2_pieces

    out.mkdir(parents=True, exist_ok=True)
    config = styletts2_pieces.make_config(styletts2_pieces.find(pieces))
    styletts2_pieces.save_config(config, out / "config.yml")
    shutil.copy(pieces / "Models/LibriTTS/epochs_2nd_00020.pth", out / "epoch_2nd_00020.pth")
    return out / "epoch_2nd_00020.pth"


def chromium(url: str, *flags: str) -> subprocess.CompletedProcess:
    """What headless Chromium renders of url (the DOM on stdout), with 8 s of virtual time for its scripts."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "Debian's chromium is needed (bin/test installs it)"
    return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=8000",
                           *flags, "--dump-dom", url], capture_output=True, text=True, timeout=180)


def page_selftest(folder: Path) -> tuple[dict, str]:
    """The audition page of folder, served by `audition serve`'s server and loaded in headless Chromium: its
    ?selftest=1 report (what the page shows) and its DOM."""
    from voices import audition

    httpd = audition.server(folder)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        page = chromium(f"http://127.0.0.1:{httpd.server_address[1]}/index.html?selftest=1")
    finally:
        httpd.shutdown()
        httpd.server_close()
    found = re.search(r'<pre id="selftest">(.*?)</pre>', page.stdout, re.S)
    assert found, page.stdout[-3000:] + page.stderr[-3000:]
    return json.loads(html.unescape(found.group(1))), page.stdout  # the <pre>'s text, entities and all
