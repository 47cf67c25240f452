"""The user's list of trusted legacy checkpoints: sha256 -> where it was seen and why it is trusted.

It lives outside any venv and checkout (one list per user), in $TTSRIG_TRUST_FILE or
$XDG_CONFIG_HOME/ttsrig/trusted-checkpoints.json (~/.config/... by default), written atomically.
Trust is by content: a file that changes after it was trusted is no longer trusted.

The list decides which pickles get unpickled, that is, whose code runs. So, as ssh does with its keys, a list
that another user could change is refused before anything in it is believed: the file (and a link to it)
must belong to this user or root and not be writable by group or others, and so must every folder above
it (a sticky folder such as /tmp excepted, where others cannot replace what is ours).
"""
from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from envcheck import reading
from envcheck.atomic import write_json_atomic
from envcheck.digests import file_sha256
from envcheck.errors import TtsrigError

FORMAT = 1


def default_path() -> Path:
    if os.environ.get("TTSRIG_TRUST_FILE"):
        return Path(os.environ["TTSRIG_TRUST_FILE"]).expanduser()
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config / "ttsrig" / "trusted-checkpoints.json"


def _is_sha256(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text.lower())


def _corrupt(path: Path, why: str) -> TtsrigError:
    return TtsrigError(f"the checkpoint trust list {path} is corrupt ({why}). Nothing was trusted. "
                       f"Fix or delete it, then add files again with `python -m patches trust add FILE`.")


# What another user could do with a trust list they can change, and the fix: the words check_owned uses.
LIST_HARM = "who could add their own file to it"
LIST_FIX = "Use a list of your own (TTSRIG_TRUST_FILE, or --trust-file)"


def _owner_problem(path: Path, info: os.stat_result, what: str, *, harm: str = LIST_HARM,
                   own_fix: str = LIST_FIX) -> str | None:
    """Why another user could change `path` (a `what`), with the fix; None when only this user or root can."""
    if info.st_uid not in (os.getuid(), 0):
        return f"{what} {path} belongs to another user (uid {info.st_uid}), {harm}. {own_fix}"
    sticky_folder = stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX
    if info.st_mode & 0o022 and not stat.S_ISLNK(info.st_mode) and not sticky_folder:
        return (f"{what} {path} is writable by {'group and others' if info.st_mode & 0o002 else 'its group'} "
                f"(mode {stat.S_IMODE(info.st_mode):04o}), {harm}. Fix: chmod go-w {path}")
    return None


def exposure(path: Path, *, what: str, link_what: str, harm: str = LIST_HARM,
             own_fix: str = LIST_FIX) -> str | None:
    """The first place on the way to `path` that a user other than this one or root could change, as one
    sentence with the fix (see the module's docstring); None when there is none. Checked: the file (`what`),
    a link to it (`link_what`: its owner chooses where it leads), where the links lead, and every folder above
    each of them up to / (a folder reached through a link: the link's owner too). Missing places are skipped.
    Shared by the trust list and by trainers.fetch --trust (the cached files it would vouch for)."""
    chain = [Path(os.path.abspath(path))]
    real = Path(os.path.realpath(chain[0]))
    if real != chain[0]:  # a link to the file, or in a folder above it: where it leads is checked too
        chain.append(real)
    for place in chain:
        try:
            info = os.lstat(place)
        except FileNotFoundError:
            info = None
        if info is not None:
            problem = _owner_problem(place, info, link_what if stat.S_ISLNK(info.st_mode) else what,
                                     harm=harm, own_fix=own_fix)
            if problem:
                return problem
        for folder in place.parents:
            try:
                link = os.lstat(folder)
                problem = (_owner_problem(folder, link, "its folder's link", harm=harm, own_fix=own_fix)
                           if stat.S_ISLNK(link.st_mode) else None)
                problem = problem or _owner_problem(folder, os.stat(folder), "its folder", harm=harm,
                                                    own_fix=own_fix)
            except FileNotFoundError:
                continue  # made by save(), privately
            if problem:
                return problem
    return None


def check_owned(path: Path) -> None:
    """Refuse (one line) a trust list that someone else could change: see the module's docstring."""
    problem = exposure(path, what="the checkpoint trust list", link_what="the trust list's link")
    if problem:
        raise _unsafe(path, problem)


def _unsafe(path: Path, problem: str) -> TtsrigError:
    return TtsrigError(f"refused the checkpoint trust list {path}: {problem}. Nothing in it was trusted (it decides "
                       "which pickles may run code).")


