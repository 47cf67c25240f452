"""`voices/audition`: render the marker passage through many checkpoints, then listen side by side.

    voices/audition render strong 'runs/myvoice-f5/epoch_*.safetensors' --ref clip.wav --ref-text "..." --out auditions/f5
    voices/audition render default runs/myvoice-st2/epoch_2nd_00005.pth runs/myvoice-st2/epoch_2nd_00010.pth --ref clip.wav --out auditions/st2
    voices/audition screen auditions/f5         # before listening: dropped words, cut endings, long silences
    voices/audition serve auditions/f5          # open the printed address; verdicts are saved to verdicts.json

Every checkpoint renders the same passage (voices/markers.py, or --passage FILE) with the same reference
clip and seed, so differences are the checkpoints' (--takes N: N seeds each, seed, seed+1, ..., the same
for every checkpoint). The folder gets one WAV per checkpoint and take, renders.json and
index.html: players side by side, the marker table (which words probe which accent feature), a verdict per
checkpoint and marker, and what each verdict means for training. Verdicts are saved to verdicts.json
(through `serve`; opened as a file, the page keeps them in the browser and offers a download), and a later
render into the same folder (or with --verdicts FILE) shows them again.

`screen` (or `render --screen`) scores every render before anyone listens (voices/screen.py): words an ASR
heard dropped or cut off, long silences, a cut-off ending, clipping, the speaking rate. It writes screen.json
and rewrites index.html with the scores beside each player and a suggestion; the verdicts stay the listener's.

`serve` listens on 127.0.0.1 only and takes verdicts only from its own page: the Host must be its own
address (DNS rebinding), a browser's Origin its own origin, the body JSON of at most MAX_BODY bytes. The
page sends only what changed and the server merges it into verdicts.json (voices/verdicts.py), so a
second browser never wipes the first's verdicts. Only the folder's own files are served: no listings,
no subfolders, no hidden files, no symbolic links.
"""
from __future__ import annotations

import argparse
import errno
import glob
import http.server
import json
import os
import stat
import sys
import threading
import time
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Iterator
from urllib.parse import unquote, urlsplit

from envcheck import interrupt

interrupt.when_run(__name__, "audition")  # before numpy and the ASR backends load

from envcheck import arguments, crashpoint, paths, reading, run_lock
from envcheck.atomic import write_atomic, write_json_atomic
from envcheck.digests import bytes_sha256
from envcheck.errors import TtsrigError
from patches.checkpoints import CheckpointError, add_trust_argument
from voices import asr, markers, screen, verdicts

if TYPE_CHECKING:
    from voices.reference import Reference

PAGE = Path(__file__).with_name("audition.html")
MAX_BODY = 64 * 1024  # a POST carries the changes of one click: a few hundred bytes
API = "/verdicts"  # GET: the current verdicts; POST: changes to merge in
SERVED_SUFFIXES = (".html", ".json", ".wav")


def expand(patterns: list[str]) -> list[Path]:
    found: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(str(Path(pattern).expanduser())))
        if not matches:
            raise TtsrigError(f"no checkpoint matches {pattern}")
        found += [Path(m) for m in matches if not m.endswith(".state.safetensors")]
    return list(dict.fromkeys(found))


def page(data: dict) -> str:
    # JSON inside a <script> element: no "<" at all, so neither "</script>" nor "<!--" (which would make the
    # browser read past the element's end) can come from the data; transcripts are the ASR's, not ours
    payload = json.dumps(data, ensure_ascii=False).replace("<", "\\u003c")
    return PAGE.read_text(encoding="utf-8").replace("__AUDITION_DATA__", payload)


def write_page(out: Path, data: dict, shown: dict, screened: dict | None = None) -> None:
    """index.html from renders.json's data, the verdicts to show and, once screened, screen.json's result."""
    defaults = {"markers": markers.MARKERS, "verdict_labels": markers.VERDICTS, "guidance": markers.GUIDANCE}
    full = {**defaults, **data, "verdicts": shown}
    if screened is not None:
        full["screen"] = screened
    write_atomic(out / "index.html", page(full).encode())


