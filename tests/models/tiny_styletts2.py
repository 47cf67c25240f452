"""A reduced StyleTTS2 and tiny random pretrained pieces, saved in the upstream layout (no downloads).

What can shrink shrinks (layers, the diffusion transformer, PL-BERT, ASR, WavLM, the HiFi-GAN's kernels);
what is fixed by the package's code stays (hidden 512, 80 mels, style 128, 178 tokens, hop 300).
"""
from __future__ import annotations

import copy
from pathlib import Path

import munch
import torch
import yaml

MODEL_PARAMS = {
    "multispeaker": True, "dim_in": 16, "hidden_dim": 512, "max_conv_dim": 512, "n_layer": 1, "n_mels": 80,
    "n_token": 178, "max_dur": 50, "style_dim": 128, "dropout": 0.2,
    "decoder": {"type": "hifigan", "resblock_kernel_sizes": [3], "upsample_rates": [10, 5, 3, 2],
                "upsample_initial_channel": 512, "resblock_dilation_sizes": [[1, 3, 5]],
                "upsample_kernel_sizes": [20, 10, 6, 4]},
    "slm": {"model": "", "sr": 16000, "hidden": 32, "nlayers": 3, "initial_channel": 8},
    "diffusion": {"embedding_mask_proba": 0.1,
                  "transformer": {"num_layers": 1, "num_heads": 2, "head_features": 16, "multiplier": 1},
                  "dist": {"sigma_data": 0.2, "estimate_sigma_data": True, "mean": -3.0, "std": 1.0}},
}
ASR = {"input_dim": 80, "hidden_dim": 32, "n_token": 178, "token_embedding_dim": 32, "n_layers": 1}
TINY_WAVLM = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
              "conv_dim": (16, 16, 16, 16, 16, 16, 16), "num_conv_pos_embeddings": 16,
              "num_conv_pos_embedding_groups": 2}
PLBERT = {"vocab_size": 178, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64,
          "max_position_embeddings": 512, "num_hidden_layers": 1, "embedding_size": 32}


def converge_spectral_norms(model) -> None:
    """A trained model's spectral-norm vectors have converged; freshly initialised ones have not, and in eval
    mode (where the recipe keeps the style encoders) they are never updated: run the power iteration, as
    training would have, so the tiny pretrain behaves like a real one."""
    import torch.nn.functional as F

    with torch.no_grad():
        for key in model:
            for module in model[key].modules():
                if hasattr(module, "weight_u") and hasattr(module, "weight_orig"):
                    w = module.weight_orig.reshape(module.weight_orig.shape[0], -1)
                    u, v = module.weight_u, module.weight_v
                    for _ in range(100):
                        v = F.normalize(w.t() @ u, dim=0)
                        u = F.normalize(w @ v, dim=0)
                    module.weight_u.copy_(u)
                    module.weight_v.copy_(v)


def full_size() -> dict:
    """The real architecture, from the configs the styletts2 wheel ships (for the GPU benchmark)."""
    from importlib.resources import files

    pkg = files("styletts2")
    return {"model_params": yaml.safe_load(pkg.joinpath("Configs/config_libritts.yml").read_text())["model_params"],
            "asr": yaml.safe_load(pkg.joinpath("Utils/ASR/config.yml").read_text())["model_params"],
            "plbert": yaml.safe_load(pkg.joinpath("Utils/PLBERT/config.yml").read_text())["model_params"],
            "wavlm": {}}  # WavLMConfig's defaults are the base size


def make(root: Path, *, legacy_pretrain: bool = True, sizes: dict | None = None) -> Path:
    """Write config, pretrain, ASR, JDC, PL-BERT and WavLM under root (random weights); returns root.
    `sizes` (see full_size) replaces the reduced sizes."""
    sizes = sizes or {"model_params": MODEL_PARAMS, "asr": ASR, "plbert": PLBERT, "wavlm": TINY_WAVLM}
    asr_params, plbert_params = sizes["asr"], sizes["plbert"]
    from styletts2.Utils.ASR.models import ASRCNN
    from styletts2.Utils.JDC.model import JDCNet
    from styletts2.Utils.PLBERT.util import CustomAlbert
    from transformers import AlbertConfig, WavLMConfig, WavLMModel

    from trainers import styletts2_model

    torch.manual_seed(0)
    (root / "Utils/ASR").mkdir(parents=True)
    (root / "Utils/ASR/config.yml").write_text(yaml.safe_dump({"model_params": asr_params}))
    torch.save({"model": ASRCNN(**asr_params).state_dict()}, root / "Utils/ASR/epoch_00080.pth")
    (root / "Utils/JDC").mkdir(parents=True)
    torch.save({"net": JDCNet(num_class=1, seq_len=192).state_dict()}, root / "Utils/JDC/bst.t7")
    (root / "Utils/PLBERT").mkdir(parents=True)
    (root / "Utils/PLBERT/config.yml").write_text(yaml.safe_dump({"model_params": plbert_params}))
    bert = CustomAlbert(AlbertConfig(**plbert_params))
    bert_state = {f"module.encoder.{k}": v for k, v in bert.state_dict().items()}
    # the published file has the position ids (a buffer older transformers saved); upstream's loader deletes them
    bert_state["module.encoder.embeddings.position_ids"] = torch.arange(plbert_params["max_position_embeddings"])[None]
    torch.save({"net": bert_state}, root / "Utils/PLBERT/step_1000000.t7")
    WavLMModel(WavLMConfig(**sizes["wavlm"])).save_pretrained(root / "wavlm-base-plus")
    params = copy.deepcopy(sizes["model_params"])
    params["slm"]["model"] = str(root / "wavlm-base-plus")
    (root / "Models/LibriTTS").mkdir(parents=True)
    config = {"model_params": params, "preprocess_params": {"sr": 24000, "spect_params": {
        "n_fft": 2048, "win_length": 1200, "hop_length": 300}}}
    (root / "Models/LibriTTS/config.yml").write_text(yaml.safe_dump(config))
    pieces = {"asr_config": root / "Utils/ASR/config.yml", "asr": root / "Utils/ASR/epoch_00080.pth",
              "jdc": root / "Utils/JDC/bst.t7", "plbert_config": root / "Utils/PLBERT/config.yml",
              "plbert": root / "Utils/PLBERT/step_1000000.t7"}
    model = styletts2_model.build({"model_params": params, "pieces": {k: str(v) for k, v in pieces.items()}})
    converge_spectral_norms(model)
    pretrain = {"net": {key: {f"module.{k}": v for k, v in model[key].state_dict().items()} for key in model},
                "epoch": 19, "iters": 1000}
    if legacy_pretrain:  # the published file pickles more than tensors: loading it needs trust
        pretrain["optimizer_meta"] = munch.Munch(lr=1e-4)
    torch.save(pretrain, root / "Models/LibriTTS/epochs_2nd_00020.pth")
    return root
