"""Hugging Face ids, parsed in one place: `hf://org/repo/path/to/file` (a file: the trainers' --pretrained,
a voice's checkpoint) and `org/repo` (a repository: a voice's vocoder); and the downloads into the Hugging
Face cache, with what every offline miss tells the user to run. Imports neither torch nor huggingface_hub
until a download is asked for, so voices/config.py can check ids cheaply.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from envcheck.digests import file_sha256
from envcheck.errors import TtsrigError

PREFIX = "hf://"
FORM = "hf://org/repo/path/to/file"
EXAMPLE = "hf://SWivid/F5-TTS/F5TTS_v1_Base/model_1250000.safetensors"
# The hub's own rule for each half of a repo id (huggingface_hub's validate_repo_id): letters, digits,
# '-', '_', '.', not starting or ending with '-' or '.', no '--' or '..', at most 96 characters in all.
_NAME = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?$")
# The command that fills every cache the voices and the trainers read (trainers/fetch.py): what each
# "not in the cache" message tells the user to run while online.
FETCH_COMMAND = "python -m trainers.fetch"
OFFLINE_SWITCHES = "HF_HUB_OFFLINE=1 or TTSRIG_OFFLINE=1"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class DamagedCopy(TtsrigError):
    """A cached file whose bytes are not the ones the hub published."""


def offline() -> bool:
    """Whether downloads are off: then every file comes from a cache or a local path."""
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "") or os.environ.get("TTSRIG_OFFLINE") == "1"


def cause(exc: BaseException) -> str:
    """The first sentence of a library's error: its cause, without advice that is not ttsrig's."""
    text = str(exc).strip()
    return text.splitlines()[0].split(". ", 1)[0].rstrip(".")[:300] if text else type(exc).__name__


@dataclass(frozen=True)
class HubFile:
    repo: str  # org/repo
    filename: str  # path inside the repository

    def __str__(self) -> str:
        return f"{PREFIX}{self.repo}/{self.filename}"


def is_hub_file(spec: str | None) -> bool:
    return bool(spec) and str(spec).startswith(PREFIX)


def _repo_problem(org: str, repo: str) -> str | None:
    for part in (org, repo):
        if not _NAME.match(part) or "--" in part or ".." in part:
            return (f"{part!r} is not a valid organisation or repository name (letters, digits, '-', '_', '.'; "
                    "not starting or ending with '-' or '.')")
    if len(org) + 1 + len(repo) > 96 or repo.endswith(".git"):
        return f"{org}/{repo} is not a valid repository id (at most 96 characters, not ending in .git)"
    return None


def _file_problem(path: list[str]) -> str | None:
    if not path or path == [""]:
        return "the path of the file inside the repository is missing"
    for segment in path:
        if segment in ("", ".", "..") or "\\" in segment:
            return f"the file path {'/'.join(path)!r} has an empty, '.' or '..' part, or a backslash"
    return None


def parse(spec: str) -> HubFile:
    """`hf://org/repo/path/to/file` -> HubFile; anything else is one line naming the form and the fix."""
    if not is_hub_file(spec):
        raise TtsrigError(f"{spec!r} is not a Hugging Face file id: expected {FORM} (e.g. {EXAMPLE}), or a local path")
    parts = spec[len(PREFIX):].split("/")
    if len(parts) == 1:
        problem = "it names only an organisation, no repository or file"
    else:
        problem = _repo_problem(parts[0], parts[1]) or (
            "it names a repository but no file" if len(parts) == 2 else _file_problem(parts[2:]))
    if problem:
        raise TtsrigError(f"{spec!r} is not a Hugging Face file id: {problem}. Expected {FORM} (e.g. {EXAMPLE}); "
                          "fix the id, or give a local path instead.")
    return HubFile(f"{parts[0]}/{parts[1]}", "/".join(parts[2:]))


def is_repo_id(value: str) -> bool:
    """`org/repo` as the hub spells repository ids (a vocoder setting that is not a folder)."""
    parts = value.split("/")
    return len(parts) == 2 and _repo_problem(*parts) is None


def download(spec: str, *, instead: str) -> str:
    """The local path of a `hf://` file, from the Hugging Face cache or downloaded into it (offline: the cache
    only). `instead` names the option that takes a local path (e.g. "--pretrained PATH")."""
    hub_file = parse(spec)
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return hf_hub_download(hub_file.repo, hub_file.filename, local_files_only=offline())
    except LocalEntryNotFoundError:
        raise TtsrigError(f"{spec} is not in the Hugging Face cache and cannot be downloaded (offline, or "
                          f"downloads turned off by {OFFLINE_SWITCHES}). Check the id ({FORM}); while online, fetch "
                          f"it ({FETCH_COMMAND} fetches the pretrains, huggingface-cli download {hub_file.repo} "
                          f"{hub_file.filename} any file), or pass {instead}.") from None
    except RepositoryNotFoundError:
        raise TtsrigError(f"{spec}: the repository {hub_file.repo} does not exist on the Hugging Face hub (or needs a "
                          f"login). Check the id ({FORM}), or pass {instead}.") from None
    except EntryNotFoundError:
        raise TtsrigError(f"{spec}: the repository {hub_file.repo} has no file {hub_file.filename}. Check the path "
                          f"({FORM}), or pass {instead}.") from None
    except Exception as exc:  # network and hub errors: say what and what to do
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TtsrigError(f"could not fetch {spec}: {first}. Pass {instead} to a local copy.") from None


def download_repo(repo: str, files: list[str], *, what: str, instead: str) -> Path:
    """The cache folder of repository `repo` holding those of `files` it has, downloaded into the Hugging Face
    cache when online (offline: the cache only). `what` names it ("vocoder"), `instead` the local alternative."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo, allow_patterns=files, local_files_only=offline()))
    except Exception as exc:  # offline and not cached, or the hub refused
        raise TtsrigError(f"{what} {repo} is not in the Hugging Face cache and cannot be downloaded: {cause(exc)}. "
                          f"While online, run {FETCH_COMMAND} (it fetches it into the cache), or {instead}.") from None


