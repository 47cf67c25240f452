"""envcheck/whispercpp_probe.py's random ggml Whisper, and whisper.cpp's real `whisper-cli` run the way ttsrig runs
it: tests/whisper_cpp.py finds one ($TTSRIG_TEST_WHISPER_CLI, PATH) or, under `bin/test --ci`, builds one; without
one those tests are skipped, saying so."""
from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from envcheck import cli
from voices import asr, screen
from envcheck.errors import TtsrigError
from envcheck import whispercpp_probe as probe
from tests import whisper_cpp
from tests.models import synth
from envcheck import asr_backends as transcribe

# The tensor names whisper.cpp loads, as src/whisper-arch.h of whisper.cpp 1.8 spells them (%d: the block).
BLOCK = ["mlp_ln.weight", "mlp_ln.bias", "mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias",
         "attn_ln.weight", "attn_ln.bias", "attn.query.weight", "attn.query.bias", "attn.key.weight",
         "attn.value.weight", "attn.value.bias", "attn.out.weight", "attn.out.bias"]
CROSS = [name.replace("attn", "cross_attn", 1) for name in BLOCK if name.startswith("attn")]
WHISPER_ARCH = (["encoder.positional_embedding", "encoder.conv1.weight", "encoder.conv1.bias", "encoder.conv2.weight",
                 "encoder.conv2.bias", "encoder.ln_post.weight", "encoder.ln_post.bias"]
                + ["encoder.blocks.%d." + n for n in BLOCK]
                + ["decoder.positional_embedding", "decoder.token_embedding.weight", "decoder.ln.weight",
                   "decoder.ln.bias"]
                + ["decoder.blocks.%d." + n for n in BLOCK + CROSS])
DATA = Path(__file__).parent / "data" / "asr"


def read_ggml(data: bytes) -> dict:
    """Walk a ggml Whisper file as whisper.cpp's loader does; fails on any byte out of place."""
    at = 0

    def take(fmt: str):
        nonlocal at
        values = struct.unpack_from("<" + fmt, data, at)
        at += struct.calcsize("<" + fmt)
        return values

    header = take("12i")
    n_mel, n_fft = take("2i")
    filters = np.frombuffer(data, "<f4", n_mel * n_fft, at).reshape(n_mel, n_fft)
    at += 4 * n_mel * n_fft
    (count,) = take("i")
    tokens = []
    for _ in range(count):
        (length,) = take("i")
        tokens.append(data[at:at + length])
        at += length
    tensors = {}
    while at < len(data):
        n_dims, name_length, ftype = take("3i")
        dims = tuple(reversed(take(f"{n_dims}i")))
        name = data[at:at + name_length].decode()
        at += name_length
        size = int(np.prod(dims)) * (4 if ftype == 0 else 2)
        assert at + size <= len(data), f"{name} runs past the end of the file"
        tensors[name] = (dims, ftype, np.frombuffer(data, "<f4" if ftype == 0 else "<f2", int(np.prod(dims)), at))
        at += size
    return {"header": header, "filters": filters, "tokens": tokens, "tensors": tensors}


def test_the_random_model_has_whisper_cpps_layout():
    model = read_ggml(probe.ggml_bytes(probe.TINY))
    magic, n_vocab, audio_ctx, audio_state, audio_head, audio_layer, text_ctx, text_state, text_head, text_layer, \
        mels, ftype = model["header"]
    assert (magic, n_vocab, audio_ctx, text_ctx, mels, ftype) == (0x67676D6C, 51864, 1500, 448, 80, 1)
    assert (audio_state, audio_head, audio_layer, text_state, text_head, text_layer) == (64, 2, 1, 64, 2, 1)
    assert model["filters"].shape == (80, 201) and np.all(model["filters"] >= 0)
    assert np.all(model["filters"].sum(axis=1) > 0), "every mel band must see some frequency"
    assert len(model["tokens"]) == 50256 and len(set(model["tokens"])) == 50256  # the text tokens; the rest derived
    expected = {name % block if "%d" in name else name for name in WHISPER_ARCH for block in range(1)}
    assert set(model["tensors"]) == expected


def test_tensors_are_stored_as_the_converter_stores_an_f16_model():
    tensors = read_ggml(probe.ggml_bytes(probe.TINY))["tensors"]
    assert tensors["decoder.token_embedding.weight"][:2] == ((51864, 64), 1)
    assert tensors["encoder.conv1.weight"][:2] == ((64, 80, 3), 1)
    assert tensors["encoder.conv1.bias"][:2] == ((64, 1), 0)  # conv biases as [d, 1], float32
    assert tensors["encoder.positional_embedding"][:2] == ((1500, 64), 0)
    assert tensors["decoder.blocks.0.mlp.0.weight"][:2] == ((256, 64), 1)  # whisper.cpp's MLP is 4 x n_state wide
    assert tensors["decoder.blocks.0.cross_attn_ln.weight"][1] == 0
    assert all(np.all(np.isfinite(values)) for _, _, values in tensors.values())
    assert abs(float(tensors["encoder.ln_post.weight"][2].mean()) - 1.0) < 0.05  # layer norms start near 1


