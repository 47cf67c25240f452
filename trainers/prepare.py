"""`python -m trainers.prepare INPUT OUTPUT`: recordings + transcripts -> clips -> mels -> manifest.jsonl.

INPUT is a folder of recordings (wav, flac, ogg, mp3; any rate, mono or stereo, sub-folders allowed) with
transcripts as an LJSpeech-style `metadata.csv` (`id|text`, or `id|text|normalised text`) or a `.txt`/`.lab`
beside each recording. Sub-folders of INPUT (other than `wavs/`) name speakers; otherwise --speaker does.

OUTPUT gets `wavs/` (24 kHz mono 16-bit clips, levelled), `mels/f5/` and `mels/styletts2/` (safetensors,
one tensor "mel" [bins, frames]), `manifest.jsonl`, `summary.json` and `prepare-state.json` (what a re-run
reuses: a recording whose bytes, transcript and settings are unchanged is not processed again).

Nothing in INPUT is ever written, moved or deleted: OUTPUT may not be INPUT nor hold it, an OUTPUT inside
INPUT is left out of the scan, and a re-run deletes only clips that its own state says it wrote, by the
names it gives them (`wavs/ID.wav`, `mels/KIND/ID.safetensors`).
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import re
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from envcheck import interrupt

interrupt.when_run(__name__, "trainers.prepare", "run the same command again to continue where it stopped")

from envcheck import arguments, crashpoint, paths, reading, run_lock
from envcheck.atomic import write_atomic, write_json_atomic
from envcheck.digests import bytes_sha256, file_sha256
from envcheck.errors import TtsrigError
from envcheck import asr_backends as transcribe
from trainers import audio, manifest
from trainers import device as device_mod
from trainers.manifest import Clip

STATE = "prepare-state.json"
MEL_KINDS = ("f5", "styletts2")
OWN_NAMES = ("wavs", "mels", "manifest.jsonl", "summary.json")  # what prepare writes into OUTPUT, beside STATE


@dataclass(frozen=True)
class Settings:
    min_s: float = 1.0
    max_s: float = 30.0
    mels: tuple[str, ...] = MEL_KINDS
    top_db: float = 40.0
    loudness_dbfs: float = -20.0
    speaker: str | None = None

    def digest(self) -> str:
        return bytes_sha256(json.dumps(asdict(self), sort_keys=True).encode())[:16]

    def check(self) -> None:
        if not 0.5 <= self.min_s < self.max_s <= 30:
            raise TtsrigError(f"clip range {self.min_s}-{self.max_s} s is not usable: choose 0.5 <= --min-seconds "
                              "< --max-seconds <= 30 (F5-TTS and StyleTTS2 train on clips of a few seconds to 30 s)")
        unknown = set(self.mels) - set(MEL_KINDS)
        if unknown:
            raise TtsrigError(f"unknown mel kind {', '.join(sorted(unknown))}: choose from {', '.join(MEL_KINDS)}")


@dataclass
class Source:
    key: str  # path relative to INPUT: the identity a re-run recognises
    audio: Path
    text: str | None
    speaker: str
    root: Path | None = None  # INPUT: the audio is read only when it lies inside it


@dataclass
class Outcome:
    clips: list[Clip] = field(default_factory=list)
    rejected: list[list[str]] = field(default_factory=list)  # [reason, detail]


# -- finding recordings and transcripts -----------------------------------------------------------

def read_metadata(path: Path, root: Path) -> dict[str, str]:
    texts: dict[str, str] = {}
    for number, line in enumerate(manifest.read_utf8(path, "metadata", within=root).splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) < 2:
            raise TtsrigError(f"{path}:{number} is not `id|text`: {line[:60]!r}")
        # LJSpeech's third column is the normalised text (numbers spelled out): better for training
        text = parts[2] if len(parts) > 2 and parts[2].strip() else parts[1]
        texts[parts[0].strip()] = text.strip()
    return texts


def discover(root: Path, speaker: str | None, skip: Path | None = None) -> tuple[list[Source], list[list[str]]]:
    """Recordings and transcripts under root; files whose real path lies in `skip` (an OUTPUT inside INPUT:
    prepare's own clips) are not recordings. A link may point anywhere inside root, never out of it: its
    target's bytes and text would go into OUTPUT (see envcheck.reading)."""
    if not root.is_dir():
        raise TtsrigError(f"{root} is not a folder of recordings")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in audio.AUDIO_SUFFIXES and p.is_file()
                   and not (skip and p.resolve().is_relative_to(skip)))
    for f in files:
        real = reading.outside(f, root)
        if real is not None:
            raise TtsrigError(f"recording {f} is a link to {real}, outside INPUT {root}: prepare reads only files "
                              "inside INPUT (a shared data set could otherwise copy any file it links to into your "
                              f"outputs). Copy the file into {root}, or remove the link.")
    by_stem: dict[str, list[Path]] = defaultdict(list)
    for f in files:
        by_stem[f.stem].append(f)
    metadata = read_metadata(root / "metadata.csv", root) if os.path.lexists(root / "metadata.csv") else {}
    rejected = [["no audio for a metadata.csv line", i] for i in metadata if i not in by_stem]
    sources = []
    for f in files:
        rel = f.relative_to(root)
        text = metadata.get(f.stem) if len(by_stem[f.stem]) == 1 else None
        for suffix in (".txt", ".lab"):
            beside = f.with_suffix(suffix)
            if text is None and os.path.lexists(beside):
                text = manifest.read_utf8(beside, "transcript", within=root).strip()
        folder = rel.parts[0] if len(rel.parts) > 1 and rel.parts[0] != "wavs" else None
        sources.append(Source(rel.as_posix(), f, text, folder or speaker or root.resolve().name, root))
    return sources, rejected


