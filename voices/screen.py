"""Screen an audition folder before anyone listens: dropped words, cut-off endings, long silences.

    voices/audition screen auditions/f5                  # also rewrites the folder's index.html with the results
    voices/audition screen auditions/f5 --asr none       # only the checks that need no ASR
    python -m voices.screen auditions/f5 --json          # the result, for scripts (screen.json only)

Every render of the folder's renders.json (written by `voices/audition render`) gets the ASR-free checks
of voices/signalcheck.py and, when an ASR backend is installed (voices/asr.py), the word check of
voices/wordcheck.py against the passage. Takes of one checkpoint are summarised (worst and mean); when
the checkpoints come from a ttsrig run folder, each one's training loss from train-log.tsv is beside its
results. The result goes to screen.json (atomically) with a suggestion: the latest checkpoint with no
dropped or cut words in any take, and the first where they start. The accent stays the listener's call.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from envcheck import interrupt

interrupt.when_run(__name__, "screen")  # before numpy and the ASR backends load

from envcheck import arguments, reading
from envcheck.atomic import write_json_atomic
from envcheck.errors import TtsrigError
from voices import asr, signalcheck, verdicts, wordcheck

SCREEN_FILE = "screen.json"
SCHEMA = 1
EPOCH = re.compile(r"epoch_(?:2nd_)?(\d+)")  # trainers.f5: epoch_0003; trainers.styletts2: epoch_2nd_00003
LOSS_COLUMNS = ("mean_loss", "mel")  # trainers.f5's mean loss; trainers.styletts2's mel reconstruction loss
MIN_RENDERS_FOR_MEDIAN = 3  # without a reference rate, a render is compared with the others' median


@dataclass
class Context:
    """What every render of one folder is screened against."""

    folder: Path
    passage_words: list[wordcheck.Word]
    phonemes: int | None
    reference_rate: float | None
    rate_basis: str | None
    backend: asr.Hears | None


# -- the folder -----------------------------------------------------------------------------------------


def read_renders(folder: Path) -> dict:
    """renders.json of an audition folder, checked enough that screening can rely on it."""
    source = Path(folder) / verdicts.RENDERS
    data = verdicts.read_renders(folder)
    renders = data.get("renders")
    listed = isinstance(renders, list) and renders and all(isinstance(r, dict) and isinstance(r.get("file"), str)
                                                           for r in renders)
    if not listed or not isinstance(data.get("passage"), str):
        raise TtsrigError(f"{source} lists no renders (or no passage): render the folder again with "
                          "`voices/audition render`")
    return data


def epoch_of(checkpoint: str) -> int | None:
    match = EPOCH.search(Path(checkpoint).name)
    return int(match.group(1)) if match else None


def training_loss(checkpoint: str) -> dict | None:
    """The checkpoint's epoch in the train-log.tsv of its run folder (None for a checkpoint from elsewhere)."""
    epoch = epoch_of(checkpoint)
    log = Path(checkpoint).expanduser().parent / "train-log.tsv"
    if epoch is None or not log.is_file():
        return None
    try:
        text = reading.read_text(log, "training log", "")
        header, *rows = [line.split("\t") for line in text.splitlines() if line.strip()]
        column = next(c for c in LOSS_COLUMNS if c in header)
        row = next(r for r in rows if len(r) == len(header) and int(r[header.index("epoch")]) == epoch)
        return {"epoch": epoch, "column": column, "value": float(row[header.index(column)]), "log": str(log)}
    except (OSError, ValueError, StopIteration, TtsrigError):
        return None  # a log from another tool, or this epoch not logged: the page shows no loss


def checkpoint_order(renders: list[dict]) -> list[str]:
    """Checkpoints in training order: by epoch number, those without one (a pretrain) first, each group in
    the order renders.json lists them."""
    seen = list(dict.fromkeys(str(r.get("checkpoint", r["file"])) for r in renders))
    return sorted(seen, key=lambda c: (epoch_of(c) is not None, epoch_of(c) or 0, seen.index(c)))


# -- the reference rate ---------------------------------------------------------------------------------


def find_reference(data: dict, folder: Path) -> Path | None:
    given = data.get("reference")
    if not given or given == "None":
        return None
    for candidate in (Path(given).expanduser(), folder / given):
        if candidate.is_file():
            return candidate
    return None


