"""`voices/audition`: render the marker passage through many checkpoints, then listen side by side.

    voices/audition render strong 'runs/myvoice-f5/epoch_*.safetensors' --ref clip.wav --ref-text "..." --out auditions/f5
    voices/audition render default runs/myvoice-st2/epoch_2nd_00005.pth runs/myvoice-st2/epoch_2nd_00010.pth --ref clip.wav --out auditions/st2
    voices/audition serve auditions/f5          # open the printed address; verdicts are saved to verdicts.json

Every checkpoint renders the same passage (voices/markers.py, or --passage FILE) with the same reference
clip and seed, so differences are the checkpoints'. The folder gets one WAV per checkpoint, renders.json and
index.html: players side by side, the marker table (which words probe which accent feature), a verdict per
checkpoint and marker, and what each verdict means for training. Verdicts are saved to verdicts.json
(through `serve`; opened as a file, the page keeps them in the browser and offers a download), and a later
render into the same folder (or with --verdicts FILE) shows them again.
"""
from __future__ import annotations

import argparse
import glob
import http.server
import json
import sys
import time
from functools import partial
from pathlib import Path

from envcheck.atomic import write_atomic, write_json_atomic
from envcheck.errors import TtsrigError
from patches.checkpoints import CheckpointError, add_trust_argument
from voices import markers

PAGE = Path(__file__).with_name("audition.html")


def expand(patterns: list[str]) -> list[Path]:
    found: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(str(Path(pattern).expanduser())))
        if not matches:
            raise TtsrigError(f"no checkpoint matches {pattern}")
        found += [Path(m) for m in matches if not m.endswith(".state.safetensors")]
    return list(dict.fromkeys(found))


def page(data: dict) -> str:
    # JSON inside a <script> element: "</" would end it early
    payload = json.dumps(data, ensure_ascii=False).replace("</", "<\\/")
    return PAGE.read_text(encoding="utf-8").replace("__AUDITION_DATA__", payload)


def previous_verdicts(out: Path, given: str | None) -> dict:
    source = Path(given) if given else out / "verdicts.json"
    if not source.is_file():
        return {}
    try:
        data = json.loads(source.read_text())
        return data if isinstance(data, dict) else {}
    except ValueError:
        raise TtsrigError(f"{source} is not JSON: fix or delete it") from None


def render(args: argparse.Namespace) -> int:
    import numpy as np

    from trainers import audio
    from voices import say

    checkpoints = expand(args.checkpoints)
    passage = Path(args.passage).read_text(encoding="utf-8").strip() if args.passage else markers.PASSAGE
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = say.pick_device(args.device)
    renders = []
    for index, checkpoint in enumerate(checkpoints, start=1):
        ns = argparse.Namespace(voice_config=args.voice_config, checkpoint=str(checkpoint), ref=args.ref,
                                ref_text=getattr(args, "ref_text", None))
        cfg = say.settings(args.engine, ns)
        speaker = say.Speaker(args.engine, cfg, device, args.trust_checkpoint)
        started = time.monotonic()
        wave = speaker.render(passage, args.seed)
        took = time.monotonic() - started
        name = f"{index:02d}-{checkpoint.stem}.wav"
        audio.write_wav(out / name, np.clip(wave, -1.0, 1.0))
        renders.append({"checkpoint": str(checkpoint), "label": checkpoint.stem, "file": name,
                        "seconds": round(len(wave) / audio.SAMPLE_RATE, 2), "rtf": round(took / max(1e-9, len(wave) / audio.SAMPLE_RATE), 3)})
        print(f"{name}: {renders[-1]['seconds']} s (real-time factor {renders[-1]['rtf']})")
    data = {"engine": args.engine, "passage": passage, "reference": str(args.ref or cfg.get("reference")),
            "seed": args.seed, "renders": renders, "markers": markers.MARKERS, "verdict_labels": markers.VERDICTS,
            "guidance": markers.GUIDANCE, "verdicts": previous_verdicts(out, args.verdicts)}
    write_json_atomic(out / "renders.json", {k: v for k, v in data.items() if k != "verdicts"})
    write_atomic(out / "index.html", page(data).encode())
    print(f"wrote {out / 'index.html'}: listen with `voices/audition serve {out}`")
    return 0


class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the audition folder and saves POST /verdicts to verdicts.json (atomically)."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path.split("?")[0] != "/verdicts":
            self.send_error(404)
            return
        length = int(self.headers.get("Content-Length", 0))
        try:
            data = json.loads(self.rfile.read(length))
            if not isinstance(data, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            self.send_error(400, f"verdicts must be a JSON object: {exc}")
            return
        write_json_atomic(Path(self.directory) / "verdicts.json", data)
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args) -> None:  # quiet: one line per save is enough
        if self.command == "POST":
            sys.stderr.write(f"saved verdicts.json ({self.address_string()})\n")


def server(folder: Path, port: int = 0) -> http.server.ThreadingHTTPServer:
    if not (folder / "index.html").is_file():
        raise TtsrigError(f"{folder} has no index.html: make one with `voices/audition render`")
    return http.server.ThreadingHTTPServer(("127.0.0.1", port), partial(Handler, directory=str(folder)))


def serve(args: argparse.Namespace) -> int:
    httpd = server(Path(args.folder), args.port)
    print(f"listening on http://127.0.0.1:{httpd.server_address[1]}/index.html (Ctrl-C to stop)")
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="audition", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("render", help="render the passage through each checkpoint")
    r.add_argument("engine", choices=("default", "strong"), help="default = StyleTTS2, strong = F5-TTS")
    r.add_argument("checkpoints", nargs="+", help="checkpoint files or globs (quote them)")
    r.add_argument("--out", required=True, help="audition folder")
    r.add_argument("--ref", help="reference clip (default: the voice config's)")
    r.add_argument("--ref-text", help="its transcript (F5)")
    r.add_argument("--passage", help="a text file to render instead of the marker passage")
    r.add_argument("--seed", type=int, default=0, help="the same for every checkpoint (default 0)")
    r.add_argument("--verdicts", help="show the verdicts of this file (default: the folder's verdicts.json)")
    r.add_argument("--voice-config", help="voice config (default voices/<engine>.toml)")
    r.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    add_trust_argument(r)
    r.set_defaults(run=render)
    s = sub.add_parser("serve", help="serve an audition folder and save the verdicts made in the page")
    s.add_argument("folder")
    s.add_argument("--port", type=int, default=8765)
    s.set_defaults(run=serve)
    return p


def main(argv: list[str] | None = None) -> int:
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (TtsrigError, CheckpointError) as exc:
        print(f"audition: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
