"""`python -m trainers.fetch [--only f5|styletts2] [--trust]`: fetch, while online, everything the voices and
the trainers download, into the caches they read it from, so the machine speaks and trains offline afterwards.

  f5         the F5-TTS pretrain (F5TTS_v1_Base) and its Vocos vocoder: the Hugging Face cache
  styletts2  the LibriTTS pretrain and its config (the Hugging Face cache); the text aligner, the pitch
             extractor and PL-BERT (GitHub files, cached by cached_path); WavLM (the Hugging Face cache)

It prints one line per file: where it is, and how its bytes were checked (online, a Hugging Face weights
file against the sha256 the hub answers for it now; offline, only against the name the cache filed it under,
which says the copy is whole, not where it came from; GitHub publishes no hash). Offline (HF_HUB_OFFLINE=1 or
TTSRIG_OFFLINE=1) it reads the caches only, which tells whether a machine is ready.

A legacy pickle among the files (the StyleTTS2 pretrain, and the pieces torch's restricted loader refuses)
is not trusted here: whether to run code from a file is your decision, so the command that trusts it is
printed. --trust trusts exactly those files, as `python -m patches trust add` does, but vouches for a file
only where no one else could have put it: it refuses (one line, exit 2, nothing trusted) a file that another
user could change (the file, a link to it, or a folder above either owned by someone other than you or root,
or writable by group or others without the sticky bit: the trust list's own rule), and a pickle that would
call something that runs commands or code (os.system, eval, ...). Each file is read once: its
hash check, the verdict and the sha256 trusted are of the same bytes.
"""
from __future__ import annotations

from envcheck import interrupt

interrupt.when_run(__name__, "trainers.fetch", "run it again: what was fetched stays cached")  # before torch

import argparse
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from envcheck import arguments
from envcheck.errors import TtsrigError
from patches.checkpoints import CheckpointBytes, describe_checkpoint, needs_trust, read_checkpoint
from patches.pickle_scan import RUNTIME_GLOBAL, refused_globals, scan_checkpoint
from patches.trust import exposure
from trainers import f5_model, hub, styletts2_pieces

if TYPE_CHECKING:
    from patches.trust import TrustList

GROUPS = ("f5", "styletts2")
PICKLED = (".pth", ".t7", ".bin", ".pt")  # weights in torch's pickle format: loading may need trust
GITHUB_CHECK = "GitHub publishes no hash for it; cached by cached_path"
HF_URL = "https://huggingface.co/"
# What --trust tells the owner of a cache that others can change: a cache of their own, filled again.
OWN_CACHE = ("Fetch into caches only you can write (HF_HOME or HF_HUB_CACHE, and CACHED_PATH_CACHE_ROOT) with "
             f"{hub.FETCH_COMMAND} while online")

# Globals whose call runs commands or code, or reaches what does (--trust never vouches for them; loading
# with trust would call them). torch's restricted loader refuses all of them, and so does pickle_scan's
# refused list, which also holds plain data classes (munch.Munch); these are the ones that can act. A name's
# module or any dotted part (protocol 4 resolves `torch.serialization` / `os.system` to os.system) counts.
CODE_MODULES = frozenset({
    "os", "posix", "nt", "subprocess", "_posixsubprocess", "sys", "shutil", "importlib", "runpy", "pty", "socket",
    "ctypes", "builtins", "__builtin__", "pickle", "_pickle", "marshal", "code", "codeop", "pdb", "webbrowser",
    "multiprocessing", "signal", "timeit", "tempfile", "pathlib", "io", "_io", "operator", "_operator",
    "platform", "commands", "popen2", "asyncio", "urllib", "http", "ftplib", "smtplib", "telnetlib", "glob"})
# builtins that run code, open files or change objects. Not getattr: the published StyleTTS2 checkpoints call it
# (torch >= 2.6 refuses them with "Unsupported global: GLOBAL getattr", yl4579/StyleTTS2#348), so --trust must
# take it. getattr can reach what runs code (a function's __globals__), so this list only stops the plain
# payloads; what protects a user is that no one else could have put the file there, and online, the hub's hash.
CODE_BUILTINS = frozenset({
    "eval", "exec", "compile", "__import__", "open", "setattr", "delattr", "breakpoint", "input",
    "globals", "locals", "vars", "__build_class__", "exit", "quit", "help"})
# torch's own callables that load, save, compile or call native code.
TORCH_CODE = frozenset({
    "save", "load", "hub", "jit", "serialization", "package", "ops", "_ops", "_C", "cpp_extension", "_dynamo",
    "_inductor", "compile", "library", "_classes", "multiprocessing", "distributed", "onnx", "export",
    "_import_dotted_name"})