# -- where prepare may write ----------------------------------------------------------------------

def overlaps(a: Path, b: Path) -> bool:
    return a == b or a.is_relative_to(b) or b.is_relative_to(a)


def check_places(root: Path, out: Path) -> tuple[Path, Path]:
    """The real paths of INPUT and OUTPUT (links resolved), refusing every layout in which writing OUTPUT
    would write over, or a re-run delete, the user's recordings."""
    if not root.exists():
        raise TtsrigError(f"INPUT {root} is not a folder of recordings: it does not exist. Name the folder "
                          "that holds your recordings")
    if not root.is_dir():
        raise TtsrigError(f"INPUT {root} is a file, not a folder: name the folder that holds your recordings")
    real_in, real_out = root.resolve(), out.resolve()
    if real_out == real_in:
        raise TtsrigError(f"OUTPUT {out} is INPUT {root}: prepare would write its clips over your recordings. "
                          f"Choose a new folder for OUTPUT (e.g. {root.resolve().name}-prepared beside it)")
    if real_in.is_relative_to(real_out):
        raise TtsrigError(f"INPUT {root} lies inside OUTPUT {out}: prepare's clips and re-run clean-up could "
                          "reach your recordings. Choose an OUTPUT folder that does not contain INPUT")
    if out.exists() and not out.is_dir():
        raise TtsrigError(f"OUTPUT {out} is a file, not a folder: choose a folder (it is created if missing)")
    paths.output_folder(out, "OUTPUT")  # under a file, on a read-only disk: refused before any clip is made
    for sub in ("wavs", "mels", *(f"mels/{kind}" for kind in MEL_KINDS)):
        # prepare writes, and on a re-run deletes, clips in these folders: through a link that would happen to
        # files elsewhere (the recordings, or any folder of the user's). OUTPUT itself may be a link.
        if os.path.islink(out / sub):
            real = (out / sub).resolve()
            inside = f", inside INPUT {root}" if overlaps(real, real_in) else ""
            raise TtsrigError(f"{out / sub} is a link to {real}{inside}: prepare would write and remove its clips "
                              "there. Remove the link (prepare makes the folder itself); to keep the data set on "
                              "another disk, make OUTPUT itself that folder or a link to it")
    return real_in, real_out


