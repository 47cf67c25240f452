"""Synthesis: `voices/say-default` (StyleTTS2), `voices/say-strong` (F5-TTS) and `voices/audition`.

- the commands: `say` (say-default and say-strong: text in, a 24 kHz WAV out), `audition` (render many
  checkpoints, serve the listening page `audition.html`, `audition screen`), `screen` (screen an audition
  folder before anyone listens).
- the engines: `styletts2` and `f5` (load a checkpoint, synthesise), with what both share: `config` (a
  voice's TOML and its overrides), `reference` (the reference clip), `text` (sentences, and the join of
  their audio).
- listening and screening: `markers` (the marker passage, what a verdict means), `verdicts`
  (verdicts.json), `signalcheck` (checks that need no ASR), `wordcheck` (what an ASR heard against the
  passage), `asr` (which backend hears the renders).

voices imports trainers' model homes (`f5_model`, `f5_arch`, `styletts2_model`, `styletts2_pieces`,
`phonemes`, `hub`, `config_check`) and its `audio`, `mels`, `transcribe` and `device`, patches' safe
checkpoint loading, and envcheck; never a training loop (trainers.f5, trainers.styletts2,
trainers.prepare). Nothing imports voices.
"""