def test_the_tiny_en_shape_writes_tiny_ens_header():
    shape = probe.TINY_EN
    assert (shape.d_model, shape.heads, shape.encoder_layers, shape.ffn) == (384, 6, 4, 4 * 384)



def test_a_scripted_decoder_adds_nothing_to_the_residual_and_points_each_position_at_its_token():
    script = [1000 + 7 * i for i in range(12)]
    tensors = read_ggml(probe.ggml_bytes(probe.TINY, script=script))["tensors"]
    for name in ("attn.out.weight", "cross_attn.out.bias", "mlp.2.weight"):
        assert not np.any(tensors[f"decoder.blocks.0.{name}"][2]), name
    assert np.any(tensors["encoder.blocks.0.mlp.2.weight"][2])  # the encoder stays random
    embedding = tensors["decoder.token_embedding.weight"][2].reshape(51864, 64).astype("f4")
    positions = tensors["decoder.positional_embedding"][2].reshape(448, 64)
    best = [int(np.argmax(embedding @ positions[probe.PROMPT - 1 + i])) for i in range(len(script) + 2)]
    assert best == script + [probe.EOT, probe.EOT]
    with pytest.raises(ValueError, match="each token once"):
        probe.ggml_bytes(probe.TINY, script=[5, 5])

def test_the_model_is_written_atomically_and_deterministically(tmp_path):
    path = probe.ggml_model(tmp_path / "m.bin")
    assert path.read_bytes() == probe.ggml_bytes(probe.TINY, seed=0) != probe.ggml_bytes(probe.TINY, seed=1)
    assert [p.name for p in tmp_path.iterdir()] == ["m.bin"]


def test_a_captured_whisper_cli_text_file_reads_as_its_words():
    """whisper-cli's own -otxt file (data/asr/whisper-cli.captured.txt: two 30 s windows, a line each)."""
    data = (DATA / "whisper-cli.captured.txt").read_bytes()
    lines = data.decode().splitlines()
    assert len(lines) == 2 and all(line.startswith(" w") for line in lines)
    words = " ".join(transcribe.decode_whisper_text(data).split()).split()
    assert words == [w for line in lines for w in line.split()] and len(words) > 100


@pytest.fixture(scope="module")
def whisper_cli() -> str:
    return whisper_cpp.required()


def test_the_real_whisper_cli_loads_the_model_and_ttsrig_reads_its_text(whisper_cli, tmp_path):
    model = probe.ggml_model(tmp_path / "ggml-tiny-random.bin", answer=probe.ANSWER)
    backend = transcribe.WhisperCpp(whisper_cli, model, language="en", beam_size=5)
    assert backend(synth.speech("The bath was full of warm water."), 22_050) == "w%d" % probe.ANSWER



def test_the_real_whisper_cli_says_a_scripted_decoders_tokens_exactly(whisper_cli, tmp_path):
    """What bench_screen.py --whisper-cli relies on: whisper.cpp decodes the script, no more, no less."""
    script = [1000 + 7 * i for i in range(12)]
    model = probe.ggml_model(tmp_path / "scripted.bin", script=script)
    backend = transcribe.WhisperCpp(whisper_cli, model, language="en", beam_size=5)
    heard = backend(synth.speech("After a long day, Clare and her brother walked home."), 22_050)
    assert heard.split() == ["w%d" % token for token in script]

def test_the_real_whisper_cli_failing_to_load_a_model_is_one_line(whisper_cli, tmp_path):
    model = tmp_path / "ggml-base.en.bin"
    model.write_bytes(b"not a model")
    backend = transcribe.WhisperCpp(whisper_cli, model, language="en")
    with pytest.raises(TtsrigError, match=r"failed on a clip: error: failed to initialize whisper context$"):
        backend(synth.speech("Hello."), 22_050)


def test_the_probe_reports_the_builds_cpu_features(whisper_cli):
    assert "CPU :" in probe.system_info(whisper_cli)
    record = json.loads(probe.transcribe(whisper_cli))
    assert record["heard"] == record["expected"] == "w%d" % probe.ANSWER


@pytest.mark.ci_only
def test_whisper_cpp_runs_ttsrigs_backend_on_an_emulated_phenom(whisper_cli):
    """The pre-v2 claim of requirements/README.md: a whisper.cpp build without AVX runs ttsrig's command line
    under -cpu phenom (the evidence records show a build for this host's CPU dying there)."""
    if whisper_cli != str(whisper_cpp.CACHE / "whisper-cli"):
        pytest.skip(f"{whisper_cli} was not built for plain x86-64 here; the test needs tests/whisper_cpp.py's build")
    record = json.loads(probe.transcribe(whisper_cli, emulate="phenom"))
    assert record["heard"] == record["expected"]


