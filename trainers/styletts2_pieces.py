"""The pretrained pieces a StyleTTS2 fine-tune needs, where they are found, and the run's config.

Pieces (with the upstream repository's layout, so a checkout of yl4579/StyleTTS2 plus the LibriTTS model
works as --pretrained-dir):
  Models/LibriTTS/config.yml, Models/LibriTTS/epochs_2nd_00020.pth   the pretrain (Hugging Face)
  Utils/ASR/config.yml, Utils/ASR/epoch_00080.pth                    the text aligner
  Utils/JDC/bst.t7                                                   the pitch extractor
  Utils/PLBERT/config.yml, Utils/PLBERT/step_1000000.t7              PL-BERT
  and WavLM (microsoft/wavlm-base-plus, a transformers model) for the SLM loss.
Each is looked for in --pretrained-dir, then in the download cache, then downloaded (cached_path /
huggingface_hub); offline, the caches only (`python -m trainers.fetch` fills them while online), and the
error names what is missing and where to put it.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import yaml

from envcheck.arguments import SEED_MAX
from envcheck.atomic import write_atomic
from envcheck.errors import TtsrigError
from trainers import config_check, hub

HF = "https://huggingface.co/yl4579/StyleTTS2-LibriTTS/resolve/main"
GH = "https://github.com/yl4579/StyleTTS2/raw/main"
PIECES = {
    "config": ("Models/LibriTTS/config.yml", f"{HF}/Models/LibriTTS/config.yml"),
    "model": ("Models/LibriTTS/epochs_2nd_00020.pth", f"{HF}/Models/LibriTTS/epochs_2nd_00020.pth"),
    "asr_config": ("Utils/ASR/config.yml", f"{GH}/Utils/ASR/config.yml"),
    "asr": ("Utils/ASR/epoch_00080.pth", f"{GH}/Utils/ASR/epoch_00080.pth"),
    "jdc": ("Utils/JDC/bst.t7", f"{GH}/Utils/JDC/bst.t7"),
    "plbert_config": ("Utils/PLBERT/config.yml", f"{GH}/Utils/PLBERT/config.yml"),
    "plbert": ("Utils/PLBERT/step_1000000.t7", f"{GH}/Utils/PLBERT/step_1000000.t7"),
}
WAVLM = "microsoft/wavlm-base-plus"
WAVLM_FILES = ["config.json", "model.safetensors", "pytorch_model.bin"]


@dataclass
class Pieces:
    paths: dict[str, Path]
    wavlm: str  # a local folder or a Hugging Face id already in the cache


def find(pretrained_dir: Path | None, wavlm: str | None = None, *, need_wavlm: bool = True) -> Pieces:
    paths: dict[str, Path] = {}
    missing: list[str] = []
    reasons: list[str] = []
    for name, (layout, url) in PIECES.items():
        local = pretrained_dir / layout if pretrained_dir else None
        if local is not None and local.is_file():
            paths[name] = local
            continue
        try:
            paths[name] = download(url)
        except Exception as exc:  # offline, or the server refused: collect them all, then say so once
            missing.append(f"{name} {local or layout}")
            reasons.append(hub.cause(exc))
    wavlm_source = wavlm or (str(pretrained_dir / "wavlm-base-plus") if pretrained_dir and
                             (pretrained_dir / "wavlm-base-plus" / "config.json").is_file() else WAVLM)
    if need_wavlm and not Path(wavlm_source).is_dir():
        try:
            wavlm_source = str(wavlm_folder(wavlm_source))
        except TtsrigError as exc:
            missing.append(f"wavlm {wavlm_source} (a transformers model folder, or the Hugging Face id {WAVLM})")
            reasons.append(hub.cause(exc))  # its first sentence names the cache and the library's cause
    if missing:
        raise TtsrigError(f"StyleTTS2 pretrained pieces are missing: {'; '.join(missing)} ({reasons[0]}). While "
                          f"online, run {hub.FETCH_COMMAND} --only styletts2 (it caches them all); or put them in "
                          "--pretrained-dir in the upstream layout (a checkout of yl4579/StyleTTS2 plus "
                          "Models/LibriTTS from the Hugging Face repo yl4579/StyleTTS2-LibriTTS); WavLM can be "
                          "--wavlm PATH, and without the SLM losses (--set loss_params.lambda_slm=0) it is not "
                          "needed.")
    return Pieces(paths, wavlm_source)


def wavlm_folder(source: str) -> Path:
    """WavLM's folder: a folder as it is, a Hugging Face id through its cache (offline: the cache only). Only
    the config and the weights are fetched; trainers.styletts2_model.load_wavlm reads them."""
    folder = Path(source).expanduser()
    if folder.is_dir():
        return folder
    if not hub.is_repo_id(source):
        raise TtsrigError(f"WavLM {source!r} is neither a folder nor a Hugging Face id (org/repo, e.g. {WAVLM})")
    return hub.download_repo(source, WAVLM_FILES, what="WavLM", instead="pass --wavlm PATH to a folder saved from it")


def on_hub(url: str) -> bool:
    """Whether a piece's URL is a file of the Hugging Face repository (else GitHub's, through cached_path)."""
    return url.startswith(HF + "/")


def download(url: str) -> Path:
    """Hugging Face files through the Hugging Face cache, GitHub files through cached_path's cache; offline,
    each from its cache only."""
    if on_hub(url):
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download("yl4579/StyleTTS2-LibriTTS", url[len(HF) + 1:], local_files_only=hub.offline()))
    from cached_path import cached_path, find_latest_cached, get_cache_dir

    if hub.offline():  # cached_path itself would ask the server for the file's current version first
        cached = find_latest_cached(url)
        if cached is None:
            raise TtsrigError(f"offline ({hub.OFFLINE_SWITCHES}) and {url} is not in cached_path's cache "
                              f"{get_cache_dir()} (CACHED_PATH_CACHE_ROOT) nor in --pretrained-dir")
        return Path(cached)
    return Path(cached_path(url))


# -- the run's config -------------------------------------------------------------------------------

FINE_TUNE_DEFAULTS = {
    # sized for a 12 GB card: the upstream README's advice (small batch, bounded max_len) and the
    # Colab fine-tune's values; SLM adversarial training (the memory peak) stays off unless asked
    "epochs": 20,
    "batch_size": 2,
    "max_len": 100,
    "save_freq": 1,
    "loss_params": {"lambda_mel": 5.0, "lambda_gen": 1.0, "lambda_slm": 1.0, "lambda_mono": 1.0,
                    "lambda_s2s": 1.0, "lambda_F0": 1.0, "lambda_norm": 1.0, "lambda_dur": 1.0,
                    "lambda_ce": 20.0, "lambda_sty": 1.0, "lambda_diff": 1.0, "diff_epoch": 0,
                    "joint_epoch": 1_000_000},
    "optimizer_params": {"lr": 1e-4, "bert_lr": 1e-5, "ft_lr": 1e-4},
    "slmadv_params": {"min_len": 400, "max_len": 500, "batch_percentage": 0.5, "iter": 10, "thresh": 5,
                      "scale": 0.01, "sig": 1.5},
    "seed": 0,
}


def _set(config: dict, dotted: str, raw: str) -> None:
    keys = dotted.split(".")
    node = config
    for key in keys[:-1]:
        if not isinstance(node.get(key), dict):
            raise TtsrigError(f"--set {dotted}: {key} is not a section of the config")
        node = node[key]
    if keys[-1] not in node:
        raise TtsrigError(f"--set {dotted}: no such setting (see config.yml in the run folder for the names)")
    node[keys[-1]] = config_check.load_yaml(raw, f"--set {dotted}={raw}: the value", "Quote text, write lists as [a, b].")


def make_config(pieces: Pieces, overrides: list[str] = (), slm_adversarial: bool = False) -> dict:
    """The pretrain's model_params (they must match its weights) + fine-tune defaults + --set overrides."""
    fix = "Use the LibriTTS pretrain's Models/LibriTTS/config.yml."
    pretrain = config_check.read_yaml(pieces.paths["config"], "the pretrain's config", fix)
    if not isinstance(pretrain, dict) or not isinstance(pretrain.get("model_params"), dict):
        raise TtsrigError(f"{pieces.paths['config']} is not a StyleTTS2 config (no model_params section). {fix}")
    model_params = copy.deepcopy(pretrain["model_params"])
    model_params.setdefault("slm", {})["model"] = pieces.wavlm
    config = copy.deepcopy(FINE_TUNE_DEFAULTS)
    config["model_params"] = model_params
    config["preprocess_params"] = pretrain.get("preprocess_params", {"sr": 24000, "spect_params": {
        "n_fft": 2048, "win_length": 1200, "hop_length": 300}})
    config["pieces"] = {k: str(v) for k, v in pieces.paths.items()}
    # the keys upstream's code reads, so the package's own inference class finds the same pieces (not
    # PLBERT_dir: the package's PL-BERT loader fails on a folder, TypeError on str / str; without it, it
    # fetches PL-BERT by URL, which is the same file)
    config.update({"ASR_config": config["pieces"]["asr_config"], "ASR_path": config["pieces"]["asr"],
                   "F0_path": config["pieces"]["jdc"]})
    if slm_adversarial:
        config["loss_params"]["joint_epoch"] = 0
    apply_sets(config, overrides)
    return config