def claim_out(out: Path) -> None:
    """--out must be a new or empty folder, or one an earlier render made: never write over other files."""
    if out.exists() and not out.is_dir():
        raise TtsrigError(f"--out {out} is a file: name a folder for the audition")
    try:
        occupied = out.is_dir() and any(out.iterdir())
    except OSError as exc:
        raise TtsrigError(f"cannot read --out {out} ({exc.strerror}): choose a folder you can write") from None
    if occupied:
        try:
            verdicts.read_renders(out)
        except TtsrigError:
            raise TtsrigError(f"--out {out} holds other files and no renders.json of an earlier audition: "
                              "choose a new or empty folder (render writes index.html, renders.json and WAVs)") from None
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TtsrigError(f"cannot make --out {out} ({exc.strerror}): choose a folder you can write") from None
    if not (out / verdicts.RENDERS).exists():  # marks the folder as an audition's, so a failed render can be re-run
        write_json_atomic(out / verdicts.RENDERS, {"renders": []})


@contextmanager
def claimed(out: Path) -> Iterator[None]:
    """claim_out for the block; when it fails before any WAV is written, the folders it made are removed again."""
    # One render at a time per folder: a second would overwrite the first one's WAVs and renders.json. Not the
    # folder's own lock: `serve` takes that for each verdict it saves, and may run beside a render.
    with run_lock.held("audition-render", out, lambda pid: (
            f"another audition render (process {pid}) is writing into --out {out} now; let it finish (or stop "
            "it), then render again, or choose another --out")):
        with paths.removed_on_failure(out, lambda: any(out.glob("*.wav"))):
            claim_out(out)
            yield


def verdicts_to_show(out: Path, given: str | None) -> dict:
    """The verdicts the page starts with, checked before any rendering: out's own, or --verdicts FILE's.

    Under `serve` the page shows and saves out/verdicts.json, so FILE may not hide a different one there.
    """
    own = out / verdicts.FILE
    current = verdicts.read(own)
    if not given:
        return current
    source = Path(given).expanduser()
    if not source.exists():
        raise TtsrigError(f"--verdicts {given} does not exist: name a verdicts.json, or leave --verdicts out")
    shown = verdicts.read(source, missing_ok=False, own=False)
    if own.exists() and shown != current and source.resolve() != own.resolve():
        raise TtsrigError(f"--verdicts {given} would hide the verdicts already in {own}: leave --verdicts out "
                          "to keep them, or move that file away first")
    return shown


def unique_labels(checkpoints: list[Path]) -> list[str]:
    """A verdict is kept per label: two checkpoints never share one (epoch_5 of two runs)."""
    stems = [c.stem for c in checkpoints]
    if len(set(stems)) == len(stems):
        return stems
    named = [f"{c.parent.name}/{c.stem}" for c in checkpoints]
    if len(set(named)) == len(named):
        return named
    return [f"{i:02d}-{c.stem}" for i, c in enumerate(checkpoints, start=1)]


def read_passage(given: str | None) -> str:
    """The marker passage, or --passage's: a regular UTF-8 file of bounded size (envcheck.reading), read
    before anything is made; a device (/dev/zero) never ends and a pipe would wait, so either is one line."""
    if not given:
        return markers.PASSAGE
    passage = reading.read_text(Path(given).expanduser(), "--passage", "name a UTF-8 text file of the passage to "
                                "render, or leave --passage out for the marker passage", bom=True).strip()
    if not passage:
        raise TtsrigError(f"--passage {given} is empty: write the passage to render into it")
    return passage


MAX_STEM_BYTES = 150  # of a checkpoint's name in a WAV's: a file name may have 255 bytes


def take_name(index: int, checkpoint: Path, take: int, takes: int) -> str:
    """One file per checkpoint and take; a single take keeps the name it always had."""
    stem = checkpoint.stem
    if len(stem.encode()) > MAX_STEM_BYTES:  # a very long checkpoint name: its start and a hash of the whole
        stem = stem.encode()[:MAX_STEM_BYTES - 13].decode(errors="ignore") + "-" + bytes_sha256(stem.encode())[:12]
    return f"{index:02d}-{stem}" + (f"-take{take + 1}" if takes > 1 else "") + ".wav"


def render_take(speaker: object, passage: str, seed: int, out: Path, name: str) -> dict:
    """Render the passage once with one seed, write the WAV, and what the screen can use of the render
    (with the WAV's sha256: renders.json, written after it, names exactly these bytes)."""
    import numpy as np

    from trainers import audio
    from voices import signalcheck

    started = time.monotonic()
    wave = speaker.render(passage, seed)
    took = time.monotonic() - started
    data = audio.wav_bytes(np.clip(wave, -1.0, 1.0))
    write_atomic(out / name, data)
    seconds = len(wave) / audio.SAMPLE_RATE
    entry = {"file": name, "sha256": bytes_sha256(data), "seed": seed, "seconds": round(seconds, 2),
             "rtf": round(took / max(1e-9, seconds), 3),
             # where each sentence but the last ends: the screen looks for words cut off there
             "sentence_ends": [round(e / audio.SAMPLE_RATE, 4)
                               for e in signalcheck.sentence_ends(speaker.piece_lengths)]}
    if speaker.engine == "default":
        entry["collapsed_phonemes"] = speaker.collapsed
    return entry