def check_output_is_ours(out: Path, inside_input: bool) -> None:
    """An existing OUTPUT must be one prepare made: in another folder its clips could replace files of the
    same name (another data set's wavs/, the user's manifest). Inside INPUT it may hold no recordings
    either: they would be left out of the scan without a word."""
    if not out.is_dir() or (out / STATE).is_file():
        return
    found = [name for name in OWN_NAMES if os.path.lexists(out / name)]
    if found:
        raise TtsrigError(f"OUTPUT {out} already holds {', '.join(found)} but no {STATE}, so trainers.prepare did "
                          "not make it and could overwrite those files. Choose a new or empty folder for OUTPUT")
    recording = next((p for p in out.rglob("*") if p.suffix.lower() in audio.AUDIO_SUFFIXES), None)
    if inside_input and recording is not None:
        raise TtsrigError(f"OUTPUT {out} lies inside INPUT and holds recordings ({recording.relative_to(out)}), "
                          "which would be left out. Choose an OUTPUT folder that holds no recordings")


def check_unique_ids(sources: list[Source], settings: Settings, transcriber) -> None:
    """No two recordings may become the same clip: the second would silently overwrite the first.

    Refused, not renamed: the id is the name a user looks for in the manifest, the summary and the audition
    page, and a numbered rename would change when a file is added. The usual causes are a take exported
    twice (`a.wav` + `a.flac`: training on both would count it twice) or names that differ only where ids
    cannot (`a b` / `a_b`, `A` / `a` (one file on a case-insensitive disk), `x/y` / `x__y`, `wavs/a` / `a`),
    and the user is the one who knows which to keep or rename."""
    seen: dict[str, Source] = {}
    for source in sources:
        cid = clip_id(source.key, None)
        other = seen.setdefault(cid.casefold(), source)
        if other is not source:
            raise TtsrigError(f"{other.audio} and {source.audio} would both become clip {cid} (ids drop the "
                              "extension and a wavs/ folder and turn spaces into _ and sub-folders into __): "
                              "rename or remove one of them and re-run")
    if transcriber is None:
        return  # nothing is split into pieces
    for source in sources:  # a recording split on silence gives pieces ID-001, ID-002, ...
        cid = clip_id(source.key, None)
        piece = re.fullmatch(r"(.+)-(\d{3,})", cid.casefold())
        whole = seen.get(piece.group(1)) if piece else None
        if whole is not None and f"{int(piece.group(2)):03d}" == piece.group(2) and may_split(whole, settings):
            raise TtsrigError(f"{source.audio} would have the same clip id ({cid}) as piece {int(piece.group(2))} "
                              f"of {whole.audio} when that recording is split on silence: rename one of them "
                              "and re-run")


def may_split(source: Source, settings: Settings) -> bool:
    """Whether process() could split this recording into pieces (it has no transcript, or is too long)."""
    if source.text is None:
        return True
    import soundfile as sf

    if not reading.is_regular(source.audio):
        return False  # refused when read
    try:
        info = sf.info(str(source.audio))
    except (RuntimeError, OSError):
        return False  # unreadable: rejected, never split
    return info.frames / info.samplerate > settings.max_s - 0.01  # trimming only shortens it


def owned_clips(entries: object) -> list[Clip] | None:
    """The clips an earlier run's state lists, or None when any is not one prepare itself would have written
    (a file other than wavs/ID.wav and mels/KIND/ID.safetensors): such a state is neither reused nor
    trusted to delete anything."""
    if not isinstance(entries, list):
        return None
    clips = []
    for entry in entries:
        try:
            clip = Clip(**entry)
        except TypeError:
            return None
        cid = clip.id
        if not isinstance(cid, str) or cid in ("", ".", "..") or "/" in cid or "\\" in cid or "\0" in cid:
            return None
        if clip.audio != f"wavs/{cid}.wav" or any(getattr(clip, f"mel_{kind}") not in (None, f"mels/{kind}/{cid}"
                                                                                        ".safetensors")
                                                  for kind in MEL_KINDS):
            return None
        clips.append(clip)
    return clips