def apply_sets(config: dict, overrides: list[str]) -> None:
    """--set section.key=value over a config (a new run's or a resumed one's), then its values checked."""
    for item in overrides:
        if "=" not in item:
            raise TtsrigError(f"--set {item!r}: write it as section.key=value")
        key, value = item.split("=", 1)
        _set(config, key.strip(), value.strip())
    check(config)


def missing_settings(config: dict) -> list[str]:
    """The fine-tune settings the trainer reads that a (hand-edited) config lacks, as dotted names."""
    missing = [key for key in FINE_TUNE_DEFAULTS if key not in config]
    for section, defaults in FINE_TUNE_DEFAULTS.items():
        if isinstance(defaults, dict) and isinstance(config.get(section), dict):
            missing += [f"{section}.{key}" for key in defaults if key not in config[section]]
    return missing


def _whole(low: int, high: int | None = None) -> config_check.Kind:
    words = f"a whole number from {low}" + (f" to {high}" if high is not None else "")
    return config_check.Kind(words, lambda v: type(v) is int and v >= low and (high is None or v <= high))


_SIZE = config_check.Kind(f"a whole number from 1 to {config_check.LIMIT}", config_check.POSITIVE.accepts)
_EPOCH = _whole(0)  # an epoch from which something starts: any epoch after the last means never
_RATE = config_check.Kind("a number above 0 and at most 1",
                         lambda v: config_check.POSITIVE_NUMBER.accepts(v) and v <= 1)

