"""`python -m trainers.fetch [--only f5|styletts2] [--trust]`: fetch, while online, everything the voices and
the trainers download, into the caches they read it from, so the machine speaks and trains offline afterwards.

  f5         the F5-TTS pretrain (F5TTS_v1_Base) and its Vocos vocoder: the Hugging Face cache
  styletts2  the LibriTTS pretrain and its config (the Hugging Face cache); the text aligner, the pitch
             extractor and PL-BERT (GitHub files, cached by cached_path); WavLM (the Hugging Face cache)

It prints one line per file: where it is, and how its bytes were checked (a Hugging Face weights file
against the sha256 the hub publishes for it; GitHub publishes no hash). Offline (HF_HUB_OFFLINE=1 or
TTSRIG_OFFLINE=1) it reads the caches only, which tells whether a machine is ready.

A legacy pickle among the files (the StyleTTS2 pretrain, and the pieces torch's restricted loader refuses)
is not trusted here: whether to run code from a file is your decision, so the command that trusts it is
printed. --trust trusts exactly those files, as `python -m patches trust add` does.
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
from patches.checkpoints import needs_trust, read_checkpoint
from trainers import f5_model, hub, styletts2_pieces

if TYPE_CHECKING:
    from patches.trust import TrustList

GROUPS = ("f5", "styletts2")
PICKLED = (".pth", ".t7", ".bin", ".pt")  # weights in torch's pickle format: loading may need trust
GITHUB_CHECK = "GitHub publishes no hash for it; cached by cached_path"


@dataclass(frozen=True)
class Fetched:
    label: str  # what it is
    path: Path  # where it is now
    check: str  # how its bytes were checked
    origin: str  # where it came from (the trust list's note)
    pickled: bool


@dataclass(frozen=True)
class Source:
    group: str  # what --only selects
    label: str
    fetch: Callable[[], list[Fetched]]


def _hub_file(label: str, path: Path, origin: str) -> Fetched:
    return Fetched(label, path, hub.cache_check(path), origin, path.name.endswith(PICKLED))


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
        return [Fetched(label, path, hub.cache_check(path), url, layout.endswith(PICKLED))]
    return [Fetched(label, path, GITHUB_CHECK, url, layout.endswith(PICKLED))]


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
        self._list: TrustList | None = None

    def trust_list(self) -> TrustList:  # read only when a pickle needs it
        from patches.trust import TrustList

        if self._list is None:
            self._list = TrustList.load()
        return self._list

    def handle(self, file: Fetched) -> None:
        checkpoint = read_checkpoint(file.path)
        if not needs_trust(checkpoint):
            return
        if self.trust_now:
            from patches.cli import trust_file

            trust_file(self.trust_list(), file.path, f"{file.label}, from {file.origin} (trainers.fetch --trust)")
            print("  trusted by --trust, as `python -m patches trust add` does")
        elif self.trust_list().contains(checkpoint.sha256):
            print(f"  a legacy pickle, already in your trust list {self.trust_list().path}")
        else:
            self.waiting.append(file.path)
            print(f"  a legacy pickle: loading it runs code from the file, so it loads only once you trust it. "
                  f"If you trust its source: python -m patches trust add {file.path}")


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
            print(f"{file.label}: {file.path} ({file.check})", flush=True)
            count += 1
            if file.pickled:  # a trust list that cannot be read stops here, in one line
                trust.handle(file)
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