def is_rejection_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(r, list) and len(r) == 2 and all(isinstance(x, str) for x in r)
                                           for r in value)


# -- one recording --------------------------------------------------------------------------------

# A clip's files are named ID.wav and ID.safetensors, and a file name may have 255 bytes: a longer id (deep
# sub-folders, long names) keeps its start and ends in a hash of the whole, so it stays unique and stable.
MAX_ID_BYTES = 200


def clip_id(key: str, index: int | None) -> str:
    stem = key.rsplit(".", 1)[0]
    stem = stem[5:] if stem.startswith("wavs/") else stem
    stem = stem.replace("/", "__").replace(" ", "_")
    full = stem if index is None else f"{stem}-{index:03d}"
    if len(full.encode()) <= MAX_ID_BYTES:
        return full
    start = full.encode()[:MAX_ID_BYTES - 17].decode(errors="ignore")
    return f"{start}-{bytes_sha256(full.encode())[:16]}"


def fingerprint(source: Source, settings: Settings) -> str:
    """Raises OSError when the recording cannot be read."""
    # the audio is hashed in blocks: an hour-long recording is never read into memory at once
    parts = f"{file_sha256(source.audio)}\0{source.text}\0{source.speaker}\0{settings.digest()}"
    return bytes_sha256(parts.encode())


def save_clip(out: Path, cid: str, wave, text: str, source: Source, settings: Settings, device: str) -> Clip:
    """A clip's WAV and mels, all or none: when one write fails (a full disk) the others are removed."""
    import torch
    from safetensors.torch import save

    from trainers import mels

    wave = audio.normalise(wave, settings.loudness_dbfs)
    clip = Clip(cid, f"wavs/{cid}.wav", text, round(len(wave) / audio.SAMPLE_RATE, 3), source.speaker, source.key)
    try:
        audio.write_wav(out / clip.audio, wave)
        # mels of the samples as written (16-bit), so a mel recomputed from the WAV is the same
        tensor = torch.from_numpy(audio.load(out / clip.audio, follow=False))
        for kind in settings.mels:
            rel = f"mels/{kind}/{cid}.safetensors"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            crashpoint.reached("prepare:between-clip-files")
            write_atomic(out / rel, save({"mel": mels.MELS[kind](tensor, device).contiguous()}))
            setattr(clip, f"mel_{kind}", rel)
    except BaseException:
        for path in [out / clip.audio] + [out / f"mels/{kind}/{cid}.safetensors" for kind in settings.mels]:
            path.unlink(missing_ok=True)
        raise
    return clip


def process(source: Source, settings: Settings, transcriber, out: Path, device: str) -> Outcome:
    """The clips of one recording; when it stops midway, the clips it already wrote are removed again."""
    result = Outcome()
    try:
        return _process(source, settings, transcriber, out, device, result)
    except BaseException:
        for path in (p for clip in result.clips for p in outputs_of(clip, out)):
            path.unlink(missing_ok=True)
        raise


def _process(source: Source, settings: Settings, transcriber, out: Path, device: str, result: Outcome) -> Outcome:
    try:
        wave = audio.load(source.audio, within=source.root)
    except TtsrigError as exc:
        result.rejected.append(["unreadable audio", f"{source.key}: {exc}"])
        return result
    rate = audio.SAMPLE_RATE
    text = (source.text or "").strip()
    if source.text is not None and not text:
        result.rejected.append(["empty transcript", source.key])
        return result
    if text:
        wave = audio.trim(wave, settings.top_db)
        seconds = len(wave) / rate
        if seconds == 0:
            result.rejected.append(["silent", source.key])
        elif seconds < settings.min_s:
            result.rejected.append([f"shorter than {settings.min_s:g} s", f"{source.key} ({seconds:.2f} s)"])
        elif seconds <= settings.max_s:
            result.clips.append(save_clip(out, clip_id(source.key, None), wave, text, source, settings, device))
        elif transcriber is None:
            result.rejected.append([f"longer than {settings.max_s:g} s with one transcript (split it, or "
                                    "install a Whisper backend to split and re-transcribe)",
                                    f"{source.key} ({seconds:.1f} s)"])
        else:
            text = ""  # split and transcribe each piece below
    if not text and source.text is None and transcriber is None:
        result.rejected.append(["no transcript", source.key])
        return result
    if not text and transcriber is not None:
        pieces = audio.split_on_silence(wave, settings.min_s, settings.max_s, rate, settings.top_db)
        if not pieces:
            result.rejected.append(["silent or too short after splitting", source.key])
        for index, (a, b) in enumerate(pieces, start=1):
            piece = wave[a:b]
            said = transcriber(piece, rate).strip()
            if not said:
                result.rejected.append(["transcribed as nothing", f"{source.key} piece {index}"])
                continue
            result.clips.append(save_clip(out, clip_id(source.key, index), piece, said, source, settings, device))
    return result


