"""`voices/say-default` and `voices/say-strong`: text in, a 24 kHz WAV out.

    voices/say-strong "Text to say." -o out.wav [--ref CLIP --ref-text "what the clip says"]
    voices/say-default --file story.txt -o story.wav --seed 1
    echo "From standard input." | voices/say-default -o out.wav

Settings come from voices/default.toml or voices/strong.toml (--voice-config another), then the options below.
With no reference clip set, both speak with the example clip the installed f5-tts ships (and say so).
Long text is split at sentence ends and joined with a short cross-fade.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
from functools import partial
from pathlib import Path

from envcheck import interrupt

interrupt.when_run(__name__, "say")  # before torch, whose import takes seconds

import numpy as np
import torch

from envcheck import arguments, paths
from envcheck.atomic import write_output
from envcheck.errors import TtsrigError
from patches.checkpoints import CheckpointError, add_trust_argument
from trainers import hub, precision
from trainers.device import pick as pick_device  # audition.py picks through say
from voices import config as voice_config
from voices import reference, signalcheck, text as text_mod

ENGINES = {"default": "StyleTTS2", "strong": "F5-TTS"}
INFERENCE_DTYPES = {"default": ("bf16",), "strong": ("bf16", "fp16")}  # what each engine may autocast to
HOW_TO_GET_ONE = {
    "default": "train one (python -m trainers.styletts2 MANIFEST --out runs/NAME), or leave checkpoint empty for "
               f"the LibriTTS pretrain (downloaded when online, or beforehand by {hub.FETCH_COMMAND}; offline, "
               "from that cache or --pretrained-dir with its pieces)",
    "strong": "train one (python -m trainers.f5 MANIFEST --out runs/NAME), or leave checkpoint empty for "
              f"F5TTS_v1_Base (downloaded when online, or beforehand by {hub.FETCH_COMMAND}; offline, from that "
              "cache, or pass --checkpoint PATH)",
}


def build_parser(engine: str) -> argparse.ArgumentParser:
    p = arguments.Parser(prog=f"say-{engine}", description=f"{ENGINES[engine]} voice. " + __doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("text", nargs="*", type=arguments.text, help="the text (else --file, else standard input)")
    p.add_argument("--file", help="read the text from this file")
    p.add_argument("-o", "--output", default=f"say-{engine}.wav", help="WAV to write (default: %(default)s)")
    p.add_argument("--voice-config", help=f"voice config (default voices/{engine}.toml)")
    p.add_argument("--checkpoint", help="checkpoint to speak with (overrides the config)")
    p.add_argument("--ref", help="reference clip of the voice (overrides the config; default: f5-tts's example)")
    p.add_argument("--seed", type=arguments.SEED, help=f"make the render repeatable (0 to {arguments.SEED_MAX})")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--quiet", action="store_true")
    kind = partial(voice_config.option_type, engine)  # the same values as in the voice's TOML
    if engine == "strong":
        p.add_argument("--ref-text", type=arguments.text, help="what the reference clip says")
        p.add_argument("--steps", type=kind("steps"), help="sampling steps (a whole number from 1)")
        p.add_argument("--cfg-strength", type=kind("cfg_strength"))
        p.add_argument("--sway", type=kind("sway_sampling_coef"), dest="sway_sampling_coef",
                       help="sway sampling coefficient, from -1 to 1.752 (upstream's -1 spends more steps early)")
        p.add_argument("--speed", type=kind("speed"), help="speaking rate, from 0.1 to 10 (1 = the reference's)")
    else:
        p.add_argument("--pretrained-dir", help="pretrained pieces in the upstream layout")
        p.add_argument("--alpha", type=kind("alpha"), help="timbre, 0 to 1: 0 = the reference's, 1 = predicted from the text")
        p.add_argument("--beta", type=kind("beta"), help="prosody, 0 to 1: 0 = the reference's, 1 = predicted from the text")
        p.add_argument("--diffusion-steps", type=kind("diffusion_steps"))
        p.add_argument("--embedding-scale", type=kind("embedding_scale"))
    add_trust_argument(p)
    return p


def checkpoint_path(engine: str, value: str | None) -> str | None:
    resolved = voice_config.resolve(value)
    if hub.is_hub_file(resolved):
        hub.parse(resolved)  # a malformed id is one line now, not an error deep in a download
        return resolved
    if resolved and Path(resolved).is_dir():
        raise TtsrigError(f"checkpoint {value} is a folder ({resolved}): name the checkpoint file in it, e.g. a "
                          "run's epoch_*.safetensors")
    if resolved and not Path(resolved).exists():
        raise TtsrigError(f"checkpoint {value} does not exist (looked at {resolved}). {HOW_TO_GET_ONE[engine]}.")
    return resolved


def read_text(args: argparse.Namespace) -> str:
    """The text to say, refused unless it is UTF-8 (the arguments are checked by their argparse type)."""
    try:
        text = text_mod.read_text(args.text, args.file)
    except UnicodeDecodeError as exc:  # standard input in a UTF-8 locale
        raise TtsrigError(f"standard input is not UTF-8 text (byte 0x{exc.object[exc.start]:02x}): "
                          f"{arguments.NOT_UTF8_FIX}") from None
    bad = arguments.lone_surrogate(text)
    if bad is not None:  # standard input in a locale that escapes such bytes
        where = "the text" if args.text else f"--file {args.file}" if args.file else "standard input"
        raise TtsrigError(f"{where} is not UTF-8 text (at {bad}): {arguments.NOT_UTF8_FIX}")
    return text


def check_settings(engine: str, cfg: dict) -> None:
    """What the voice's TOML and the options gave, beyond each value's kind: the sampling values F5-TTS can
    compute with, and a reference transcript in UTF-8. Before any model loads (say), and in Speaker (audition)."""
    where = f"(its option, or in {cfg.get('_file') or 'the voice config'})"
    bad = arguments.lone_surrogate(cfg.get("reference_text") or "")
    if bad is not None:
        raise TtsrigError(f"reference_text {where} is not UTF-8 text (at {bad}): {arguments.NOT_UTF8_FIX}")
    if engine == "strong":
        from voices import f5

        f5.check_sampling(steps=cfg["steps"], sway_sampling_coef=cfg["sway_sampling_coef"], speed=cfg["speed"],
                          where=where)


class Speaker:
    """One loaded voice that renders sentences; shared by say-* and audition."""

    def __init__(self, engine: str, cfg: dict, device: str, trust: bool):
        check_settings(engine, cfg)
        self.engine, self.cfg, self.device = engine, cfg, device
        self.piece_lengths: list[int] = []  # samples of each sentence of the last render: audition screens the seams
        self.collapsed: list[dict] = []  # say-default: phonemes of the last render whose duration collapsed
        self.reference = reference.choose(engine, cfg)  # the caller prints its note, once per command
        self.ref = reference.load(self.reference.clip)
        ckpt = checkpoint_path(engine, cfg.get("checkpoint"))
        if engine == "strong":
            from voices import f5

            self.voice = f5.load(ckpt, vocab=voice_config.resolve(cfg.get("vocab")),
                                 model_config=voice_config.resolve(cfg.get("model_config")),
                                 vocoder=voice_config.resolve_vocoder(cfg.get("vocoder") or f5.VOCOS_DEFAULT),
                                 device=device, trust=trust)
        else:
            from voices import styletts2

            if ckpt and hub.is_hub_file(ckpt):  # the run's config.yml is beside it in the repository
                config = voice_config.resolve(cfg.get("config")) or hub.download(
                    str(hub.parse(ckpt)).rsplit("/", 1)[0] + "/config.yml", instead="--voice-config with config set")
                ckpt = hub.download(ckpt, instead="--checkpoint PATH")
            elif ckpt:
                config = voice_config.resolve(cfg.get("config")) or str(Path(ckpt).with_name("config.yml"))
            else:
                from trainers import styletts2_pieces

                pieces = styletts2_pieces.find(Path(voice_config.resolve(cfg.get("pretrained_dir")))
                                               if cfg.get("pretrained_dir") else None, need_wavlm=False)
                ckpt, config = str(pieces.paths["model"]), styletts2_pieces.make_config(pieces)
            self.voice = styletts2.load(Path(ckpt), config, device=device, trust=trust)
            self.style = styletts2.reference_style(self.voice, self.ref)

    def sentence(self, sentence: str) -> np.ndarray:
        if self.engine == "strong":
            from voices import f5

            unknown = f5.check_text(self.voice, sentence)
            if unknown:
                print(f"note: not in the vocab, read as pauses: {' '.join(unknown)}", file=sys.stderr)
            c = self.cfg
            return f5.synthesize(self.voice, self.ref, self.reference.text, sentence, steps=int(c["steps"]),
                                 cfg_strength=float(c["cfg_strength"]), sway_sampling_coef=float(c["sway_sampling_coef"]),
                                 speed=float(c["speed"]))
        from trainers import phonemes
        from voices import styletts2

        [(phoneme_text, tokens)] = phonemes.encode([sentence])
        if tokens.unknown:
            print(f"note: symbols the model lacks, left out: {' '.join(tokens.unknown)}", file=sys.stderr)
        c = self.cfg
        wave, frames = styletts2.synthesize_timed(self.voice, tokens.ids, self.style, alpha=float(c["alpha"]),
                                                  beta=float(c["beta"]), diffusion_steps=int(c["diffusion_steps"]),
                                                  embedding_scale=float(c["embedding_scale"]))
        kept = "".join(s for s in phoneme_text if s not in tokens.unknown)  # one symbol per token between the pads
        if len(kept) == len(frames) - 1:
            self.collapsed += signalcheck.collapsed_phonemes(kept, frames[1:])
        return wave

    def render(self, text: str, seed: int | None) -> np.ndarray:
        if seed is not None and not 0 <= seed <= arguments.SEED_MAX:  # numpy's generator takes 32 bits
            raise TtsrigError(f"seed {seed} is not a whole number from 0 to {arguments.SEED_MAX}: choose one in "
                              "that range")
        if seed is not None:
            torch.manual_seed(seed)
            np.random.seed(seed)
        self.collapsed = []
        pieces = []
        # On a GPU, the precision its compute capability computes well (trainers.precision): F5 in fp16 from 7.0
        # as upstream's inference does, or bf16 from 8.0; StyleTTS2 in bf16 from 8.0, else float32.
        dtype = precision.autocast_dtype("auto", self.device, allowed=INFERENCE_DTYPES[self.engine])
        for sentence in text_mod.sentences(text):
            try:
                with torch.autocast("cuda", dtype=dtype) if dtype is not None else contextlib.nullcontext():
                    pieces.append(self.sentence(sentence).astype(np.float32))
            except torch.cuda.OutOfMemoryError:
                raise TtsrigError("CUDA ran out of memory: use --device cpu, or shorter text") from None
        self.piece_lengths = [len(p) for p in pieces]
        return text_mod.join(pieces)


def main(argv: list[str] | None = None) -> int:
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)  # torch's weight_norm deprecation, on every load
    warnings.filterwarnings("ignore", message="dropout option adds dropout")
    engine, argv = (argv or sys.argv[1:])[0], (argv or sys.argv[1:])[1:]
    args = build_parser(engine).parse_args(argv)
    try:
        text = read_text(args)
        cfg = voice_config.with_options(engine, args)
        check_settings(engine, cfg)
        output = Path(args.output).expanduser()
        if output.is_dir():
            raise TtsrigError(f"-o {output} is a folder: give a file name ending in .wav")
        paths.output_file(output, "-o", make_parents=True)  # before the model loads, not after it rendered
        chosen = reference.choose(engine, cfg)
        if chosen.note:
            print(chosen.note, file=sys.stderr)
        started = time.monotonic()
        speaker = Speaker(engine, reference.pinned(cfg, chosen), pick_device(args.device), args.trust_checkpoint)
        loaded = time.monotonic()
        wave = speaker.render(text, args.seed)
        took = time.monotonic() - loaded
        if not len(wave) or not np.isfinite(wave).all():
            raise TtsrigError("the model produced no usable audio (empty or not finite); nothing was written")
        from trainers import audio

        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            write_output(output, audio.wav_bytes(np.clip(wave, -1.0, 1.0)), "-o")
        except OSError as exc:
            raise TtsrigError(f"cannot write {output}: {exc.strerror or exc}. Choose a writable path with -o.") from None
    except (TtsrigError, CheckpointError) as exc:
        print(f"say-{engine}: {exc}", file=sys.stderr)
        return 2
    seconds = len(wave) / 24_000
    if not args.quiet:
        print(f"wrote {output}: {seconds:.2f} s of audio in {took:.2f} s (real-time factor {took / seconds:.2f}; "
              f"loading took {loaded - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