def voice_settings(args: argparse.Namespace, checkpoint: Path | None = None) -> dict:
    """The voice's settings with render's options over them (no torch needed)."""
    from voices import config as voice_config

    return voice_config.with_options(args.engine, argparse.Namespace(
        voice_config=args.voice_config, checkpoint=str(checkpoint) if checkpoint else None, ref=args.ref,
        ref_text=getattr(args, "ref_text", None)))


def check_voice(args: argparse.Namespace) -> Reference:
    """The voice config and the reference clip (the configured one, else f5-tts's example), read before --out
    is made (no torch needed)."""
    from trainers import audio
    from voices import reference

    chosen = reference.choose(args.engine, voice_settings(args))
    audio.check_header(reference.checked_path(chosen.clip))  # a damaged header now, not after the model loads
    return chosen


def render(args: argparse.Namespace) -> int:
    if args.takes < 1:
        raise TtsrigError(f"--takes {args.takes}: give 1 or more takes per checkpoint")
    if args.seed + args.takes - 1 > arguments.SEED_MAX:  # take N renders with seed + N - 1
        raise TtsrigError(f"--seed {args.seed} with --takes {args.takes} would seed take {args.takes} with "
                          f"{args.seed + args.takes - 1}, above {arguments.SEED_MAX} (the largest seed): choose a "
                          f"seed of at most {arguments.SEED_MAX - args.takes + 1}")
    checkpoints = expand(args.checkpoints)
    passage = read_passage(args.passage)
    out = Path(args.out)
    shown = verdicts_to_show(out, args.verdicts)
    if args.screen:  # a missing backend is named now, not after hours of rendering
        asr.precheck(args.asr, model=args.whisper_model, beam_size=args.asr_beam)
    with claimed(out):
        chosen = check_voice(args)  # after --out's own refusals; a folder made for nothing is removed again
        if chosen.note:  # once for the command, not once per checkpoint
            print(chosen.note, file=sys.stderr)
        # An earlier screen scored the renders about to be replaced: it would describe other audio.
        (out / screen.SCREEN_FILE).unlink(missing_ok=True)
        labels = unique_labels(checkpoints)

        from voices import reference, say  # after the checks: a refusal needs no torch

        device = say.pick_device(args.device)

        # renders.json is the folder's record: from now on it lists only renders of this run, each after its
        # WAV is written, and says `complete` at the end; stopped midway, it still describes what is there.
        data = {"engine": args.engine, "passage": passage, "reference": str(chosen.clip.resolve()),
                # what the clip says (the screen's speaking-rate basis), as the voice was given it
                "reference_text": chosen.text or None, "seed": args.seed, "takes": args.takes, "renders": [],
                "complete": False, "planned": len(checkpoints) * args.takes,
                "markers": markers.MARKERS, "verdict_labels": markers.VERDICTS, "guidance": markers.GUIDANCE}
        record(out, data, shown)
        for index, (checkpoint, label) in enumerate(zip(checkpoints, labels), start=1):
            # every checkpoint speaks with the one reference chosen above (and none repeats its note)
            settings = reference.pinned(voice_settings(args, checkpoint), chosen)
            speaker = say.Speaker(args.engine, settings, device, args.trust_checkpoint)
            for take in range(args.takes):
                name = take_name(index, checkpoint, take, args.takes)
                entry = render_take(speaker, passage, args.seed + take, out, name)
                crashpoint.reached("audition:between-wav-and-record")
                data["renders"].append({"checkpoint": str(checkpoint), "label": label, "take": take, **entry})
                record(out, data, shown)
                print(f"{name}: {entry['seconds']} s (real-time factor {entry['rtf']})")
            del speaker  # the next checkpoint (or the ASR) gets its memory
        data["complete"] = True
        record(out, data, shown)
        if shown and not (out / verdicts.FILE).exists():  # --verdicts FILE: `serve` shows them and saves into them
            write_json_atomic(out / verdicts.FILE, shown)
        if args.screen:
            screen_after_render(args, out, data, shown)
    print(f"wrote {out / 'index.html'}: listen with `voices/audition serve {out}`")
    return 0