# -- the whole set --------------------------------------------------------------------------------

def load_state(out: Path) -> dict:
    try:
        state = reading.loads_json(reading.read_bytes(out / STATE, "prepare's state", "", limit=reading.DATA_LIMIT,
                                                      follow=False))
    except (TtsrigError, ValueError):
        return {}
    return state if isinstance(state, dict) and isinstance(state.get("sources", {}), dict) else {}


PENDING = "pending_removal"  # in a stopped run's state: clips of replaced recordings, for the next run to remove
SAVE_EVERY_S = 30.0


class Progress:
    """A run's work so far, kept in the state file while it runs (every SAVE_EVERY_S and when it stops,
    however it stops): a run stopped by a full disk, Ctrl-C or a crash is continued by the next, which
    redoes only the recording that was in hand. The first change to OUTPUT removes manifest.jsonl and
    summary.json, which describe the set before this run: a trainer never reads a manifest of half-changed
    clips (prepare writes the manifest again at the end)."""

    def __init__(self, out: Path, earlier: dict) -> None:
        self.out, self.saved_at = out, time.monotonic()
        self.state = {"settings": earlier.get("settings"), "sources": dict(earlier.get("sources", {})),
                      PENDING: list(earlier.get(PENDING) or [])}
        self.started = False

    def changing(self, key: str) -> None:
        if not self.started:
            self.started = True
            for name in ("manifest.jsonl", "summary.json"):
                (self.out / name).unlink(missing_ok=True)
        before = self.state["sources"].pop(key, None)  # its files are being replaced
        if isinstance(before, dict) and isinstance(before.get("clips"), list):
            self.state[PENDING] += before["clips"]

    def done(self, key: str, entry: dict) -> None:
        self.state["sources"][key] = entry
        if time.monotonic() - self.saved_at > SAVE_EVERY_S:
            self.save()

    def save(self) -> None:
        if not self.started:
            return
        try:
            write_json_atomic(self.out / STATE, self.state)
            self.saved_at = time.monotonic()
        except (OSError, TtsrigError):
            pass  # a full disk: the last saved state stays, and the failure itself is what gets reported


def stopped_writing(exc: OSError, out: Path, done: int, total: int) -> TtsrigError:
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    cause = "the disk is full" if full else f"writing failed ({exc.strerror or exc})"
    fix = "Free space on that disk" if full else "Fix the cause"
    manifest_gone = "" if (out / "manifest.jsonl").exists() else " There is no manifest until a run finishes."
    return TtsrigError(f"stopped: {cause} in OUTPUT {out} after {done} of {total} recordings; their clips are kept "
                       f"and the half-written clip was removed.{manifest_gone} {fix}, then run the same command "
                       "again: it continues where this one stopped.")


def outputs_of(clip: Clip, out: Path) -> list[Path]:
    return [out / p for p in (clip.audio, clip.mel_f5, clip.mel_styletts2) if p]


