"""Training, and the model code that synthesis shares with it.

- preparation: `prepare` (`python -m trainers.prepare`: recordings -> clips, mels, manifest.jsonl), `audio`
  (read, resample to 24 kHz mono, trim, level, write WAVs; transcription is envcheck.asr_backends'), `manifest` (the manifest's format), `mels` (each model's mel settings, the one place of them).
- the trainers: `f5` (`python -m trainers.f5`) and `styletts2` (`python -m trainers.styletts2`), with what
  both loops share: `run_state` (checkpoint pairs, the state to resume, RNG states), `guard` (Ctrl-C saves,
  a non-finite loss stops, CUDA out of memory names the setting), `batch_fit` (the pass size from the card's
  memory), `distributed` (several processes under torchrun), `device` (--device for every command),
  and `mas` (the StyleTTS2 aligner's monotonic path).
- model homes, used by the trainers and by voices: `f5_model` (the F5 pretrain, build, load, inference
  checkpoint), `f5_arch` (the DiT's settings), `styletts2_model` (build StyleTTS2, load its pieces safely,
  the style sampler), `styletts2_pieces` (where the pretrained pieces are, the run's config), `phonemes`
  (text -> StyleTTS2 tokens), `hub` (hf:// and org/repo ids), `config_check` (settings read from files are
  known names with plain values).

Imports point one way: voices imports the model homes (and audio, mels, device), never a
loop (`f5`, `styletts2`, `prepare`); trainers imports patches (safe checkpoint loading, f5_core, quiet)
and envcheck, never voices.
"""
