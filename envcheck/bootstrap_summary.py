"""What bin/bootstrap prints when it is done: the summary of the venv against its lock, and what it did
about bytecode (--compile).

Standard library only (bin/bootstrap runs on any Python 3.8 or newer).
"""
from __future__ import annotations

from envcheck import bootstrap_python, locks, warm_up
from envcheck.bootstrap_common import rel
from envcheck.bootstrap_plan import Plan


def summary(plan: Plan, result: locks.Conformance, changed: list[str], patches: str, seconds: float,
            bytecode: str = "") -> str:
    lines = [
        f"cpu:       {plan.cpu}",
        f"venv:      {plan.venv}",
        f"tier:      {plan.tier}" + ("" if plan.tier == plan.probed_tier else f" (CPU probed as {plan.probed_tier})"),
        f"gpu:       {plan.gpu_class} ({plan.gpu_why})",
        f"python:    CPython {plan.python_version} ({plan.python}{bootstrap_python.python_origin(plan.python)})",
        f"lock:      {rel(plan.lock)}, CPython {plan.python_version} + {rel(plan.nodeps)} ({len(plan.pins)} packages)",
        f"layers:    " + ("; ".join(f"{layer.name} ({layer.lock and rel(layer.lock) or 'whisper.cpp, ' + str(layer.build)}"
                                  f"{', kept' if layer.kept else ''})" for layer in plan.layers) or "none (--with asr adds the ASR)"),
        f"changes:   {'; '.join(changed) if changed else 'nothing changed'}",
        f"versions:  {'all equal the lock' if result.ok else 'DIFFER from the lock'}",
    ]
    for name, (want, got) in sorted(result.mismatched.items()):
        lines.append(f"  {name}: locked {want}, installed {got}")
    if result.missing:
        lines.append(f"  missing: {', '.join(result.missing)}")
    if result.forbidden_present:
        lines.append(f"  forbidden on {plan.tier}: {', '.join(result.forbidden_present)}")
    if result.extra:
        lines.append(f"extra:     {', '.join(result.extra)} (not in the lock; left alone)")
    lines.append(f"time:      {seconds:.1f} s")
    lines.append(f"patches:   {patches}")
    if bytecode:
        lines.append(f"bytecode:  {bytecode}")
    lines.append(f"next:      {plan.venv}/bin/envcheck probe")
    return "\n".join(lines)


def bytecode_note(plan: Plan) -> str:
    """What bootstrap did about .pyc files after an install, for the summary."""
    if plan.compile == "used":
        return warm_up.run(plan.venv_python)
    if plan.compile == "all":
        return "compiled every installed module"
    return ("none written now: each module is compiled on its first import, so the first command (the first "
            "envcheck report too) takes longer once, and stores them (--compile all writes them now)")