def reference_rate(data: dict, folder: Path, text: str | None, count: signalcheck.PhonemeCounter,
                   backend: asr.Hears | None, notes: list[str]) -> tuple[float | None, str | None]:
    """The reference clip's phonemes per second, from its transcript (given, in renders.json, or heard by
    the ASR); (None, None) when it cannot be known (the renders' median is used instead)."""
    clip = find_reference(data, folder)
    if clip is None:
        return None, None
    basis = "reference clip"
    try:
        if not text and backend is not None:
            text, basis = asr.hear(backend, signalcheck.load(clip), clip.name), "reference clip (transcribed)"
        if not text:
            return None, None
        return signalcheck.clip_rate(clip, text, count), basis
    except TtsrigError as exc:
        notes.append(f"no reference rate: {exc}")
        return None, None


def passage_phonemes(passage: str, count: signalcheck.PhonemeCounter, notes: list[str]) -> int | None:
    try:
        return count(passage) or None
    except Exception as exc:  # the phonemiser missing or broken: the rate check is skipped, the rest runs
        notes.append(f"speaking rate not checked: the phonemiser failed ({asr.one_line(exc)})")
        return None


# -- one render -----------------------------------------------------------------------------------------


def screen_render(entry: dict, ctx: Context) -> tuple[dict, signalcheck.SignalCheck | None, wordcheck.WordCheck | None]:
    started = time.monotonic()
    file = entry["file"]
    take = entry.get("take", 0)
    out = {"file": file, "checkpoint": str(entry.get("checkpoint", file)),
           "label": str(entry.get("label", Path(file).stem)), "take": take if isinstance(take, int) else 0, "seed": entry.get("seed"), "errors": [], "signal": None,
           "words": None, "render_seconds": _render_seconds(entry)}
    words = None
    if Path(file).name != file:  # audition writes bare names: anything else is not this folder's render
        out["errors"].append(f"{file} is not a file of the audition folder: render the folder again")
        return out, None, None
    changed = verdicts.wav_problem(ctx.folder, entry)
    if changed:
        out["errors"].append(changed)
        return out, None, None
    try:
        wave = signalcheck.load(ctx.folder / file)
    except TtsrigError as exc:
        out["errors"].append(str(exc))
        return out, None, None
    signal = signalcheck.check(wave, phonemes=ctx.phonemes, reference_rate=ctx.reference_rate,
                               rate_basis=ctx.rate_basis or "reference clip", sentence_ends_s=_sentence_ends(entry))
    _report_collapsed(entry, signal)
    if ctx.backend is not None and "silent" not in signal.flags:
        try:
            words = wordcheck.check(ctx.passage_words, asr.hear(ctx.backend, wave, file))
        except TtsrigError as exc:
            out["errors"].append(str(exc))
    out["screen_seconds"] = round(time.monotonic() - started, 3)
    return out, signal, words


def _report_collapsed(entry: dict, signal: signalcheck.SignalCheck) -> None:
    """say-default's collapsed phonemes, when the render recorded them (signalcheck.collapsed_phonemes)."""
    collapsed = entry.get("collapsed_phonemes")
    if isinstance(collapsed, list) and collapsed and all(isinstance(c, dict) for c in collapsed):
        named = ", ".join(f"{c.get('phoneme', '?')} in /{c.get('word', '?')}/" for c in collapsed)
        signal.flag("collapsed-phonemes", f"phonemes given the shortest duration the model allows: {named}")


def _sentence_ends(entry: dict) -> list[float] | None:
    """Where each sentence but the last ended, in seconds, when the render recorded it."""
    ends = entry.get("sentence_ends")
    if isinstance(ends, list) and all(isinstance(e, (int, float)) and not isinstance(e, bool) for e in ends):
        return [float(e) for e in ends]
    return None


def _render_seconds(entry: dict) -> float | None:
    """How long the render took (audition records its length and real-time factor)."""
    try:
        return round(float(entry["seconds"]) * float(entry["rtf"]), 3)
    except (KeyError, TypeError, ValueError):
        return None


def apply_median_rate(signals: list[signalcheck.SignalCheck | None]) -> float | None:
    rates = [s.rate["per_second"] for s in signals if s is not None and s.rate]
    if len(rates) < MIN_RENDERS_FOR_MEDIAN:
        return None
    median = statistics.median(rates)
    for s in signals:
        if s is not None:
            signalcheck.compare_rate(s, median, "renders' median")
    return median


# -- the folder's result ----------------------------------------------------------------------------------


