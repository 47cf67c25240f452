"""What ttsrig changes in and around an installed environment: idempotent, verifiable, reversible.

- `python -m patches` (`cli`): apply|status [--json]|revert for the patches, trust|convert|inspect for
  checkpoints.
- the patches: `dynamo` makes torch._dynamo's import-time operator probe a no-op (it SIGFPEs on pre-v2
  CPUs); `sitecustomize` installs the start-up hook `site_runtime` into a venv (oneDNN off where it
  faults, NNPACK off without AVX2, a `datasets` stub); `target` is the venv a patch acts on and the
  patches' own record in it.
- safe checkpoint loading: `checkpoints` (load, inspect, convert), `trust` (the user's trusted-checkpoint
  list), `pickle_scan` (what a pickle would import, read from its opcodes).
- `f5_core` imports f5-tts' model code without its package __init__; `quiet` silences known library
  warnings around the ttsrig calls that raise them.

patches builds on envcheck (errors, atomic writes, digests, the venv's facts, the CPU probe, the tier
names), never the other way round; trainers and voices import patches (checkpoint loading, f5_core,
quiet), and patches imports neither.
"""