def make_output(out: Path) -> None:
    """OUTPUT and its state file before any clip: an interrupted first run leaves a folder a re-run knows."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TtsrigError(f"cannot make OUTPUT {out} ({exc.strerror or exc}): choose a folder you may write, "
                          "whose parents are folders") from None
    if not (out / STATE).is_file():
        write_json_atomic(out / STATE, {"settings": None, "sources": {}})


def remove_stale(old: dict, clips: list[Clip], out: Path, pending: object = None) -> None:
    """Delete the clips of changed and removed recordings: only files an earlier run's state says prepare
    wrote, under the names it gives them, and never one that this run wrote (a renamed recording may now
    own the same id). Compared without case: on a case-insensitive disk wavs/A.wav is wavs/a.wav. `pending`:
    clips a stopped run replaced before it could remove them."""
    keep = {str(p).casefold() for c in clips for p in outputs_of(c, out)}
    entries = [entry.get("clips") for entry in old.values() if isinstance(entry, dict)] + [pending]
    for listed in entries:
        for path in (p for c in owned_clips(listed) or [] for p in outputs_of(c, out)):
            if str(path).casefold() not in keep:
                path.unlink(missing_ok=True)


def prepare(root: Path, out: Path, settings: Settings, transcriber=None, device: str = "cpu",
            progress: bool = True) -> dict:
    settings.check()
    real_in, real_out = check_places(root, out)
    check_output_is_ours(out, inside_input=real_out.is_relative_to(real_in))
    sources, rejected = discover(root, settings.speaker, skip=real_out)
    if not sources:
        raise TtsrigError(f"no recordings in {root} (looked for {', '.join(audio.AUDIO_SUFFIXES)})")
    check_unique_ids(sources, settings, transcriber)
    with run_lock.held("prepare", out, lambda pid: (
            f"another prepare (process {pid}) is writing into OUTPUT {out} now; let it finish (or stop it), then "
            "run this again: it reuses what is done")):
        make_output(out)
        return prepare_into(root, out, settings, sources, rejected, transcriber, device, progress)


def prepare_into(root: Path, out: Path, settings: Settings, sources: list[Source], rejected: list[list[str]],
                 transcriber, device: str, progress: bool) -> dict:
    """prepare's work in OUTPUT, which it holds meanwhile: each recording's clips, the manifest, the state."""
    from tqdm import tqdm

    earlier = load_state(out)
    old = earlier.get("sources", {})
    state: dict = {"settings": asdict(settings), "sources": {}}
    progress_record = Progress(out, earlier)
    clips: list[Clip] = []
    reused = processed = 0
    try:
        for source in tqdm(sources, desc="recordings", unit="file", disable=not progress):
            try:
                fp = fingerprint(source, settings)
            except OSError as exc:
                rejected.append(["unreadable audio", f"{source.key}: {exc.strerror or exc}"])
                continue
            before = old.get(source.key)
            kept = owned_clips(before.get("clips")) if isinstance(before, dict) else None
            if kept is not None and before.get("fingerprint") == fp and is_rejection_list(before.get("rejected")):
                if all(p.is_file() for c in kept for p in outputs_of(c, out)):
                    state["sources"][source.key] = before
                    clips += kept
                    rejected += before["rejected"]
                    reused += 1
                    continue
            progress_record.changing(source.key)  # the manifest no longer describes OUTPUT from here on
            outcome = process(source, settings, transcriber, out, device)
            processed += 1
            state["sources"][source.key] = {"fingerprint": fp, "clips": [asdict(c) for c in outcome.clips],
                                            "rejected": outcome.rejected}
            progress_record.done(source.key, state["sources"][source.key])
            clips += outcome.clips
            rejected += outcome.rejected
        remove_stale(old, clips, out, earlier.get(PENDING))
        # The state, then the manifest: the manifest is the set's record, so it is written last.
        write_json_atomic(out / STATE, state)
        crashpoint.reached("prepare:between-state-and-manifest")
        manifest.write(out / "manifest.jsonl", clips)
        summary = summarise(clips, rejected, reused, processed, out)
        write_json_atomic(out / "summary.json", summary)
    except BaseException as exc:
        progress_record.save()  # what is done stays done: the next run continues from here
        if isinstance(exc, OSError):
            raise stopped_writing(exc, out, reused + processed, len(sources)) from None
        raise
    if not clips:
        reasons = "; ".join(f"{r}: {n}" for r, n in summary["rejected"].items())
        hint = f" To transcribe, {transcribe.HOW_TO_GET_ONE}." if "no transcript" in summary["rejected"] else ""
        raise TtsrigError(f"no usable clips in {root}: every recording was rejected ({reasons}).{hint}")
    return summary


def summarise(clips: list[Clip], rejected: list[list[str]], reused: int, processed: int, out: Path) -> dict:
    per_speaker: dict[str, dict] = defaultdict(lambda: {"clips": 0, "hours": 0.0})
    for c in clips:
        per_speaker[c.speaker]["clips"] += 1
        per_speaker[c.speaker]["hours"] += c.duration / 3600
    return {"manifest": str(out / "manifest.jsonl"), "clips": len(clips),
            "hours": round(sum(c.duration for c in clips) / 3600, 4),
            "speakers": {k: {"clips": v["clips"], "hours": round(v["hours"], 4)} for k, v in per_speaker.items()},
            "rejected": dict(Counter(r for r, _ in rejected)), "rejected_detail": rejected,
            "recordings_reused": reused, "recordings_processed": processed}


def render(summary: dict) -> str:
    lines = [f"{summary['clips']} clips, {summary['hours'] * 60:.1f} min, {len(summary['speakers'])} speaker(s) "
             f"-> {summary['manifest']}"]
    for name, s in sorted(summary["speakers"].items()):
        lines.append(f"  {name}: {s['clips']} clips, {s['hours'] * 60:.1f} min")
    if summary["rejected"]:
        lines.append(f"rejected {sum(summary['rejected'].values())}:")
        lines += [f"  {reason}: {n}" for reason, n in sorted(summary["rejected"].items())]
    lines.append(f"recordings processed {summary['recordings_processed']}, reused from an earlier run "
                 f"{summary['recordings_reused']}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = arguments.Parser(prog="python -m trainers.prepare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", type=Path, help="folder of recordings and transcripts")
    p.add_argument("output", type=Path, help="folder for the training set (created)")
    p.add_argument("--min-seconds", type=arguments.number(), default=1.0, help="shortest clip kept (default 1)")
    p.add_argument("--max-seconds", type=arguments.number(), default=30.0, help="longest clip kept (default 30)")
    p.add_argument("--mels", default="f5,styletts2", help="mels to pre-compute: f5, styletts2, both "
                   "(comma-separated; default both) or none")
    p.add_argument("--speaker", help="speaker name when INPUT has no speaker sub-folders (default: its name)")
    p.add_argument("--top-db", type=arguments.number(0, 120, above=True), default=40.0, help="silence = quieter than the peak by this much")
    p.add_argument("--loudness", type=arguments.number(-60, 0), default=-20.0, help="RMS level of every clip, dBFS (default -20)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where mels are computed")
    p.add_argument("--transcribe", default="auto", choices=("auto", "none", "faster-whisper", "whisper.cpp"),
                   help="backend for recordings without transcripts (default: the first installed)")
    p.add_argument("--whisper-model", help="faster-whisper model name, or the ggml file for whisper.cpp")
    p.add_argument("--language", help="language code for transcription (default: detected)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    kinds = () if args.mels == "none" else tuple(k.strip() for k in args.mels.replace("both", "f5,styletts2")
                                                 .split(",") if k.strip())
    settings = Settings(args.min_seconds, args.max_seconds, kinds, args.top_db, args.loudness, args.speaker)
    try:
        settings.check()
        device = device_mod.pick(args.device)
        transcriber = transcribe.find(args.transcribe, model=args.whisper_model, language=args.language,
                                      device=device)
        summary = prepare(args.input, args.output, settings, transcriber, device, progress=not args.quiet)
    except TtsrigError as exc:
        print(f"trainers.prepare: {exc}", file=sys.stderr)
        return 2
    print(render(summary))
    if "no transcript" in summary["rejected"]:
        print(f"note: recordings without a transcript were skipped; to use them, {transcribe.HOW_TO_GET_ONE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