def runs_code(name: str) -> bool:
    """Whether a global (as pickle_scan names it) can run commands or code when unpickling calls it."""
    if name == RUNTIME_GLOBAL:  # its name is computed while unpickling: it can be anything
        return True
    module, *rest = name.split(".")
    if any(part.startswith("__") and part.endswith("__") for part in rest[:-1]) or (
            rest and rest[-1] in ("__globals__", "__builtins__", "__subclasses__")):
        return True  # reaching through a dunder: from any function to its module's globals
    if module in ("builtins", "__builtin__"):
        return len(rest) != 1 or rest[0] in CODE_BUILTINS
    if module == "torch" and any(part in TORCH_CODE for part in rest):
        return True
    return any(part in CODE_MODULES for part in (module, *rest))


def code_running_globals(checkpoint: CheckpointBytes) -> list[str]:
    """The globals outside torch's allowlist that these bytes' pickles would call and that can run code."""
    return [name for name in refused_globals(scan_checkpoint(checkpoint.data)) if runs_code(name)]


@dataclass(frozen=True)
class Fetched:
    label: str  # what it is
    path: Path  # where it is now
    origin: str  # where it came from (the trust list's note)
    pickled: bool
    hub_file: hub.HubFile | None  # its id on the hub, to ask for its sha256; None: a GitHub file

    def check(self, digest: str | None = None) -> str:
        """How its bytes were checked. `digest`: the sha256 of the bytes read for the trust decision, so the
        bytes checked are the ones trusted."""
        return hub.cache_check(self.path, self.hub_file, digest=digest) if self.hub_file else GITHUB_CHECK


@dataclass(frozen=True)
class Source:
    group: str  # what --only selects
    label: str
    fetch: Callable[[], list[Fetched]]


def _hub_file(label: str, path: Path, origin: str) -> Fetched:
    return Fetched(label, path, origin, path.name.endswith(PICKLED), hub.parse(origin))


def _in_folder(label: str, repo: str, folder: Path, files: list[str],
               required: list[tuple[str, ...]]) -> list[Fetched]:
    """The files a repository's cache folder holds, each of `required` (one of each tuple) among them."""
    lacking = [" or ".join(names) for names in required if not any((folder / n).is_file() for n in names)]
    if lacking:
        raise TtsrigError(f"the cache of {repo} ({folder}) lacks {', '.join(lacking)}: it was fetched only in part")
    return [_hub_file(f"{label} {name}", folder / name, f"hf://{repo}/{name}") for name in files
            if (folder / name).is_file()]


def f5_pretrain() -> list[Fetched]:
    path = Path(hub.download(f5_model.PRETRAINED, instead="--pretrained PATH (trainers.f5) or --checkpoint PATH"))
    return [_hub_file("F5-TTS pretrain", path, f5_model.PRETRAINED)]


def vocoder() -> list[Fetched]:
    """What voices/f5.vocoder_folder reads for the default vocoder setting."""
    return _in_folder("vocoder", f5_model.VOCODER, f5_model.vocoder_files(), f5_model.VOCODER_FILES,
                      [(name,) for name in f5_model.VOCODER_FILES])


def styletts2_piece(name: str, layout: str, url: str) -> list[Fetched]:
    path = styletts2_pieces.download(url)
    label = f"StyleTTS2 {name} ({layout})"
    if styletts2_pieces.on_hub(url):
        repo, filename = url[len(HF_URL):].split("/resolve/main/", 1)
        return [Fetched(label, path, url, layout.endswith(PICKLED), hub.HubFile(repo, filename))]
    return [Fetched(label, path, url, layout.endswith(PICKLED), None)]


def wavlm() -> list[Fetched]:
    folder = styletts2_pieces.wavlm_folder(styletts2_pieces.WAVLM)
    weights = tuple(name for name in styletts2_pieces.WAVLM_FILES if name != "config.json")
    return _in_folder("WavLM", styletts2_pieces.WAVLM, folder, styletts2_pieces.WAVLM_FILES,
                      [("config.json",), weights])


def sources(groups: tuple[str, ...]) -> list[Source]:
    every = [Source("f5", "F5-TTS pretrain", f5_pretrain), Source("f5", "vocoder", vocoder)]
    for name, (layout, url) in styletts2_pieces.PIECES.items():
        every.append(Source("styletts2", f"StyleTTS2 {name}", partial(styletts2_piece, name, layout, url)))
    every.append(Source("styletts2", "WavLM", wavlm))
    return [source for source in every if source.group in groups]