# Every fine-tune setting the trainer reads (trainers/styletts2.py) and what it may hold, as dotted names;
# loss_params.lambda_* (each loss's weight) are numbers from 0. Optional ones are checked when present.
# model_params are the pretrain's and are checked where the model is built (styletts2_model).
SETTINGS: dict[str, config_check.Kind] = {
    "epochs": _SIZE, "batch_size": _SIZE, "max_len": _SIZE, "save_freq": _SIZE,
    "seed": _whole(0, SEED_MAX),  # numpy's generator takes 32 bits
    "loss_params.diff_epoch": _EPOCH, "loss_params.joint_epoch": _EPOCH,
    "optimizer_params.lr": _RATE, "optimizer_params.bert_lr": _RATE, "optimizer_params.ft_lr": _RATE,
    "slmadv_params.min_len": _SIZE, "slmadv_params.max_len": _SIZE, "slmadv_params.batch_percentage": _RATE,
    "slmadv_params.iter": _SIZE, "slmadv_params.thresh": config_check.POSITIVE_NUMBER,
    "slmadv_params.scale": config_check.NON_NEGATIVE, "slmadv_params.sig": config_check.POSITIVE_NUMBER,
}
OPTIONAL = {"keep": config_check.COUNT, "language": config_check.TEXT}
MIN_MAX_LEN = 80  # the decoder's crop, in mel frames


