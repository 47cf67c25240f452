"""Hugging Face ids, parsed in one place: `hf://org/repo/path/to/file` (a file: the trainers' --pretrained,
a voice's checkpoint) and `org/repo` (a repository: a voice's vocoder). Imports neither torch nor
huggingface_hub until a download is asked for, so voices/config.py can check ids cheaply.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from envcheck.errors import TtsrigError

PREFIX = "hf://"
FORM = "hf://org/repo/path/to/file"
EXAMPLE = "hf://SWivid/F5-TTS/F5TTS_v1_Base/model_1250000.safetensors"
# The hub's own rule for each half of a repo id (huggingface_hub's validate_repo_id): letters, digits,
# '-', '_', '.', not starting or ending with '-' or '.', no '--' or '..', at most 96 characters in all.
_NAME = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?$")


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
        return hf_hub_download(hub_file.repo, hub_file.filename)
    except LocalEntryNotFoundError:
        raise TtsrigError(f"{spec} is not in the Hugging Face cache and cannot be downloaded (offline, or "
                          f"HF_HUB_OFFLINE=1). Check the id ({FORM}); download it on a connected machine "
                          f"(huggingface-cli download {hub_file.repo} {hub_file.filename}) and copy the cache, "
                          f"or pass {instead}.") from None
    except RepositoryNotFoundError:
        raise TtsrigError(f"{spec}: the repository {hub_file.repo} does not exist on the Hugging Face hub (or needs a "
                          f"login). Check the id ({FORM}), or pass {instead}.") from None
    except EntryNotFoundError:
        raise TtsrigError(f"{spec}: the repository {hub_file.repo} has no file {hub_file.filename}. Check the path "
                          f"({FORM}), or pass {instead}.") from None
    except Exception as exc:  # network and hub errors: say what and what to do
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TtsrigError(f"could not fetch {spec}: {first}. Pass {instead} to a local copy.") from None