class Trust:
    """What happens to a legacy pickle: printed for the user to trust, or trusted now (--trust)."""

    def __init__(self, trust_now: bool) -> None:
        self.trust_now = trust_now
        self.waiting: list[Path] = []
        self.ready: list[tuple[Fetched, str]] = []  # --trust: (file, sha256), trusted once every file passed
        self._list: TrustList | None = None

    def trust_list(self) -> TrustList:  # read only when a pickle needs it
        from patches.trust import TrustList

        if self._list is None:
            self._list = TrustList.load()
        return self._list

    def exposed(self, file: Fetched) -> str | None:
        """--trust, before the bytes are read: whether another user could have put them there (the file, its
        link, where it leads, a folder above), as the trust list's own rule says. Checked first, so the bytes
        read next come from places only this user or root can change."""
        if not self.trust_now:
            return None
        return exposure(file.path, what="the file", link_what="its link", harm="who could replace the file",
                        own_fix=OWN_CACHE)

    def handle(self, file: Fetched, checkpoint: CheckpointBytes, exposed: str | None) -> None:
        if not needs_trust(checkpoint):
            return
        if self.trust_now:
            if exposed:
                raise TtsrigError(f"refused to trust {file.label} at {file.path}: {exposed}. Nothing was trusted (the "
                                  "copy there may already be someone else's).")
            calls = code_running_globals(checkpoint)
            if calls:
                raise TtsrigError(
                    f"refused to trust {file.label} at {file.path}: unpickling it would call {', '.join(calls)}, which "
                    "can run commands or code, and --trust vouches only for pickles of data and torch classes. "
                    f"Nothing was trusted. If you did not expect it, delete {file.path.resolve()} and run "
                    f"{hub.FETCH_COMMAND} again while online; `python -m patches inspect {file.path}` lists what "
                    "it would import, and trusting it anyway is yours to do with `python -m patches trust add`.")
            print(f"  {describe_checkpoint(checkpoint)}")
            self.ready.append((file, checkpoint.sha256))
        elif self.trust_list().contains(checkpoint.sha256):
            print(f"  a legacy pickle, already in your trust list {self.trust_list().path}")
        else:
            self.waiting.append(file.path)
            print(f"  a legacy pickle: loading it runs code from the file, so it loads only once you trust it. "
                  f"If you trust its source: python -m patches trust add {file.path}")

    def trust_ready(self) -> None:
        """--trust: the files that passed, added once every file was checked (a refusal adds none)."""
        for file, digest in self.ready:
            self.trust_list().add(file.path, f"{file.label}, from {file.origin} (trainers.fetch --trust)",
                                  digest=digest)
            print(f"trusted {digest} in {self.trust_list().path} ({file.path})")
            print("  trusted by --trust, as `python -m patches trust add` does")


def fetch(groups: tuple[str, ...], trust_now: bool) -> int:
    trust = Trust(trust_now)
    chosen = sources(groups)
    failed: list[tuple[str, str]] = []
    count = 0
    for source in chosen:
        try:
            files = source.fetch()
        except hub.DamagedCopy:  # its own fix (delete the blob), not "fetch it"
            raise
        except Exception as exc:  # not cached offline, the network, a damaged copy: the others still come
            failed.append((source.label, hub.cause(exc)))  # the advice is ours
            continue
        for file in files:
            exposed = trust.exposed(file) if file.pickled else None  # before its bytes are read
            # a pickle is read once: its hash check, torch's verdict and the sha256 trusted use these bytes
            checkpoint = read_checkpoint(file.path) if file.pickled else None
            try:
                check = file.check(checkpoint.sha256 if checkpoint else None)
            except OSError as exc:
                raise TtsrigError(f"cannot read {file.path}: {exc.strerror or exc}. Check its permissions, or delete "
                                  f"it and run {hub.FETCH_COMMAND} again while online.") from None
            print(f"{file.label}: {file.path} ({check})", flush=True)
            count += 1
            if checkpoint is not None:  # a trust list that cannot be read stops here, in one line
                trust.handle(file, checkpoint, exposed)
            del checkpoint  # a large pickle is held once, for one file at a time
    trust.trust_ready()
    if failed:
        raise TtsrigError(not_fetched(failed, len(chosen), groups))
    print(f"{count} files are in the caches: with TTSRIG_OFFLINE=1 the voices and the trainers read them from there"
          + (f"; {len(trust.waiting)} legacy pickle(s) load only after you trust them (the commands above, or "
             "run this again with --trust)" if trust.waiting else ""))
    return 0


def not_fetched(failed: list[tuple[str, str]], total: int, groups: tuple[str, ...]) -> str:
    names = ", ".join(label for label, _ in failed)
    command = hub.FETCH_COMMAND + (f" --only {groups[0]}" if len(groups) == 1 else "")
    if hub.offline():
        from cached_path import get_cache_dir
        from huggingface_hub import constants

        return (f"{len(failed)} of the {total} downloads are not in the caches, and downloads are off "
                f"({hub.OFFLINE_SWITCHES}): {names} (the first: {failed[0][1]}). Run {command} while online: here, "
                f"or on a connected machine and copy its caches here (Hugging Face: {constants.HF_HUB_CACHE}; "
                f"cached_path: {get_cache_dir()}).")
    return (f"{len(failed)} of the {total} downloads failed: {names} (the first: {failed[0][1]}). Check the "
            f"connection and run {command} again; what was fetched stays cached.")


def build_parser() -> argparse.ArgumentParser:
    p = arguments.Parser(prog="python -m trainers.fetch", description=__doc__,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=GROUPS, help="fetch one voice's files (default: both)")
    p.add_argument("--trust", action="store_true",
                   help="trust the legacy pickles among the files (as `python -m patches trust add` does): this lets "
                        "them run code when they load, so only if you trust where they come from")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return fetch((args.only,) if args.only else GROUPS, args.trust)
    except TtsrigError as exc:
        print(f"trainers.fetch: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