def _number(value: object) -> object:
    """YAML reads 1e-5 (no dot) as text: such a number as the number it names; anything else unchanged."""
    if isinstance(value, str):
        for convert in (int, float):
            try:
                return convert(value)
            except ValueError:
                pass
    return value


def check(config: dict) -> None:
    """Every setting the trainer reads is there and of its kind and range, or one line naming the first that is
    not (before anything is built from it: a string, .inf or -1 would fail deep inside torch)."""
    not_sections = [key for key, default in FINE_TUNE_DEFAULTS.items()
                    if isinstance(default, dict) and key in config and not isinstance(config[key], dict)]
    if not_sections:
        raise TtsrigError(f"the config's {not_sections[0]} is {config[not_sections[0]]!r}, not a section of "
                          f"settings: restore it (a new run's config.yml has it), or --set its keys one by one, "
                          f"e.g. --set {not_sections[0]}.{next(iter(FINE_TUNE_DEFAULTS[not_sections[0]]))}=VALUE")
    missing = missing_settings(config)
    if missing:
        raise TtsrigError(f"the config lacks {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}, which the "
                          "trainer reads: restore the config.yml the run wrote, or copy them from a new run's "
                          "config.yml")
    kinds = dict(SETTINGS)
    kinds.update({f"loss_params.{k}": config_check.NON_NEGATIVE for k in config["loss_params"]
                  if isinstance(k, str) and k.startswith("lambda_")})
    kinds.update({k: kind for k, kind in OPTIONAL.items() if k in config})
    for dotted, kind in kinds.items():
        *sections, key = dotted.split(".")
        node = config[sections[0]] if sections else config
        if kind is not config_check.TEXT:
            node[key] = _number(node[key])
        value = node[key]
        if not kind.accepts(value):
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            raise TtsrigError(f"the config's {dotted} = {shown} should be {kind.name}: give it with --set "
                              f"{dotted}=VALUE, or fix it in a resumed run's config.yml")
    if config["max_len"] < MIN_MAX_LEN:
        raise TtsrigError(f"max_len {config['max_len']} is below {MIN_MAX_LEN} frames: the decoder needs crops of at "
                          f"least {MIN_MAX_LEN} mel frames (upstream skips such batches): --set max_len={MIN_MAX_LEN} "
                          "or more")
    slm = config["slmadv_params"]
    if slm["min_len"] > slm["max_len"]:
        raise TtsrigError(f"the config's slmadv_params.min_len {slm['min_len']} is above its max_len "
                          f"{slm['max_len']}: --set one of them so that min_len <= max_len")


def read_run_config(path: Path) -> dict:
    """The config.yml of a run folder (--resume): a mapping with model_params and loss_params, or one line."""
    fix = "restore it (it is the one trainers.styletts2 wrote), or start a new run with another --out"
    if not path.exists():
        raise TtsrigError(f"nothing to resume: {path} does not exist. Name the run folder trainers.styletts2 made "
                          "with --out, or leave out --resume to start a run")
    config = config_check.read_yaml(path, "the run's config", fix)
    if config is None:
        raise TtsrigError(f"the run's config {path} is empty: {fix}")
    if not isinstance(config, dict):
        raise TtsrigError(f"the run's config {path} is {type(config).__name__}, not a mapping of settings: {fix}")
    lacking = [key for key in ("model_params", "loss_params") if not isinstance(config.get(key), dict)]
    if lacking:
        raise TtsrigError(f"the run's config {path} has no {' or '.join(lacking)} section: {fix}")
    return config


def save_config(config: dict, path: Path) -> None:
    write_atomic(path, yaml.safe_dump(config, sort_keys=False).encode())