def _read_entries(path: Path) -> dict[str, dict]:
    check_owned(path)
    raw = reading.read_bytes(path, "the checkpoint trust list", "point TTSRIG_TRUST_FILE (or --trust-file) at a "
                             "file you can read, or delete it")
    try:
        data = reading.loads_json(raw.decode("utf-8"))
    except ValueError as exc:  # not UTF-8, invalid JSON, or nested without end
        raise _corrupt(path, str(exc).splitlines()[0]) from None
    if not isinstance(data, dict) or not isinstance(data.get("checkpoints"), dict):
        raise _corrupt(path, "no 'checkpoints' object")
    if isinstance(data.get("format"), int) and data["format"] > FORMAT:
        raise TtsrigError(f"the checkpoint trust list {path} was written by a newer ttsrig (format "
                          f"{data['format']}); update ttsrig, or use another TTSRIG_TRUST_FILE.")
    entries = data["checkpoints"]
    bad = next((k for k, v in entries.items() if not _is_sha256(k) or not isinstance(v, dict)), None)
    if bad is not None:
        raise _corrupt(path, f"entry {bad[:70]!r} is not sha256 -> record")
    return {k.lower(): v for k, v in entries.items()}


@dataclass
class TrustList:
    path: Path
    entries: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None = None) -> "TrustList":
        path = path or default_path()
        if not path.exists():  # (a dangling symlink too: save() creates the file it points to)
            check_owned(path)  # nothing is read, but a link of another user's is named now
            return cls(path)
        return cls(path, _read_entries(path))

    def contains(self, digest: str) -> bool:
        return digest.lower() in self.entries

    def add(self, checkpoint: Path, note: str = "", *, digest: str | None = None) -> str:
        """Trust a file's content. `digest`: the sha256 of the bytes the caller already read and showed
        the user (so what was described is what is trusted); otherwise the file is hashed here."""
        if checkpoint.is_dir():
            raise TtsrigError(f"cannot trust {checkpoint}: it is a folder; name the checkpoint file in it")
        if not checkpoint.is_file():
            raise TtsrigError(f"cannot trust {checkpoint}: no such file")
        digest = (digest or file_sha256(checkpoint)).lower()
        record = {"path": str(checkpoint.resolve()), "note": note,
                  "added": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if checkpoint.is_symlink():  # remember the name the user gave too, so `remove LINK` finds it
            record["via"] = str(checkpoint.absolute())
        self.entries[digest] = record
        self.save()
        return digest

    def remove(self, file_or_digest: str) -> list[str]:
        """Stop trusting a sha256, or a file: its current content and whatever was trusted under its name."""
        if _is_sha256(file_or_digest):
            found = [file_or_digest.lower()] if file_or_digest.lower() in self.entries else []
        else:
            found = self._by_file(Path(file_or_digest).expanduser())
        if not found:
            raise TtsrigError(f"{file_or_digest} is not in the trust list {self.path}; nothing removed "
                              "(`python -m patches trust list` shows what is).")
        for digest in found:
            del self.entries[digest]
        self.save()
        return found

    def _by_file(self, target: Path) -> list[str]:
        try:
            digest = file_sha256(target) if target.is_file() else None
        except OSError:  # unreadable now: fall back to the names below
            digest = None
        if digest in self.entries:
            return [digest]
        # the file changed or is gone since: match the names it was trusted under
        names = {str(target.absolute()), str(target.resolve())}
        return [d for d, e in self.entries.items() if e.get("path") in names or e.get("via") in names]

    def save(self) -> None:
        # Through a symlinked list (e.g. kept in a dotfiles repo): replace the file it points to, not the link.
        path = self.path.resolve() if self.path.is_symlink() else self.path
        try:
            for folder in reversed([path.parent, *path.parent.parents]):
                if not folder.exists():  # the folders made for the list are nobody else's, whatever the umask
                    folder.mkdir(mode=0o700)
                    folder.chmod(0o700)
            check_owned(self.path)
        except OSError as exc:
            raise TtsrigError(f"cannot create {path.parent}: {exc.strerror or exc}. Set TTSRIG_TRUST_FILE "
                              "to a file you can write.") from None
        if path.is_dir():
            raise TtsrigError(f"the checkpoint trust list {path} is a folder. Point TTSRIG_TRUST_FILE (or "
                              "--trust-file) at a file.")
        try:
            write_json_atomic(path, {"format": FORMAT, "checkpoints": self.entries},
                              mode=None if path.exists() else 0o600, follow_links=True)
        except OSError as exc:  # a read-only disk, a full one (permission is already one line)
            raise TtsrigError(f"cannot write the checkpoint trust list {path} ({exc.strerror or exc}); it is "
                              "unchanged. Set TTSRIG_TRUST_FILE (or --trust-file) to a file you can write.") from None