def record(out: Path, data: dict, shown: dict) -> None:
    """renders.json as it now stands, and the page of exactly those renders."""
    write_json_atomic(out / verdicts.RENDERS, data)
    write_page(out, data, shown)


def screen_after_render(args: argparse.Namespace, out: Path, data: dict, shown: dict) -> None:
    try:
        backend = asr.find(args.asr, model=args.whisper_model, language=args.language, device=args.device,
                           beam_size=args.asr_beam)
        note = "word check skipped (--asr none)" if args.asr == "none" else None
        result = screen.screen(out, backend=backend, backend_note=note, reference_text=data["reference_text"],
                               progress=print)
    except TtsrigError as exc:
        raise TtsrigError(f"{exc} (the renders are written: screen them with `voices/audition screen {out}`)") \
            from None
    write_page(out, data, shown, result)
    print("\n".join(screen.summary_lines(result)))


def screen_folder(args: argparse.Namespace) -> int:
    """`audition screen FOLDER`: screen.json, and the folder's page rewritten with the results."""
    folder = Path(args.folder)
    data = screen.read_renders(folder)  # not an audition folder: one line, before any backend loads
    shown = verdicts.read(folder / verdicts.FILE)  # a verdicts.json the page could not show: refused now
    say = None if args.json else (lambda line: print(line, file=sys.stderr))
    result = screen.run(args, progress=say)
    write_page(folder, data, shown, result)
    screen.report(result, folder, args.json)
    if not args.json:
        print(f"wrote {folder / 'index.html'}: the scores are beside each player")
    return 0


