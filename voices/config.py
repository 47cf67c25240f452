"""A voice's settings: voices/<name>.toml, then command-line overrides.

Keys: checkpoint (a path or hf://org/repo/file; empty = the upstream pretrain), reference (a clip) and
reference_text (its transcript, F5 only), and the engine's sampling settings. Relative paths are taken
from the checkout's root, so the commands work from any directory.

A --voice-config file may hold only some settings: the rest come from the shipped voices/<name>.toml.
Unknown keys are named in a warning (and ignored); a value of the wrong kind is refused in one line.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from envcheck import reading
from envcheck.errors import TtsrigError
from trainers import hub
from trainers.config_check import (FRACTION, NON_NEGATIVE, NUMBER, POSITIVE, POSITIVE_NUMBER, TEXT, Kind, argument,
                                   check, unknown_keys)
from voices import tomlfile

ROOT = Path(__file__).resolve().parents[1]

# Every setting of each voice and its kind; the values come from the shipped voices/<name>.toml.
SETTINGS: dict[str, dict[str, Kind]] = {
    # alpha and beta mix the reference's style into the predicted one: outside 0-1 they extrapolate into noise;
    # a speed of 0 would ask for endless audio, a negative one for none
    "default": {"checkpoint": TEXT, "config": TEXT, "pretrained_dir": TEXT, "reference": TEXT, "alpha": FRACTION,
                "beta": FRACTION, "diffusion_steps": POSITIVE, "embedding_scale": NON_NEGATIVE},
    "strong": {"checkpoint": TEXT, "vocab": TEXT, "model_config": TEXT, "vocoder": TEXT, "reference": TEXT,
               "reference_text": TEXT, "steps": POSITIVE, "cfg_strength": NUMBER, "sway_sampling_coef": NUMBER,
               "speed": POSITIVE_NUMBER},
}


def option_type(name: str, key: str) -> Callable[[str], object]:
    """The argparse type of the command-line option that overrides setting `key` of voice `name`."""
    return argument(SETTINGS[name][key])


def shipped(name: str) -> Path:
    return ROOT / "voices" / f"{name}.toml"


def _read(file: Path) -> dict:
    fix = "check the --voice-config path, or copy a shipped voices/*.toml and edit the copy"
    if not file.exists():
        raise TtsrigError(f"voice config {file} does not exist: check the --voice-config path, or leave it out "
                          "for the shipped one")
    if file.is_dir():
        raise TtsrigError(f"voice config {file} is a folder: name a voice's .toml file (like the shipped "
                          "voices/default.toml)")
    raw = reading.read_bytes(file, "voice config", fix, streams=True)  # `--voice-config <(...)` is fine
    try:
        return tomlfile.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise TtsrigError(f"voice config {file} is not UTF-8 text: save it as UTF-8 (TOML files are)") from None
    except RecursionError:
        raise TtsrigError(f"voice config {file} nests its values without end: it is not a voice's TOML. "
                          "Start again from the shipped voices/*.toml.") from None
    except tomlfile.TOMLDecodeError as exc:
        raise TtsrigError(f"voice config {file} is not valid TOML: {exc}. Fix that line (strings in quotes, "
                          "key = value), or start again from the shipped voices/*.toml.") from None


def _settings(file: Path, fields: dict[str, Kind], name: str) -> dict:
    """The known settings of one file, each of its kind; unknown ones are named on stderr and left out."""
    values = _read(file)
    unknown = unknown_keys(values, fields)
    if unknown:
        print(f"warning: voice config {file}: ignored unknown setting{'s' if len(unknown) > 1 else ''} "
              f"{', '.join(unknown)} (valid: {', '.join(fields)})", file=sys.stderr)
    known = {k: v for k, v in values.items() if k in fields}
    check(known, fields, f"voice config {file}", fix=f"See the shipped voices/{name}.toml for each setting's kind.")
    if hub.is_hub_file(known.get("checkpoint")):
        hub.parse(known["checkpoint"])
    return known


def load(name: str, path: str | None = None) -> dict:
    """The shipped settings of voice `name`, with those of `path` (if given) over them."""
    fields, default_file = SETTINGS[name], shipped(name)
    file = Path(path).expanduser() if path else default_file
    config = _settings(default_file, fields, name) if file.resolve() != default_file.resolve() else {}
    config.update(_settings(file, fields, name))
    missing = [k for k in fields if k not in config]
    if missing:  # only when the shipped file itself was edited
        raise TtsrigError(f"the shipped voice config {default_file} lacks {', '.join(missing)}: restore it "
                          f"(git checkout -- voices/{name}.toml), or set {'them' if len(missing) > 1 else 'it'} "
                          f"in {file}.")
    config["_file"] = str(file)
    return config


def with_options(name: str, args: argparse.Namespace) -> dict:
    """load(name, args.voice_config) with the command line over it: each option named like a setting, and
    --checkpoint, --ref and --ref-text (say-strong's, and audition's for both voices)."""
    cfg = load(name, args.voice_config)
    for key, value in vars(args).items():
        if value is not None and key in cfg:
            cfg[key] = value
    if args.checkpoint:
        cfg["checkpoint"] = args.checkpoint
    if args.ref:
        cfg["reference"] = args.ref
    if getattr(args, "ref_text", None):
        cfg["reference_text"] = args.ref_text
    return cfg


def resolve(value: str | None) -> str | None:
    """A configured path, relative to the checkout; hub ids and absolute paths unchanged."""
    if not value or hub.is_hub_file(value) or Path(value).is_absolute():
        return value or None
    return str((ROOT / value).resolve()) if not Path(value).expanduser().exists() else str(Path(value).expanduser())


def resolve_vocoder(value: str) -> str:
    """A vocoder folder (as resolve() finds paths), else a Hugging Face repository id (org/repo) as it is."""
    local = resolve(value)
    if local and Path(local).is_dir():
        return local
    return value if hub.is_repo_id(value) else local or value
