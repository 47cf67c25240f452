"""envcheck/asr_probe.py's size-parametric Whisper builder: the probe's tiny model stays as it was, and the
tiny.en-shaped one (tests/bench/bench_screen.py --random-tiny-en) has tiny.en's sizes and special-token ids."""
from __future__ import annotations

import pytest

from envcheck import asr_probe


def test_the_default_shape_is_the_probes_tiny_model():
    assert asr_probe.TINY == asr_probe.Shape("ttsrig-tiny-random", 64, 2, 128, 1, 1, full_vocabulary=False)
    assert (asr_probe.D_MODEL, asr_probe.HEADS, asr_probe.FFN, asr_probe.MELS) == (64, 2, 128, 80)
    assert asr_probe.vocabulary_of(asr_probe.TINY) == asr_probe.vocabulary() and len(asr_probe.vocabulary()) == 33


def test_the_tiny_en_shape_has_tiny_ens_sizes():
    shape = asr_probe.TINY_EN
    assert (shape.d_model, shape.heads, shape.ffn, shape.encoder_layers, shape.decoder_layers) == (384, 6, 1536, 4, 4)
    assert (asr_probe.ENCODER_POSITIONS, asr_probe.DECODER_POSITIONS) == (1500, 448)


def test_the_english_vocabulary_puts_each_special_token_at_its_whisper_id():
    tokens = asr_probe.english_vocabulary()
    assert len(tokens) == 51864 and len(set(tokens)) == len(tokens)
    ids = {t: i for i, t in enumerate(tokens)}
    assert ids["<|endoftext|>"] == 50256 and ids["<|startoftranscript|>"] == 50257 and ids["<|en|>"] == 50258
    assert [ids[t] for t in ("<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>",
                             "<|nocaptions|>", "<|notimestamps|>")] == list(range(50357, 50363))
    assert ids["<|0.00|>"] == 50363 and tokens[-1] == "<|30.00|>"


def test_a_tiny_en_shaped_model_has_the_arrays_ctranslate2_expects():
    np = pytest.importorskip("numpy")
    tokens = asr_probe.english_vocabulary()
    model = asr_probe.fake_model(np.random.default_rng(0), len(tokens), asr_probe.TINY_EN, eot=50256)
    encoder, decoder = model.model.encoder, model.model.decoder
    assert encoder.conv1.weight.shape == (384, 80, 3) and encoder.conv2.weight.shape == (384, 384, 3)
    assert encoder.embed_positions.weight.shape == (1500, 384) and decoder.embed_positions.weight.shape == (448, 384)
    assert len(encoder.layers) == len(decoder.layers) == 4 and not hasattr(encoder.layers[0], "encoder_attn")
    layer = decoder.layers[0]
    assert layer.fc1.weight.shape == (1536, 384) and layer.encoder_attn.q_proj.weight.shape == (384, 384)
    assert model.proj_out.weight is decoder.embed_tokens.weight and decoder.embed_tokens.weight.shape == (51864, 384)
    assert (model.config.encoder_attention_heads, model.config.begin_suppress_tokens) == (6, [50256])


def test_the_tiny_en_tokenizer_resolves_the_specials_faster_whisper_asks_for_by_name():
    tokenizers = pytest.importorskip("tokenizers")
    tokenizer = tokenizers.Tokenizer.from_str(asr_probe.tokenizer_json(asr_probe.english_vocabulary()))
    assert tokenizer.get_vocab_size() == 51864
    assert [tokenizer.token_to_id(t) for t in ("<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>")] == [
        50256, 50257, 50362]
    assert tokenizer.encode("-").ids == [0]  # unknown text is the first token, as in the probe's vocabulary