def _published_sha256(hub_file: HubFile | None) -> tuple[str | None, str]:
    """The sha256 the hub answers for a large (LFS) file now (its etag), and, when there is none, why: offline,
    the hub not reachable, or a small git file (whose etag is a git hash)."""
    if hub_file is None:
        return None, "no hub id was given to ask the hub with"
    if offline():
        return None, f"the hub was not asked (offline: {OFFLINE_SWITCHES})"
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    try:
        etag = (get_hf_file_metadata(hf_hub_url(hub_file.repo, hub_file.filename)).etag or "").lower()
    except Exception as exc:  # the network or the hub: say so, never claim a comparison that did not happen
        return None, f"the hub could not be asked ({cause(exc)})"
    return (etag, "") if _SHA256.match(etag) else (None, "the hub answered no sha256 for it")


def cache_check(path: Path, hub_file: HubFile | None = None, *, digest: str | None = None) -> str:
    """How a file of the Hugging Face cache was checked, in words that claim no more than was checked.

    Online, the hub is asked now for the file's etag (get_hf_file_metadata): a large (LFS) file's etag is the
    sha256 the hub publishes, and only a match with that answer is "the one the hub publishes". Otherwise
    (offline, the hub not reachable) there is only the name the cache filed the blob under (blobs/<etag>):
    whoever can write the cache chooses both the bytes and that name, so a match says the copy is whole, not
    where it came from. `digest`: the sha256 of the bytes the caller read and will use (so what is checked is
    what is used); otherwise the file is hashed here. A mismatch with either is one line (DamagedCopy)."""
    blob = path.resolve()
    published, why_not = _published_sha256(hub_file)
    if published:
        actual = digest or file_sha256(blob)
        if actual != published:
            raise DamagedCopy(f"{path} has sha256 {actual}, not the {published} the hub publishes for {hub_file}: "
                              f"the cached copy is damaged or was replaced. Delete {blob} and run "
                              f"{FETCH_COMMAND} again while online.")
        return "Hugging Face: its sha256 matches the one the hub publishes for it (asked just now)"
    if path.is_symlink() and _SHA256.match(blob.name):
        actual = digest or file_sha256(blob)
        if actual != blob.name:
            raise DamagedCopy(f"{path} has sha256 {actual}, not the {blob.name} the cache filed it under: the cached "
                              f"copy is damaged or was replaced. Delete {blob} and run {FETCH_COMMAND} again "
                              "while online.")
        return (f"Hugging Face cache: its sha256 matches the name the cache filed it under, so the copy is whole, "
                f"but {why_not}: where it came from is not checked")
    if path.is_symlink():
        return "Hugging Face: a small file kept in git, cached under its git hash (not checked again here)"
    return "Hugging Face cache, stored as a plain file: no hub hash to compare with"