def summarise_checkpoint(checkpoint: str, renders: list[dict], signals: list[signalcheck.SignalCheck | None],
                         words: list[wordcheck.WordCheck | None], word_checked: bool) -> dict:
    lost_takes = [s is not None and s.words_lost for s in signals]
    flags: dict[str, int] = {}
    for s in signals:
        for name in set(s.flags if s is not None else []):
            flags[name] = flags.get(name, 0) + 1
    word_takes = words if word_checked else []
    return {"checkpoint": checkpoint, "label": renders[0]["label"], "epoch": epoch_of(checkpoint),
            "loss": training_loss(checkpoint), "takes": len(renders), "files": [r["file"] for r in renders],
            "signal_flags": flags, "words_lost_takes": sum(lost_takes), "words": wordcheck.summarise(word_takes),
            "status": wordcheck.status(word_takes, lost_takes)}


def screen(folder: Path, *, backend: asr.Hears | None, backend_note: str | None = None,
           reference_text: str | None = None,
           phoneme_count: signalcheck.PhonemeCounter = signalcheck.espeak_phoneme_count, progress: Callable[[str], None] | None = None, write: bool = True) -> dict:
    """Screen every render of an audition folder; writes screen.json (atomically) and returns its content."""
    folder = Path(folder)
    data = read_renders(folder)
    passage = data["passage"]
    notes: list[str] = [note] if (note := verdicts.incomplete(folder, data)) else []
    phonemes = passage_phonemes(passage, phoneme_count, notes)
    rate, basis = (reference_rate(data, folder, reference_text or data.get("reference_text"), phoneme_count, backend,
                                  notes) if phonemes else (None, None))
    ctx = Context(folder, wordcheck.normalise(passage), phonemes, rate, basis, backend)
    results, signals, words = [], [], []
    for entry in data["renders"]:
        out, signal, heard = screen_render(entry, ctx)
        out["signal"] = signal.to_json() if signal is not None else None
        out["words"] = heard.to_json(ctx.passage_words) if heard is not None else None
        results.append(out)
        signals.append(signal)
        words.append(heard)
        if progress:
            progress(render_line(out))
    if rate is None and phonemes and (median := apply_median_rate(signals)):
        rate, basis = median, "renders' median"
        for out, signal in zip(results, signals):
            out["signal"] = signal.to_json() if signal is not None else None
    checkpoints = []
    for checkpoint in checkpoint_order(data["renders"]):
        picked = [i for i, r in enumerate(results) if r["checkpoint"] == checkpoint]
        checkpoints.append(summarise_checkpoint(checkpoint, [results[i] for i in picked],
                                                [signals[i] for i in picked], [words[i] for i in picked],
                                                word_checked=backend is not None))
    suggestion = wordcheck.suggest([(c["label"], c["status"]) for c in checkpoints])
    result = {"schema": SCHEMA, "passage": passage,
              "passage_words": [{"text": w.text, "start": w.start, "end": w.end} for w in ctx.passage_words],
              "asr": {"backend": backend.name if backend is not None else None,
                      "note": (asr.whisper_cpp_speed_note(backend) if backend is not None
                               else backend_note or asr.HOW_TO_ADD_ONE)},
              "rate": {"passage_phonemes": phonemes, "reference_per_second": None if rate is None else round(rate, 2),
                       "basis": basis},
              "notes": notes, "thresholds": thresholds(), "renders": results, "checkpoints": checkpoints,
              "suggestion": suggestion.to_json(), "timing": timing(results)}
    if write:
        write_json_atomic(folder / SCREEN_FILE, result)
    return result


def thresholds() -> dict:
    s = signalcheck
    return {"long_silence_s": s.LONG_SILENCE_S, "cut_within_db": s.CUT_WITHIN_DB, "clip_fraction": s.CLIP_FRACTION,
            "rate_high": s.RATE_HIGH, "rate_low": s.RATE_LOW, "silence_below_db": s.SILENCE_BELOW_DB}


def timing(results: list[dict]) -> dict:
    """What screening costs: its mean time per render beside the mean time of rendering one."""
    screened = [r["screen_seconds"] for r in results if "screen_seconds" in r]
    rendered = [r["render_seconds"] for r in results if r.get("render_seconds") is not None]
    return {"screen_seconds_mean": round(statistics.fmean(screened), 3) if screened else None,
            "render_seconds_mean": round(statistics.fmean(rendered), 3) if rendered else None}


