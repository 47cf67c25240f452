"""ttsrig's base layer: the CPU probe, bin/bootstrap, and the environment verifier (`envcheck`).

What lives where:
- facts and helpers every package imports (standard library only, so bin/bootstrap runs on them before
  anything is installed): `errors` (TtsrigError), `atomic` (atomic file writes), `digests` (sha256 of files
  and bytes), `venv` (bootstrap's state record, the names at a venv's top, its site-packages), `locks`
  (requirement files and hash-pinned locks: reading, nodeps.txt, conformance), `tiers` (the tier table),
  `python_command` (the argv of a Python command that imports nothing from the current directory).
- `probe`: which tier this CPU is, and whether it has AVX2.
- `bootstrap`: bin/bootstrap, from a clean checkout to a verified venv; its steps in `bootstrap_python`,
  `bootstrap_venv`, `bootstrap_wheels`, `bootstrap_install` and `bootstrap_summary`, the plan they share in
  `bootstrap_plan`, paths and logging in `bootstrap_common`.
- the verifier: `report` (the `envcheck` report), `isolated` (one check in its own interpreter, optionally
  under qemu), `together` (a set of checks: the shareable ones in one interpreter, the rest alone), `probes`
  (the report's import probes and smoke checks), `knowledge` (`envcheck scan` and its data file), `evidence`
  (`envcheck evidence`), `asr_probe` (faster-whisper end to end with a tiny random model, for
  `envcheck evidence --checks asr`), `cli` (the command line).

Imports point one way: patches, trainers and voices import envcheck; envcheck imports none of them. What
envcheck needs to know about a venv's patches it asks the venv (`python -m patches status --json`).
"""
