"""The size of the model a settings file or a checkpoint's metadata describes, bounded as a whole before
anything is built (trainers/config_check.py, trainers/f5_arch.py; without torch). How close the estimates are to
the models built: tests/models/test_bounded_inputs.py."""
from __future__ import annotations

import copy

import pytest

from envcheck.errors import TtsrigError
from trainers import config_check, f5_arch

F5_BASE = {"dim": 1024, "depth": 22, "heads": 16, "ff_mult": 2, "text_dim": 512, "text_mask_padding": True,
           "qk_norm": None, "conv_layers": 4, "pe_attn_head": None, "attn_backend": "torch", "attn_mask_enabled": False}
# the LibriTTS pretrain's model_params (styletts2's Configs/config_libritts.yml)
ST2_LIBRITTS = {
    "multispeaker": True, "dim_in": 64, "hidden_dim": 512, "max_conv_dim": 512, "n_layer": 3, "n_mels": 80,
    "n_token": 178, "max_dur": 50, "style_dim": 128, "dropout": 0.2,
    "decoder": {"type": "hifigan", "resblock_kernel_sizes": [3, 7, 11], "upsample_rates": [10, 5, 3, 2],
                "upsample_initial_channel": 512, "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
                "upsample_kernel_sizes": [20, 10, 6, 4]},
    "slm": {"model": "microsoft/wavlm-base-plus", "sr": 16000, "hidden": 768, "nlayers": 13, "initial_channel": 64},
    "diffusion": {"embedding_mask_proba": 0.1,
                  "transformer": {"num_layers": 3, "num_heads": 8, "head_features": 64, "multiplier": 2},
                  "dist": {"sigma_data": 0.2, "estimate_sigma_data": True, "mean": -3.0, "std": 1.0}},
}
ASR = {"input_dim": 80, "hidden_dim": 256, "n_token": 178, "token_embedding_dim": 512}
PLBERT = {"vocab_size": 178, "hidden_size": 768, "num_attention_heads": 12, "intermediate_size": 2048,
          "max_position_embeddings": 512, "num_hidden_layers": 12, "dropout": 0.1}


def refusal(call) -> str:  # noqa: ANN001
    with pytest.raises(TtsrigError) as refused:
        call()
    message = str(refused.value)
    assert "\n" not in message
    return message


def test_the_real_models_are_well_within_the_bound():
    assert 330e6 < f5_arch.parameters(F5_BASE, 2545) < 340e6  # 337.1 M built
    assert 160e6 < config_check.styletts2_parameters(ST2_LIBRITTS) < 175e6  # 172.1 M built, PL-BERT aside
    assert 7e6 < config_check.asr_parameters(ASR) < 8e6 and 6e6 < config_check.plbert_parameters(PLBERT) < 7e6
    assert f5_arch.check_arch(dict(F5_BASE), "model_config x") == F5_BASE
    config_check.check_styletts2_size(ST2_LIBRITTS, "config.yml: model_params", "fix")
    config_check.check_piece_size(ASR, "ASR", "asr", "fix")
    config_check.check_piece_size(PLBERT, "PL-BERT", "plbert", "fix")
    assert 2.5 * 337e6 < config_check.MAX_PARAMETERS < 5 * 337e6


@pytest.mark.parametrize("change, needle", [
    ({"depth": 1 << 20}, "depth = 1048576 should be a whole number from 1 to 1024"),
    ({"depth": 1025}, "from 1 to 1024"),
    ({"conv_layers": 100_000}, "conv_layers = 100000 should be a whole number from 0 to 1024"),
    ({"dim": 1 << 16}, "describes a model of about 980,400 M parameters"),
    ({"heads": 1 << 20, "dim_head": 1 << 20}, "describes a model of about"),
    ({"ff_mult": 1 << 20}, "describes a model of about"),
    ({"text_dim": 1 << 20, "conv_layers": 4}, "describes a model of about"),
], ids=["depth-2^20", "depth-1025", "conv-layers", "dim", "heads", "ff-mult", "text-dim"])
def test_an_f5_arch_whose_sizes_multiply_beyond_any_model_is_one_line(change, needle):
    message = refusal(lambda: f5_arch.check_arch({**F5_BASE, **change}, "x.safetensors (metadata ttsrig.f5.arch)"))
    assert message.startswith("x.safetensors (metadata ttsrig.f5.arch)") and needle in message
    assert f5_arch.FIX in message
    if "describes" in needle:
        assert "more than the 1,000 M ttsrig builds (F5TTS_v1_Base has 337 M" in message