# -- what people read ---------------------------------------------------------------------------------------


def render_line(out: dict) -> str:
    if out["signal"] is None:
        return f"{out['file']}: {'; '.join(out['errors'])}"
    parts = [f"{out['file']}:"]
    if out["words"] is not None:
        w = out["words"]
        parts.append(f"WER {w['wer']:.2f}, {len(w['dropped'])} dropped, {len(w['truncated'])} cut")
    parts.append("flags: " + (", ".join(out["signal"]["flags"]) or "none"))
    return " ".join(parts) + "".join(f"; {e}" for e in out["errors"])


def summary_lines(result: dict) -> list[str]:
    words = [w["text"] for w in result["passage_words"]]
    lines = []
    for c in result["checkpoints"]:
        w = c["words"]
        loss = f"loss {c['loss']['value']:.4f}  " if c["loss"] else ""
        wer = f"WER worst {w['wer_worst']:.2f} mean {w['wer_mean']:.2f}  " if w["scored"] else ""
        failed = [f"dropped {words[int(i)]} ({n}/{c['takes']})" for i, n in w["dropped"].items()]
        failed += [f"cut {words[int(i)]} ({n}/{c['takes']})" for i, n in w["truncated"].items()]
        flags = ", ".join(f"{k} ({n}/{c['takes']})" for k, n in sorted(c["signal_flags"].items()))
        heard = ("; ".join(failed) or "no dropped or cut words heard") if w["scored"] else "not word-checked"
        lines.append(f"{c['label']}: {loss}{wer}{heard}{'  flags: ' + flags if flags else ''}")
    if result["asr"]["note"]:
        lines.append(f"note: {result['asr']['note']}")
    lines += [f"note: {n}" for n in result["notes"]]
    lines.append(f"suggestion (not a verdict): {result['suggestion']['text']}")
    t = result["timing"]
    if t["screen_seconds_mean"] is not None:
        lines.append(f"screening took {t['screen_seconds_mean']:.2f} s per render"
                     + (f" (rendering took {t['render_seconds_mean']:.1f} s)" if t["render_seconds_mean"] else ""))
    return lines


# -- command line -----------------------------------------------------------------------------------------


def add_asr_arguments(p: argparse.ArgumentParser) -> None:
    """The ASR options, shared with `voices/audition render --screen`."""
    p.add_argument("--asr", default="auto", choices=asr.CHOICES,
                   help="ASR backend for the word check (auto: faster-whisper, else whisper-cli; none: skip it)")
    p.add_argument("--whisper-model", help="faster-whisper model name or folder, or the ggml file for whisper-cli")
    p.add_argument("--language", default="en", help="language of the passage (default: en)")
    p.add_argument("--asr-beam", type=arguments.whole(1, 32), default=5, metavar="N",
                   help="the ASR's beam size (default 5, upstream's; 1 decodes greedily, several times faster on "
                        "a CPU: tests/bench/README.md)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", help="an audition folder (renders.json and its WAVs)")
    add_asr_arguments(p)
    p.add_argument("--ref-text", help="what the reference clip says (for its speaking rate; default: renders.json's, "
                                      "else what the ASR hears)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where the ASR runs")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of the summary")


def run(args: argparse.Namespace, progress: Callable[[str], None] | None = None) -> dict:
    """Screen args.folder with the backend args ask for; writes screen.json and returns its content."""
    folder = Path(args.folder)
    read_renders(folder)  # a wrong folder fails before a backend loads
    backend = asr.find(args.asr, model=args.whisper_model, language=args.language, device=args.device,
                       beam_size=args.asr_beam)
    note = "word check skipped (--asr none)" if args.asr == "none" else None
    return screen(folder, backend=backend, backend_note=note, reference_text=args.ref_text, progress=progress)


def report(result: dict, folder: Path, as_json: bool) -> None:
    """The result on standard output: the whole of it as JSON for scripts, else the summary."""
    if as_json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print("\n".join(summary_lines(result)))
        print(f"wrote {Path(folder) / SCREEN_FILE}")


def command(args: argparse.Namespace) -> int:
    say = None if args.json else (lambda line: print(line, file=sys.stderr))
    report(run(args, progress=say), Path(args.folder), args.json)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = arguments.Parser(prog="screen", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return command(args)
    except TtsrigError as exc:
        print(f"screen: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