class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the audition folder's own files and merges POST /verdicts into verdicts.json."""

    server: AuditionServer
    timeout = 30  # seconds per read or write: a stalled client does not hold a thread forever

    # -- who may ask -------------------------------------------------------------------------------------

    def own_origins(self) -> set[str]:
        port = self.server.server_address[1]
        return {f"127.0.0.1:{port}", f"localhost:{port}"}

    def foreign(self) -> str | None:
        """Why this request is not from this server's own page (or a local client), or None."""
        host = (self.headers.get("Host") or "").strip().lower()
        if host not in self.own_origins():
            return f"Host {host or '(none)'} is not this server's (DNS rebinding?): open http://127.0.0.1:" \
                   f"{self.server.server_address[1]}/index.html"
        origin = self.headers.get("Origin")
        if origin is not None and origin.strip().lower() != f"http://{host}":
            return f"Origin {origin} is not this page's: verdicts are taken only from the audition page itself"
        site = self.headers.get("Sec-Fetch-Site")
        if site is not None and site.strip().lower() not in ("same-origin", "none"):
            return f"requested by another site (Sec-Fetch-Site: {site}): open the audition page directly"
        return None

    # -- answers -----------------------------------------------------------------------------------------

    def end_headers(self) -> None:
        # no CORS header is ever granted; nothing of the folder may be framed or embedded by other sites
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        self.send_header("Content-Security-Policy", "frame-ancestors 'none'")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def answer(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def refuse(self, code: int, reason: str) -> None:
        """A short reason, and the connection closed: an unread body must not be taken for the next request."""
        self.close_connection = True
        reason = printable(reason)  # it may quote a header: no terminal escapes reach the user's terminal
        self.answer(code, (reason + "\n").encode(), "text/plain; charset=utf-8")
        if code != 404:  # a browser asks for /favicon.ico on every load
            sys.stderr.write(f"refused {self.command} {printable(self.route())}: {code} {reason}\n")

    def send_json(self, data: dict) -> None:
        self.answer(200, json.dumps(data, ensure_ascii=False).encode(), "application/json")

    def route(self) -> str:
        return urlsplit(self.path).path

    # -- reading -----------------------------------------------------------------------------------------

    def send_head(self):  # noqa: ANN201 (http.server's contract: an open file or None)
        reason = self.foreign()
        if reason:
            self.refuse(403, reason)
            return None
        if self.route() == API:
            try:
                self.send_json(verdicts.read(self.server.folder / verdicts.FILE))
            except TtsrigError as exc:
                self.refuse(409, str(exc))
            return None
        found = self.open_own_file(self.route())
        if found is None:
            self.refuse(404, "not found: only the audition's own files are served")
            return None
        handle, name = found
        self.send_response(200)
        self.send_header("Content-Type", self.guess_type(name))
        self.send_header("Content-Length", str(os.fstat(handle.fileno()).st_size))
        self.end_headers()
        return handle

    def open_own_file(self, route: str) -> tuple[BinaryIO, str] | None:
        """A regular file directly in the folder, not hidden, of a kind render writes; never a link out."""
        try:
            name = unquote(route, errors="strict").removeprefix("/") or "index.html"
        except UnicodeDecodeError:
            return None
        if "/" in name or "\\" in name or "\0" in name or name.startswith(".") \
                or not name.lower().endswith(SERVED_SUFFIXES):
            return None  # %2e%2e, subfolders, temporary files of atomic writes, anything render does not write
        try:
            fd = os.open(self.server.folder / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        return os.fdopen(fd, "rb"), name

    # -- writing -----------------------------------------------------------------------------------------

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        reason = self.foreign()
        if reason:
            return self.refuse(403, reason)
        if self.route() != API:
            return self.refuse(404, f"not found: verdicts are posted to {API}")
        if self.headers.get_content_type() != "application/json" or \
                (self.headers.get_content_charset() or "utf-8") != "utf-8":
            return self.refuse(415, "verdicts must be sent as Content-Type: application/json (UTF-8)")
        body = self.read_body()
        if body is None:
            return None
        try:
            labels, features = verdicts.known(verdicts.read_renders(self.server.folder))
            changes = verdicts.checked_changes(reading.loads_json(body.decode("utf-8")), labels, features)
        except (UnicodeDecodeError, ValueError) as exc:
            return self.refuse(400, f"not accepted: {exc}")
        except TtsrigError as exc:
            return self.refuse(409, str(exc))
        try:
            merged = verdicts.save_changes(self.server.folder, changes)
        except TtsrigError as exc:  # verdicts.json on disk is not ours to merge into, or cannot be written
            return self.refuse(409, str(exc))
        self.send_json(merged)
        sys.stderr.write(f"saved verdicts.json ({sum(len(v) for v in changes.values())} changed)\n")
        return None

    def do_OPTIONS(self) -> None:  # noqa: N802 (a CORS preflight: never granted)
        self.refuse(405, "no cross-origin requests are granted")

    def read_body(self) -> bytes | None:
        """The body, if its declared length is within MAX_BODY; refused (unread) otherwise."""
        if self.headers.get("Transfer-Encoding"):
            self.refuse(411, "send the verdicts with a Content-Length")
            return None
        declared = (self.headers.get("Content-Length") or "").strip()
        if not (declared.isascii() and declared.isdigit()):
            self.refuse(411, "send the verdicts with a Content-Length")
            return None
        length = int(declared)
        if length > MAX_BODY:
            self.refuse(413, f"body of {length} bytes is over the {MAX_BODY}-byte limit: send only the changes")
            return None
        try:
            body = self.rfile.read(length)
        except OSError:  # the client stalled past `timeout` or went away
            self.close_connection = True
            return None
        if len(body) != length:
            self.refuse(400, "body shorter than its Content-Length")
            return None
        return body

    def log_request(self, code="-", size="-") -> None:  # noqa: ANN001 (quiet: saves and refusals say enough)
        pass

    def log_error(self, format: str, *args: object) -> None:  # noqa: A002 (http.server's signature)
        # http.server's only errors here: a client that sent nothing within `timeout`, or a request line it
        # cannot parse (already answered with 400). Counted, not printed: clients that hold connections open
        # would otherwise fill the terminal with one line each.
        self.server.count_dropped()


def printable(text: str) -> str:
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


class AuditionServer(http.server.ThreadingHTTPServer):
    """A ThreadingHTTPServer that knows its folder (resolved once: links in its path are the user's own).

    Connections that time out, or that their client drops, are counted and said once when `serve` stops,
    never printed one by one or as tracebacks; at most MAX_CLIENTS are served at once (a page needs a few),
    and one more is closed at once instead of holding a thread."""

    daemon_threads = True
    request_queue_size = 64  # a page loads a few WAVs at once; several browsers may save at once
    MAX_CLIENTS = 64

    def __init__(self, address: tuple[str, int], folder: Path) -> None:
        self.folder = folder
        self.dropped = 0
        self.clients = threading.BoundedSemaphore(self.MAX_CLIENTS)
        self.counter_lock = threading.Lock()
        super().__init__(address, partial(Handler, directory=str(folder)))

    def count_dropped(self) -> None:
        with self.counter_lock:
            self.dropped += 1

    def process_request(self, request, client_address) -> None:  # noqa: ANN001 (socketserver's signature)
        if not self.clients.acquire(blocking=False):
            self.count_dropped()
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address) -> None:  # noqa: ANN001
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.clients.release()

    def handle_error(self, request, client_address) -> None:  # noqa: ANN001 (socketserver's signature)
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            self.count_dropped()  # a client that went away mid-answer: nothing to tell the user
            return
        sys.stderr.write(f"error answering a request: {printable(str(error) or type(error).__name__)}\n")


def audition_folder(folder: Path) -> Path:
    """The folder, resolved, if `serve` may serve it; one line naming the problem otherwise."""
    if not folder.exists():
        raise TtsrigError(f"{folder} does not exist: make it with `voices/audition render ... --out {folder}`")
    if not folder.is_dir():
        raise TtsrigError(f"{folder} is a file: name the folder `voices/audition render --out` made")
    verdicts.read_renders(folder)
    if not (folder / "index.html").is_file():
        raise TtsrigError(f"{folder} has no index.html: make one with `voices/audition render`")
    verdicts.read(folder / verdicts.FILE)  # a verdicts.json the server could not merge into: refuse now, not per click
    return folder.resolve()


def server(folder: Path, port: int = 0) -> AuditionServer:
    folder = audition_folder(Path(folder))
    try:
        return AuditionServer(("127.0.0.1", port), folder)
    except OverflowError:
        raise TtsrigError(f"--port {port} is not a port number: choose 1024-65535 (0 picks a free one)") from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise TtsrigError(f"port {port} is already in use (another `audition serve`?): stop that one, "
                              "or choose another with --port N (--port 0 picks a free one)") from None
        if exc.errno == errno.EACCES:
            raise TtsrigError(f"port {port} needs root: choose one above 1023 with --port N") from None
        raise TtsrigError(f"cannot listen on 127.0.0.1:{port} ({exc.strerror}): choose another port with --port N") \
            from None


def serve(args: argparse.Namespace) -> int:
    httpd = server(Path(args.folder), args.port)
    note = verdicts.incomplete(Path(args.folder), verdicts.read_renders(Path(args.folder)))
    if note:
        print(f"note: {note}", file=sys.stderr)
    print(f"listening on http://127.0.0.1:{httpd.server_address[1]}/index.html (Ctrl-C to stop)", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
        if httpd.dropped:
            print(f"{httpd.dropped} connection(s) ended without an answer (timed out, closed by the client, "
                  f"malformed, or beyond {httpd.MAX_CLIENTS} at once); no verdict was lost", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = arguments.Parser(prog="audition", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("render", help="render the passage through each checkpoint")
    r.add_argument("engine", choices=("default", "strong"), help="default = StyleTTS2, strong = F5-TTS")
    r.add_argument("checkpoints", nargs="+", help="checkpoint files or globs (quote them)")
    r.add_argument("--out", required=True, help="audition folder")
    r.add_argument("--ref", help="reference clip (default: the voice config's)")
    r.add_argument("--ref-text", help="its transcript (F5 needs it; the screen's speaking rate uses it)")
    r.add_argument("--passage", help="a text file to render instead of the marker passage")
    r.add_argument("--seed", type=arguments.SEED, default=0,
                   help=f"the same for every checkpoint (0 to {arguments.SEED_MAX}; default 0)")
    r.add_argument("--takes", type=arguments.whole(1, 100), default=1, metavar="N",
                   help="renders per checkpoint, with seeds seed, seed+1, ... (default 1)")
    r.add_argument("--verdicts", help="show the verdicts of this file (default: the folder's verdicts.json)")
    r.add_argument("--voice-config", help="voice config (default voices/<engine>.toml)")
    r.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    r.add_argument("--screen", action="store_true", help="screen the renders afterwards (see `audition screen`)")
    screen.add_asr_arguments(r)
    add_trust_argument(r)
    r.set_defaults(run=render)
    c = sub.add_parser("screen", help="score every render before listening: dropped or cut words, long silences, "
                                      "cut-off endings, clipping, speaking rate")
    screen.add_arguments(c)
    c.set_defaults(run=screen_folder)
    s = sub.add_parser("serve", help="serve an audition folder and save the verdicts made in the page")
    s.add_argument("folder")
    s.add_argument("--port", type=arguments.whole(0, 65535), default=8765, help="port on 127.0.0.1 (default 8765; 0 picks a free one)")
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