def test_the_whisper_cpp_record_names_the_binary_by_hash_and_says_how_it_ended(tmp_path, capsys):
    fake = tmp_path / "whisper-cli"
    fake.write_text("#!/bin/sh\necho 'whisper-cli: this build died' >&2\nexit 3\n")
    fake.chmod(0o755)
    out = tmp_path / "record.txt"
    code = cli.main(["evidence", "--checks", "whisper.cpp", "--whisper-cli", str(fake), "--python", sys.executable,
                     "--out", str(out), "--only", "whisper.cpp build (system_info)"])
    record = out.read_text()
    assert f"# whisper-cli: {fake} (sha256 " in record and "the only emulated program" in record
    [row] = [line for line in record.splitlines() if line.startswith("whisper.cpp build")]
    assert code == 1 and " failed " in row and "exit 3: whisper-cli: this build died" in row, row


def test_a_whisper_cli_killed_by_a_signal_is_named_with_the_fix(tmp_path):
    """A build carried from a newer CPU dies with SIGILL (the evidence records); the message says so, not the
    last line whisper.cpp logged before it died."""
    fake = tmp_path / "whisper-cli"
    fake.write_text("#!/bin/sh\necho 'system_info: n_threads = 2' >&2\nkill -ILL $$\n")
    fake.chmod(0o755)
    backend = transcribe.WhisperCpp(str(fake), tmp_path / "m.bin", language="en")
    with pytest.raises(TtsrigError) as caught:
        backend(synth.speech("Hello."), 22_050)
    message = str(caught.value)
    assert "killed by SIGILL: this build uses an instruction this CPU lacks" in message
    assert "build whisper.cpp on this machine" in message
    assert "system_info" not in message and "\n" not in message


def test_the_weight_type_of_a_ggml_file_is_read_from_its_header(tmp_path):
    model = probe.ggml_model(tmp_path / "m.bin")
    assert asr.ggml_weight_type(model) == "f16"
    quantized = tmp_path / "m-q8_0.bin"  # whisper-quantize's header: the type plus 1000 x the quantisation version
    quantized.write_bytes(model.read_bytes()[:44] + struct.pack("<i", 2007) + model.read_bytes()[48:])
    assert asr.ggml_weight_type(quantized) == "q8_0"
    (tmp_path / "short.bin").write_bytes(b"ggml")
    assert asr.ggml_weight_type(tmp_path / "short.bin") is None and asr.ggml_weight_type(tmp_path / "none") is None


@pytest.mark.parametrize("f16c, weights, advised", [(False, 1, True), (True, 1, False), (None, 1, False),
                                                     (False, 2007, False)])
def test_an_f16_model_on_a_cpu_without_f16c_gets_the_q8_0_advice(tmp_path, monkeypatch, f16c, weights, advised):
    """The benchmark's finding (tests/bench/README.md): whisper.cpp without F16C converts f16 weights in software."""
    from envcheck import probe as cpu

    monkeypatch.setattr(cpu, "cpu_has", lambda feature: f16c if feature == "f16c" else True)
    data = probe.ggml_bytes(probe.TINY)
    model = tmp_path / "ggml-tiny.en.bin"
    model.write_bytes(data[:44] + struct.pack("<i", weights) + data[48:])
    note = asr.whisper_cpp_speed_note(transcribe.WhisperCpp("whisper-cli", model, language="en"))
    if advised:
        assert note.startswith("this CPU has no F16C") and f"whisper-quantize {model} " in note
        assert str(tmp_path / "ggml-tiny.en-q8_0.bin") in note and "--asr-beam 1" in note
    else:
        assert note is None
    assert asr.whisper_cpp_speed_note(asr.Scripted({})) is None


def test_the_screen_shows_the_advice_beside_its_results(whisper_cli, tmp_path, monkeypatch):
    from envcheck import probe as cpu
    from tests.models import test_screen

    monkeypatch.setattr(cpu, "cpu_has", lambda feature: feature != "f16c")
    folder = tmp_path / "auditions"
    clean = test_screen.joined([test_screen.speech(sentence) for sentence in test_screen.SENTENCES])
    test_screen.make_folder(folder, {"clean": clean}, ["clean"])
    model = probe.ggml_model(tmp_path / "ggml-tiny-random.bin", answer=probe.ANSWER)
    backend = transcribe.WhisperCpp(whisper_cli, model, language="en", beam_size=1)
    result = screen.screen(folder, backend=backend)
    assert result["asr"]["backend"] == "whisper.cpp" and "no F16C" in result["asr"]["note"]
    assert "note: this CPU has no F16C" in "\n".join(screen.summary_lines(result))