def test_run_json_and_a_recorded_arch_are_bounded_the_same_way():
    message = refusal(lambda: f5_arch.from_run({"arch": {**F5_BASE, "dim": 1 << 20}, "vocab": None}, "run.json"))
    assert message.startswith("run.json: arch describes a model of about")
    # the vocab's embedding counts when the caller knows its size
    refusal(lambda: f5_arch.check_arch({**F5_BASE, "text_dim": 1 << 20}, "x", vocab_size=2545))
    f5_arch.check_arch({**F5_BASE, "text_dim": 1 << 10}, "x", vocab_size=2545)


def st2(**changes) -> dict:
    params = copy.deepcopy(ST2_LIBRITTS)
    for dotted, value in changes.items():
        *sections, key = dotted.split("__")
        node = params
        for section in sections:
            node = node[section]
        node[key] = value
    return params


@pytest.mark.parametrize("params, needle", [
    (st2(n_layer=100_000), "n_layer = 100000 layers, more than the 1024"),
    (st2(hidden_dim=1 << 20), "describes a model of about"),
    (st2(hidden_dim=10 ** 400), "more than 10^18 parameters"),  # YAML integers have no bound
    (st2(style_dim=1 << 20), "describes a model of about"),
    (st2(n_token=10 ** 9), "describes a model of about"),
    (st2(decoder__upsample_initial_channel=1 << 20), "describes a model of about"),
    (st2(decoder__upsample_rates=[2] * 5000, decoder__upsample_kernel_sizes=[4] * 5000), "upsample_rates = 5000"),
    (st2(decoder__upsample_rates=[10 ** 6, 10 ** 6, 2]), "describes a model of about"),
    (st2(diffusion__transformer__num_heads=1 << 20), "describes a model of about"),
    (st2(diffusion__transformer__num_layers=10 ** 6), "num_layers = 1000000 layers"),
    (st2(slm__hidden=1 << 20, slm__initial_channel=1 << 10), "describes a model of about"),
], ids=["n-layer", "hidden", "hidden-10^400", "style", "tokens", "decoder-channels", "decoder-levels",
        "upsample-rates", "heads", "transformer-layers", "slm"])
def test_styletts2_model_params_whose_sizes_multiply_beyond_any_model_are_one_line(params, needle):
    message = refusal(lambda: config_check.check_styletts2_size(params, "run/config.yml: model_params", "Fix it."))
    assert message.startswith("run/config.yml: model_params") and needle in message and message.endswith("Fix it.")


def test_styletts2_values_of_the_wrong_kind_are_left_to_their_check():
    for params in (st2(n_layer="3"), st2(hidden_dim=None), st2(decoder="hifigan"), st2(diffusion=[1]), ["x"]):
        config_check.check_styletts2_size(params, "x", "fix")  # the estimate never raises anything else


@pytest.mark.parametrize("piece, params, needle", [
    ("ASR", {**ASR, "n_layers": 100_000}, "n_layers = 100000 layers"),
    ("ASR", {**ASR, "hidden_dim": 1 << 20}, "describes a model of about"),
    ("PL-BERT", {**PLBERT, "hidden_size": 1 << 20}, "describes a model of about"),
    ("PL-BERT", {**PLBERT, "inner_group_num": 5000}, "inner_group_num = 5000 layers"),
])
def test_the_asr_and_plbert_configs_are_bounded_too(piece, params, needle):
    message = refusal(lambda: config_check.check_piece_size(params, piece, f"{piece} config c.yml", "fix"))
    assert needle in message
    # PL-BERT shares its layers: num_hidden_layers repeats them without allocating more
    config_check.check_piece_size({**PLBERT, "num_hidden_layers": 1 << 20}, "PL-BERT", "p", "fix")
