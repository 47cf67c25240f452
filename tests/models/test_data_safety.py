"""Data safety: trainers.prepare never writes, moves or deletes a recording, and bad data files end in one
line naming the file (and line) and the fix, before any training starts. Every test hashes the user's INPUT
tree before and after each run, refused or not."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from envcheck.digests import file_sha256
from envcheck.errors import TtsrigError
from tests.models import synth
from envcheck import asr_backends as transcribe
from trainers import manifest, prepare
from trainers.prepare import Settings

ROOT = Path(__file__).resolve().parents[2]
SENTENCES = ["the bath was full of warm water", "a good book on the shelf", "happy days are here again"]
TINY_F5 = {"dim": 64, "depth": 2, "heads": 2, "dim_head": 32, "ff_mult": 2, "text_dim": 32, "conv_layers": 1,
           "text_mask_padding": True}


def tree(root: Path, leave_out: Path | None = None) -> dict[str, str]:
    """Every entry under root: a file's sha256, a link's target, or 'folder' (leave_out: a sub-tree)."""
    found = {}
    for path in sorted(root.rglob("*")):
        if leave_out is not None and (path == leave_out or leave_out in path.parents):
            continue
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            found[rel] = f"link -> {os.readlink(path)}"
        elif path.is_dir():
            found[rel] = "folder"
        else:
            found[rel] = file_sha256(path)
    return found


def lj_dataset(root: Path) -> Path:
    for i, text in enumerate(SENTENCES):
        synth.write(root / "wavs" / f"s{i}.wav", synth.speech(text))
    (root / "metadata.csv").write_text("".join(f"s{i}|{t}\n" for i, t in enumerate(SENTENCES)))
    return root


def run(root: Path, out: Path, transcriber=None, **settings) -> dict:
    settings.setdefault("mels", ("f5",))
    return prepare.prepare(root, out, Settings(**settings), transcriber, "cpu", progress=False)


def refused(root: Path, out: Path, match: str, transcriber=None, leave_out: Path | None = None) -> str:
    """prepare refuses with one line matching `match`, and every file under root is as it was."""
    before = tree(root, leave_out)
    with pytest.raises(TtsrigError, match=match) as err:
        run(root, out, transcriber)
    assert "\n" not in str(err.value)
    assert tree(root, leave_out) == before
    return str(err.value)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trainers.prepare", *args, "--quiet", "--mels", "f5",
                           "--transcribe", "none"], capture_output=True, text=True, cwd=ROOT)


def one_line_exit_2(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    return proc.stderr


# -- item 1: INPUT is never written, moved or deleted ----------------------------------------------

def test_output_equal_to_input_is_refused_also_through_a_link(tmp_path):
    root = lj_dataset(tmp_path / "in")
    refused(root, root, "is INPUT")
    refused(root / "wavs" / "..", root, "is INPUT")
    (tmp_path / "link").symlink_to(root)
    refused(root, tmp_path / "link", "is INPUT")
    before = tree(root)
    assert "is INPUT" in one_line_exit_2(cli(str(root), str(root)))
    assert tree(root) == before


def test_input_inside_output_is_refused(tmp_path):
    # the recordings in OUTPUT/wavs: the processed clips would be written over them
    out = tmp_path / "data"
    synth.transcribed(out / "wavs", SENTENCES, prefix="s")
    refused(out / "wavs", out, "lies inside OUTPUT")
    refused(out / "wavs", tmp_path, "lies inside OUTPUT")


def test_output_inside_input_is_left_out_of_the_scan(tmp_path):
    root = lj_dataset(tmp_path / "in")
    out = root / "prepared"
    before = tree(root)
    first = run(root, out)
    made = (out / "manifest.jsonl").read_bytes()
    again = run(root, out)
    assert (again["recordings_processed"], again["recordings_reused"], again["clips"]) == (0, 3, 3)
    assert (out / "manifest.jsonl").read_bytes() == made and first["rejected"] == again["rejected"] == {}
    assert {c.id for c in manifest.read(out / "manifest.jsonl")} == {"s0", "s1", "s2"}
    assert tree(root, leave_out=out) == before


def test_an_output_folder_linked_into_input_is_refused(tmp_path):
    root, out = lj_dataset(tmp_path / "in"), tmp_path / "set"
    run(root, out)
    (root / "metadata.csv").write_text((root / "metadata.csv").read_text().replace("good book", "fine book"))
    shutil.rmtree(out / "wavs")
    (out / "wavs").symlink_to(root / "wavs")  # a re-run would write and delete clips in the recordings
    assert "is a link to" in refused(root, out, "inside INPUT")



@pytest.mark.parametrize("sub", ["wavs", "mels/f5"])
def test_an_output_folder_linked_anywhere_else_is_refused(tmp_path, sub):
    # A link to a folder outside both INPUT and OUTPUT: a re-run would write its clips there and delete the
    # stale ones it finds listed (a file of the user's with a clip's name).
    root, out = lj_dataset(tmp_path / "in"), tmp_path / "set"
    run(root, out)
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(out / sub, elsewhere)
    shutil.rmtree(out / sub)
    (out / sub).symlink_to(elsewhere)
    (root / "metadata.csv").write_text((root / "metadata.csv").read_text().replace("good book", "fine book"))
    before = tree(elsewhere)
    message = refused(root, out, rf"{out / sub} is a link to {elsewhere}: prepare would write and remove")
    assert "inside INPUT" not in message and tree(elsewhere) == before

def test_only_a_folder_prepare_made_is_used_as_output(tmp_path, monkeypatch):
    root = lj_dataset(tmp_path / "in")
    other = lj_dataset(tmp_path / "other-voice")  # another data set of the user's, with the same clip names
    before = tree(other)
    refused(root, other, "already holds wavs.*no prepare-state.json")
    assert tree(other) == before
    # inside INPUT, an OUTPUT that holds recordings would leave them out of the data set without a word
    synth.transcribed(root / "alice", SENTENCES[:1])
    refused(root, root / "alice", "holds recordings")
    shutil.rmtree(root / "alice")
    # a first run stopped half-way made the folder: a re-run takes it as its own
    out = tmp_path / "set"
    real = prepare.process
    calls = []

    def stop_after_one(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(prepare, "process", stop_after_one)
    with pytest.raises(KeyboardInterrupt):
        run(root, out)
    monkeypatch.setattr(prepare, "process", real)
    assert (out / "wavs").is_dir() and run(root, out)["clips"] == 3


@pytest.mark.parametrize("first, second", [("a b.wav", "a_b.wav"), ("a.wav", "a.flac"), ("A.wav", "a.wav"),
                                           ("wavs/a.wav", "a.wav"), ("x/y.wav", "x__y.wav")])
def test_two_recordings_of_one_clip_id_are_refused_naming_both(tmp_path, first, second):
    root = tmp_path / "in"
    for name, text in ((first, SENTENCES[0]), (second, SENTENCES[1])):
        synth.write(root / name, synth.speech(text))
        (root / name).with_suffix(".txt").write_text(text)
    message = refused(root, tmp_path / "set", "would both become clip")
    assert str(root / first) in message and str(root / second) in message
    assert not (tmp_path / "set").exists()  # refused before anything was written


def test_a_recording_named_like_a_piece_of_a_split_one_is_refused(tmp_path):
    root = tmp_path / "in"
    long = [x for s in SENTENCES * 2 for x in (synth.speech(s), synth.silence(0.8))]
    synth.write(root / "book.wav", np.concatenate(long))  # no transcript: split and transcribed
    synth.write(root / "book-001.wav", synth.speech(SENTENCES[0]))
    (root / "book-001.txt").write_text(SENTENCES[0])
    message = refused(root, tmp_path / "set", "piece 1 of", transcriber=lambda wave, rate: "a piece")
    assert str(root / "book.wav") in message and str(root / "book-001.wav") in message
    # without a transcriber nothing is split: no clash
    before = tree(root)
    assert run(root, tmp_path / "set")["clips"] == 1 and tree(root) == before


def test_a_rerun_keeps_the_clip_of_a_renamed_recording(tmp_path):
    root, out = tmp_path / "in", tmp_path / "set"
    synth.transcribed(root, SENTENCES[:1], prefix="take ")
    run(root, out)
    (root / "take 0.wav").rename(root / "take_0.wav")  # the same clip id, a new recording key
    (root / "take 0.txt").rename(root / "take_0.txt")
    before = tree(root)
    summary = run(root, out)
    assert summary["clips"] == 1 and tree(root) == before
    for clip in manifest.read(out / "manifest.jsonl"):
        assert all(p.is_file() for p in prepare.outputs_of(clip, out)), clip


def test_rerun_cleanup_deletes_only_files_prepare_wrote(tmp_path):
    root, out = lj_dataset(tmp_path / "in"), tmp_path / "set"
    run(root, out)
    victims = [tmp_path / "victim.wav", out / "notes.wav", root / "wavs" / "s0.wav"]
    for victim in victims[:2]:
        victim.write_bytes(b"the user's")
    stale = out / "wavs" / "old.wav"
    stale.write_bytes(b"a clip of a recording since deleted")
    state = json.loads((out / prepare.STATE).read_text())
    fake = {"fingerprint": "x", "rejected": []}
    state["sources"].update({  # a hand-edited or foreign state naming files prepare never writes
        "gone1.wav": {**fake, "clips": [{"id": "v", "audio": "../victim.wav", "text": "t", "duration": 1,
                                         "speaker": "s", "mel_f5": "../../victim2.safetensors"}]},
        "gone2.wav": {**fake, "clips": [{"id": "notes", "audio": "notes.wav", "text": "t", "duration": 1,
                                         "speaker": "s"}]},
        "gone3.wav": {**fake, "clips": [{"id": "../../in/wavs/s0", "audio": "wavs/../../in/wavs/s0.wav", "text": "t",
                                         "duration": 1, "speaker": "s"}]},
        "gone4.wav": {**fake, "clips": [{"bogus": 1}]},
        "gone5.wav": "not an entry",
        "old.wav": {**fake, "clips": [{"id": "old", "audio": "wavs/old.wav", "text": "t", "duration": 1,
                                       "speaker": "s"}]}})
    (out / prepare.STATE).write_text(json.dumps(state))
    before = tree(root)
    assert run(root, out)["clips"] == 3
    assert tree(root) == before and all(v.is_file() for v in victims)
    assert not stale.exists()  # prepare's own clip of a removed recording still goes


def test_reuse_never_trusts_paths_from_a_foreign_state(tmp_path):
    root, out = lj_dataset(tmp_path / "in"), tmp_path / "set"
    run(root, out)
    state = json.loads((out / prepare.STATE).read_text())
    state["sources"]["wavs/s0.wav"]["clips"][0]["audio"] = "../in/wavs/s0.wav"
    (out / prepare.STATE).write_text(json.dumps(state))
    assert run(root, out)["recordings_processed"] == 1  # not reused: remade under its own name
    assert {c.audio for c in manifest.read(out / "manifest.jsonl")} == {f"wavs/s{i}.wav" for i in range(3)}


def test_unreadable_recording_is_counted_not_a_traceback(tmp_path, monkeypatch):
    root = lj_dataset(tmp_path / "in")
    real = prepare.file_sha256

    def denied(path):
        if Path(path).name == "s1.wav":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(prepare, "file_sha256", denied)
    summary = run(root, tmp_path / "set")
    assert summary["clips"] == 2 and summary["rejected"] == {"unreadable audio": 1}


def test_missing_input_and_output_that_is_a_file_fail_in_one_line(tmp_path):
    root = lj_dataset(tmp_path / "in")
    (tmp_path / "a-file").write_text("mine")
    refused(root, tmp_path / "a-file", "is a file, not a folder")
    refused(root, tmp_path / "a-file" / "set", "cannot make OUTPUT")
    assert (tmp_path / "a-file").read_text() == "mine"
    assert "is a file, not a folder" in one_line_exit_2(cli(str(root), str(tmp_path / "a-file")))
    assert "does not exist" in one_line_exit_2(cli(str(tmp_path / "nowhere"), str(tmp_path / "set")))


# -- item 8: one line for bad text and manifests ----------------------------------------------------

def test_transcripts_that_are_not_utf8_are_named_with_their_line(tmp_path):
    root = lj_dataset(tmp_path / "in")
    (root / "metadata.csv").write_bytes("s0|caf\u00e9 one\ns1|na\u00efve two\n".encode("utf-8")
                                        + "s2|d\u00e9j\u00e0 vu\n".encode("latin-1"))
    message = refused(root, tmp_path / "set", r"metadata.csv:3 is not UTF-8 text \(byte 0xe9\).*re-save")
    assert "iconv" in message
    stderr = one_line_exit_2(cli(str(root), str(tmp_path / "set2")))
    assert "metadata.csv:3 is not UTF-8" in stderr
    beside = tmp_path / "beside"
    synth.transcribed(beside, SENTENCES[:1])
    (beside / "c0.txt").write_bytes("first line\nsecond \u00ff\n".encode("cp1252"))
    refused(beside, tmp_path / "set3", r"c0.txt:2 is not UTF-8")
    # a UTF-8 BOM (Windows Notepad) is still fine
    (beside / "c0.txt").write_bytes(b"\xef\xbb\xbf" + SENTENCES[0].encode())
    assert run(beside, tmp_path / "set4")["clips"] == 1


HALF_A_CHARACTER = """#!{python}
# whisper.cpp's whisper-cli writing a multi-byte character cut in half (as it can between two tokens)
import sys
out = sys.argv[sys.argv.index("-of") + 1]
open(out + ".txt", "wb").write("caf\u00e9 ".encode() + b"\\xe2\\x82" + b" ok\\n")
"""


def test_whisper_cpp_output_that_is_not_utf8_loses_only_the_bad_bytes(tmp_path):
    script = tmp_path / "whisper-cli"
    script.write_text(HALF_A_CHARACTER.format(python=sys.executable))
    script.chmod(0o755)
    (tmp_path / "model.bin").write_text("ggml")
    whisper = transcribe.WhisperCpp(str(script), tmp_path / "model.bin", "en")
    assert whisper(synth.speech(SENTENCES[0], 24_000), 24_000) == "caf\u00e9 ok"


CLIP = {"id": "a", "audio": "wavs/a.wav", "mel_f5": "mels/f5/a.safetensors", "text": "x", "duration": 1.5,
        "speaker": "s"}


@pytest.mark.parametrize("change, words", [
    ({"duration": "abc"}, "duration 'abc' is not a number"),
    ({"duration": -1}, "duration -1 is not a number"),
    ({"duration": float("nan")}, "duration nan"),
    ({"duration": float("inf")}, "duration inf"),
    ({"duration": None}, "duration None"),
    ({"duration": True}, "duration True"),
    ({"id": 5}, "id is 5, not text"),
    ({"text": ["x"]}, "text is"),
    ({"audio": "../../etc/x.wav"}, "leaves the manifest's folder"),
    ({"mel_f5": "wavs/../../../etc/passwd.safetensors"}, "leaves the manifest's folder"),
    ({"audio": "/etc/passwd"}, "is not an audio file"),
    ({"mel_f5": "/etc/passwd"}, "is not a .safetensors file"),
    ({"audio": ""}, "not a file path"),
])
def test_a_malformed_manifest_line_is_named(tmp_path, change, words):
    path = tmp_path / "manifest.jsonl"
    path.write_text(json.dumps(CLIP) + "\n" + json.dumps({**CLIP, **change}) + "\n")
    with pytest.raises(TtsrigError, match="manifest.jsonl:2") as err:
        manifest.read(path)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_a_manifest_line_nested_without_end_is_named_not_a_recursion_error(tmp_path):
    path = tmp_path / "manifest.jsonl"
    path.write_text(json.dumps(CLIP) + "\n" + '{"id": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    with pytest.raises(TtsrigError, match=r"manifest.jsonl:2 is not JSON \(nested more than 64 levels deep\)"):
        manifest.read(path)
    proc = subprocess.run([sys.executable, "-m", "trainers.f5", str(path), "--out", str(tmp_path / "run"),
                           "--pretrained", "none"], capture_output=True, text=True, cwd=ROOT)
    one_line_exit_2(proc)


def test_manifest_paths_stay_in_its_folder_unless_written_absolute(tmp_path):
    path = tmp_path / "manifest.jsonl"
    absolute = {**CLIP, "audio": str(tmp_path / "elsewhere" / "a.wav")}
    path.write_text(json.dumps({**CLIP, "audio": "wavs/../wavs/a.wav"}) + "\n" + json.dumps(absolute) + "\n")
    assert [c.audio for c in manifest.read(path)] == ["wavs/../wavs/a.wav", absolute["audio"]]
    path.write_text(json.dumps({**CLIP, "mel_styletts2": "../set/mels/x.safetensors"}) + "\n")
    with pytest.raises(TtsrigError, match="manifest.jsonl:1: mel_styletts2 .* leaves the manifest's folder"):
        manifest.read(path)


def test_a_manifest_that_is_not_utf8_is_named_with_its_line(tmp_path):
    path = tmp_path / "manifest.jsonl"
    path.write_bytes(json.dumps(CLIP).encode() + b"\n" + json.dumps({**CLIP, "text": "\u00e9"}, ensure_ascii=False)
                     .encode("latin-1") + b"\n")
    with pytest.raises(TtsrigError, match=r"manifest.jsonl:2 is not UTF-8"):
        manifest.read(path)


# -- item 8: a missing or broken mel is found before the first epoch ---------------------------------

@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("safety")
    synth.transcribed(root / "in", SENTENCES)
    summary = prepare.prepare(root / "in", root / "set", Settings(), None, "cpu", progress=False)
    assert summary["clips"] == len(SENTENCES), summary
    return root / "set"


def damaged(prepared: Path, tmp_path: Path) -> tuple[Path, list]:
    """A copy of the prepared set with one F5 mel and one StyleTTS2 mel deleted and one F5 mel cut short."""
    copy = tmp_path / "set"
    shutil.copytree(prepared, copy)
    clips = manifest.read(copy / "manifest.jsonl")
    (copy / clips[0].mel_f5).unlink()
    data = (copy / clips[1].mel_f5).read_bytes()
    (copy / clips[1].mel_f5).write_bytes(data[: len(data) // 2])
    (copy / clips[2].mel_styletts2).unlink()
    return copy / "manifest.jsonl", clips


def test_check_files_names_missing_truncated_and_special_files(prepared, tmp_path):
    path, clips = damaged(prepared, tmp_path)
    with pytest.raises(TtsrigError) as err:
        manifest.check_files(path, clips, ("mel_f5",))
    message = str(err.value)
    assert message.startswith(f"2 of the 3 files {path} names are missing or corrupt")
    assert f"{clips[0].id}: " in message and "is missing" in message and "is corrupt" in message
    assert "re-run `python -m trainers.prepare" in message and "\n" not in message
    os.mkfifo(tmp_path / "pipe.wav")  # a pipe would block a reader forever
    clip = manifest.Clip("p", str(tmp_path / "pipe.wav"), "x", 1.0, "s")
    with pytest.raises(TtsrigError, match="is not a regular file"):
        manifest.check_files(path, [clip], ("audio",))


def test_f5_reports_missing_mels_before_the_first_epoch_even_with_workers(prepared, tmp_path):
    path, clips = damaged(prepared, tmp_path)
    (tmp_path / "tiny.json").write_text(json.dumps(TINY_F5))
    out = tmp_path / "run"
    code = "import sys\nfrom trainers.f5 import main\nsys.exit(main(sys.argv[1:]))\n"
    proc = subprocess.run([sys.executable, "-c", code, str(path), "--out", str(out), "--pretrained", "none",
                           "--model-config", str(tmp_path / "tiny.json"), "--num-workers", "1", "--epochs", "1",
                           "--frames-per-batch", "400", "--quiet"], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)
    stderr = one_line_exit_2(proc)
    assert "2 of the 3 files" in stderr and clips[0].id in stderr and "trainers.prepare" in stderr
    assert not list(out.glob("epoch_*")) and not (out / "train-log.tsv").exists()


def test_styletts2_reports_missing_mels_and_audio_before_training(prepared, tmp_path):
    from trainers.styletts2 import Data

    path, clips = damaged(prepared, tmp_path)
    with pytest.raises(TtsrigError, match=r"1 of the 6 files .* are missing or corrupt") as err:
        Data(path, log=lambda message: None)
    assert f"{clips[2].id}: " in str(err.value) and "is missing" in str(err.value)
    (path.parent / clips[0].audio).write_bytes(b"not audio")
    with pytest.raises(TtsrigError, match=r"2 of the 6 files .*is not readable audio"):
        Data(path, log=lambda message: None)


def test_output_on_a_read_only_disk_is_refused_before_any_clip(tmp_path, monkeypatch, capsys):
    from envcheck import paths

    recordings = tmp_path / "in"
    synth.transcribed(recordings, ["a calm and even voice"])
    real = os.statvfs

    class ReadOnly:  # root writes anywhere and mounting needs privileges: statvfs says read-only instead
        def __init__(self, result):
            self.f_flag = result.f_flag | os.ST_RDONLY

    monkeypatch.setattr(paths.os, "statvfs", lambda p: ReadOnly(real(p)))
    code = prepare.main([str(recordings), str(tmp_path / "set"), "--quiet", "--mels", "f5", "--transcribe", "none"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert f"cannot make OUTPUT {tmp_path / 'set'}" in err and "read-only file system" in err
    assert not (tmp_path / "set").exists()


# -- issue: trust, second round (links out of the data, a full disk, a crash, long names) --------------

SECRET = "root:$y$j9T$SECRETHASH:19000:0:99999:7:::"


def no_secret_under(folder: Path) -> None:
    for path in folder.rglob("*") if folder.exists() else []:
        if path.is_file():
            assert b"SECRETHASH" not in path.read_bytes(), f"{path} holds the linked file's text"


@pytest.mark.parametrize("linked", ["transcript", "metadata.csv", "recording"])
def test_a_file_linked_from_outside_input_is_refused_and_never_copied(tmp_path, linked):
    root, out = tmp_path / "in", tmp_path / "set"
    secret = tmp_path / "shadow"  # a file of the user's (or the system's) that the data set links to
    secret.write_text(SECRET + "\n")
    if linked == "metadata.csv":
        lj_dataset(root)
        (root / "metadata.csv").unlink()
        (root / "metadata.csv").symlink_to(secret)
    else:
        synth.transcribed(root, SENTENCES[:2])
        name = "c1.txt" if linked == "transcript" else "c1.wav"
        (root / name).unlink()
        (root / name).symlink_to(secret if linked == "transcript" else synth.write(tmp_path / "elsewhere.wav",
                                                                                   synth.speech("a private word")))
    message = refused(root, out, rf"is a link to {tmp_path}/(shadow|elsewhere.wav), outside")
    assert "SECRETHASH" not in message and "Copy the file into" in message
    no_secret_under(out)
    assert not (out / "manifest.jsonl").exists()


def test_links_that_stay_inside_input_are_followed(tmp_path):
    root, out = tmp_path / "in", tmp_path / "set"
    synth.transcribed(root, SENTENCES[:2])
    (root / "shared").mkdir()
    (root / "c1.txt").rename(root / "shared" / "c1.txt")
    (root / "c1.txt").symlink_to(Path("shared") / "c1.txt")
    assert run(root, out)["clips"] == 2
    assert {c.text for c in manifest.read(out / "manifest.jsonl")} == set(SENTENCES[:2])


def test_a_fifo_transcript_is_one_line_not_a_hang(tmp_path):
    root = tmp_path / "in"
    synth.transcribed(root, SENTENCES[:1])
    (root / "c0.txt").unlink()
    os.mkfifo(root / "c0.txt")
    with pytest.raises(TtsrigError, match=r"c0.txt is a named pipe \(FIFO\), not a regular file"):
        run(root, tmp_path / "set")  # (not `refused`: hashing the tree would itself wait on the pipe)
    assert not (tmp_path / "set").exists()


def test_a_clip_id_near_the_file_name_limit_gets_a_short_stable_one(tmp_path):
    root, out = tmp_path / "in", tmp_path / "set"
    deep = root / ("speaker-" + "x" * 120) / ("chapter-" + "y" * 100)
    synth.write(deep / ("take " + "z" * 230 + ".wav"), synth.speech(SENTENCES[0]))  # a 238-byte file name
    (deep / ("take " + "z" * 230 + ".txt")).write_text(SENTENCES[0])
    assert run(root, out)["clips"] == 1
    [clip] = manifest.read(out / "manifest.jsonl")
    assert len(clip.id.encode()) <= prepare.MAX_ID_BYTES and clip.id.startswith("speaker-xxx")
    assert all(p.is_file() for p in prepare.outputs_of(clip, out))
    assert run(root, out)["recordings_reused"] == 1  # the same id again: reused, not remade


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root (CI runs as root)")


@needs_root
def test_a_full_disk_stops_in_one_line_keeps_what_is_done_and_the_next_run_continues(tmp_path):
    root = synth.transcribed(tmp_path / "in", SENTENCES * 2)  # six recordings
    sizing = tmp_path / "sizing"
    run(root, sizing, mels=("f5", "styletts2"))
    clips = sorted(sizing.glob("wavs/*.wav"))
    per_clip = sum(p.stat().st_size for c in clips[:1]
                   for p in [c, sizing / "mels/f5" / (c.stem + ".safetensors"),
                             sizing / "mels/styletts2" / (c.stem + ".safetensors")])
    disk = tmp_path / "disk"
    disk.mkdir()
    # room for the state file and about two and a half clips (tmpfs counts whole 4 KiB pages)
    size = 64 * 1024 + int(2.5 * per_clip)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)], check=True)
    try:
        out = disk / "set"
        before = tree(root)
        with pytest.raises(TtsrigError) as stopped:
            run(root, out, mels=("f5", "styletts2"))
        message = str(stopped.value)
        assert "the disk is full" in message and "run the same command again" in message and "\n" not in message
        assert tree(root) == before
        state = json.loads((out / prepare.STATE).read_text())
        listed = {p for entry in state["sources"].values() for c in entry["clips"]
                  for p in (c["audio"], c.get("mel_f5"), c.get("mel_styletts2")) if p}
        written = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {prepare.STATE}
        assert written == listed, "a clip the state does not list was left on the disk (or one it lists is gone)"
        assert listed and not (out / "manifest.jsonl").exists()
        done = len(state["sources"])
        subprocess.run(["mount", "-o", f"remount,size={64 << 20}", str(disk)], check=True)
        summary = run(root, out, mels=("f5", "styletts2"))
        assert summary["clips"] == 6 and summary["recordings_reused"] == done
        assert summary["recordings_processed"] == 6 - done
        for clip in manifest.read(out / "manifest.jsonl"):
            assert all(p.is_file() for p in prepare.outputs_of(clip, out))
    finally:
        subprocess.run(["umount", str(disk)], check=False)


@pytest.mark.parametrize("point", ["prepare:between-clip-files", "prepare:between-state-and-manifest"])
def test_a_run_killed_mid_write_leaves_no_manifest_of_mixed_clips_and_the_next_run_finishes(tmp_path, point):
    root, out = lj_dataset(tmp_path / "in"), tmp_path / "set"
    assert cli(str(root), str(out)).returncode == 0
    for i, text in enumerate(SENTENCES):  # every recording changes: the old manifest no longer fits
        synth.write(root / "wavs" / f"s{i}.wav", synth.speech(text + " again"))
    killed = subprocess.run([sys.executable, "-m", "trainers.prepare", str(root), str(out), "--quiet", "--mels",
                             "f5", "--transcribe", "none"], capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "TTSRIG_CRASH_AT": point})
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not (out / "manifest.jsonl").exists(), "the old manifest survived next to changed clips"
    again = cli(str(root), str(out))
    assert again.returncode == 0, again.stderr
    clips = manifest.read(out / "manifest.jsonl")
    assert len(clips) == 3 and not list(out.rglob("*ttsrig-tmp"))
    for clip in clips:
        assert all(p.is_file() for p in prepare.outputs_of(clip, out))
