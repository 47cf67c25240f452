"""An audition folder's verdicts.json: read it, check changes against the folder, merge them in under a lock.

The file maps a checkpoint's label to {feature: verdict}. Browsers send only what they changed
({label: {feature: verdict}}, "" clears one); the server merges that into the file as it is on disk now,
so two browsers never wipe each other's verdicts. Entries the file already holds (a hand edit, a
checkpoint of an earlier render) are kept as they are; a file that is not of that shape is never written over.
"""
from __future__ import annotations

import os
from pathlib import Path

from envcheck import paths, reading
from envcheck.atomic import write_json_atomic
from envcheck.digests import bytes_sha256
from envcheck.errors import TtsrigError
from voices import markers

FILE = "verdicts.json"
RENDERS = "renders.json"
OVERALL = "overall"  # the page's last column: a verdict on the whole render

Verdicts = dict[str, dict[str, str]]


def read(path: Path, missing_ok: bool = True, *, own: bool = True) -> Verdicts:
    """The verdicts of a file; {} when it is absent (and that is fine). Any other shape is refused. `own`: the
    folder's own verdicts.json, never read through a link (`serve` would hand the linked file to the page);
    a --verdicts FILE the user names is read where its link points."""
    path = Path(path)
    if not os.path.lexists(path) and missing_ok:
        return {}
    raw = reading.read_bytes(path, "verdicts file", "name the verdicts.json of an audition folder, or move it "
                             "away; nothing was written to it", follow=not own)
    try:
        data = reading.loads_json(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise TtsrigError(f"{path} is not JSON ({exc}): fix it or move it away; nothing was written to it") from None
    problem = shape_problem(data)
    if problem:
        raise TtsrigError(f"{path}: {problem}: fix it or move it away; nothing was written to it")
    return data


def shape_problem(data: object) -> str | None:
    """Why data is not {label: {feature: verdict}} (all strings), or None."""
    if not isinstance(data, dict):
        return "expected a JSON object of checkpoint: {feature: verdict}"
    for label, entries in data.items():
        if not isinstance(entries, dict):
            return f"the entry of {label!r} is not an object of feature: verdict"
        for feature, value in entries.items():
            if not isinstance(value, str):
                return f"{label!r} {feature!r}: the verdict is not a string"
    return None


def read_renders(folder: Path) -> dict:
    """The folder's renders.json, as `audition render` wrote it; refused when it is not an audition folder.

    It is the folder's record, written after each WAV it lists (with the WAV's sha256), and marked complete
    when the render finished; incomplete() says what a stopped render left out."""
    path = Path(folder) / RENDERS
    if not os.path.lexists(path):
        raise TtsrigError(f"{folder} is not an audition folder (no {RENDERS}): make one with "
                          f"`voices/audition render ... --out {folder}`")
    raw = reading.read_bytes(path, RENDERS, "render the audition again", follow=False)
    try:
        data = reading.loads_json(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise TtsrigError(f"{path} cannot be read as JSON ({exc}): render the audition again") from None
    renders = data.get("renders") if isinstance(data, dict) else None
    if not isinstance(renders, list) or not all(isinstance(r, dict) and isinstance(r.get("label"), str)
                                                 for r in renders):
        raise TtsrigError(f"{path} is not an audition's renders.json (no list of renders): render the audition again")
    return data


def incomplete(folder: Path, renders: dict) -> str | None:
    """What a render that stopped before its end left out, in one line; None for a finished render."""
    if renders.get("complete", True) is not False:
        return None
    planned = renders.get("planned")
    count = f"{len(renders['renders'])} of {planned}" if isinstance(planned, int) else str(len(renders["renders"]))
    return (f"the last render into {folder} stopped before it finished: {count} renders were written, and only "
            "those are listed. Render again for the rest.")


def wav_problem(folder: Path, entry: dict) -> str | None:
    """Why a listed render's WAV is not the one renders.json records (missing, or other audio), or None."""
    name, recorded = entry.get("file"), entry.get("sha256")
    if not isinstance(recorded, str):
        return None  # rendered by an older ttsrig, which recorded no hash
    try:
        data = reading.read_bytes(Path(folder) / name, "render", "render the folder again", follow=False,
                                  limit=reading.DATA_LIMIT)
    except TtsrigError as exc:
        return str(exc)
    if bytes_sha256(data) != recorded:
        return f"{name} is not the render {RENDERS} records (it was written over since): render the folder again"
    return None


def known(renders: dict) -> tuple[set[str], set[str]]:
    """The checkpoint labels and the features a verdict can be given for in this folder."""
    labels = {r["label"] for r in renders["renders"]}
    listed = renders.get("markers") if isinstance(renders.get("markers"), list) else markers.MARKERS
    features = {m["id"] for m in listed if isinstance(m, dict) and isinstance(m.get("id"), str)} | {OVERALL}
    return labels, features


def checked_changes(data: object, labels: set[str], features: set[str]) -> Verdicts:
    """Changes a browser sent, if every label, feature and verdict is one of this folder's; else ValueError."""
    if not isinstance(data, dict) or not data:
        raise ValueError("expected a JSON object of checkpoint: {feature: verdict} with at least one change")
    for label, entries in data.items():
        if label not in labels:
            raise ValueError(f"unknown checkpoint {label!r}")
        if not isinstance(entries, dict) or not entries:
            raise ValueError(f"{label!r}: expected an object of feature: verdict")
        for feature, value in entries.items():
            if feature not in features:
                raise ValueError(f"{label!r}: unknown feature {feature!r}")
            if not isinstance(value, str) or value not in markers.VERDICTS:
                raise ValueError(f"{label!r} {feature!r}: verdict must be one of {sorted(markers.VERDICTS)}")
    return data


def merge(current: Verdicts, changes: Verdicts) -> Verdicts:
    """current with each changed (label, feature) set, or removed where the change is ""."""
    merged = {label: dict(entries) for label, entries in current.items()}
    for label, entries in changes.items():
        row = merged.setdefault(label, {})
        for feature, value in entries.items():
            if value:
                row[feature] = value
            else:
                row.pop(feature, None)
        if not row:
            del merged[label]
    return merged


def save_changes(folder: Path, changes: Verdicts) -> Verdicts:
    """Read, merge and write verdicts.json as one step; returns what the file now holds."""
    with paths.folder_lock(folder):  # one writer at a time: the server's threads and any other server
        merged = merge(read(folder / FILE), changes)
        write_json_atomic(folder / FILE, merged)
    return merged
