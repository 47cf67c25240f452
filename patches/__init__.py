"""Patches ttsrig applies to an installed environment: idempotent, verifiable, reversible.

- dynamo: makes torch._dynamo's import-time operator probe a no-op (it SIGFPEs on pre-v2 CPUs).
- sitecustomize: a start-up hook for every interpreter of the venv (oneDNN off where it faults,
  a `datasets` stub where the real package is absent).
"""
