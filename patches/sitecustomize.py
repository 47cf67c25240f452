"""The sitecustomize patch: put the start-up hook (site_runtime.py) into a venv, check it, remove it."""
from __future__ import annotations

import json
import os
from pathlib import Path

from envcheck import reading
from envcheck.atomic import write_atomic
from envcheck.digests import bytes_sha256
from envcheck.probe import cpu_has_avx2
from patches.target import Env

NAME = "sitecustomize"
ONEDNN_OFF_ON = ("pre-v2",)  # measured: oneDNN faults under -cpu phenom, not under Nehalem or Haswell
RUNTIME = Path(__file__).with_name("site_runtime.py")
MODULE, CONFIG, PTH = "_ttsrig_site.py", "_ttsrig_site.json", "ttsrig-site.pth"
NNPACK_SWITCH = "TTSRIG_NNPACK_FIX"
# The hook's files are a few kilobytes (the module) and lines (the config, the .pth); the hook itself reads
# the config with its own bound (site_runtime._CONFIG_LIMIT), as it imports nothing of ttsrig.
HOOK_LIMIT = 1 << 20


def wanted(tier: str | None) -> dict[str, bytes]:
    # NNPACK is decided when torch is imported, from the CPU the interpreter runs on: a v2 venv on an AVX2
    # machine keeps it, and the same venv under qemu-x86_64 -cpu Nehalem turns it off.
    config = {"tier": tier, "disable_onednn": tier in ONEDNN_OFF_ON, "nnpack_off_without_avx2": True,
              "datasets_stub": True}
    return {
        MODULE: RUNTIME.read_bytes(),
        CONFIG: (json.dumps(config, indent=2, sort_keys=True) + "\n").encode(),
        PTH: b"import _ttsrig_site\n",
    }


def switched_off(variable: str) -> bool:
    """The hook's reading of a switch (site_runtime._switched_on, which cannot be imported here)."""
    return os.environ.get(variable, "1").strip().lower() in ("0", "false", "no", "off")


def nnpack_note(avx2: bool | None) -> str:
    """What the hook does about NNPACK on this CPU, for `patches status` and envcheck."""
    off = [v for v in ("TTSRIG_SITE", NNPACK_SWITCH) if switched_off(v)]
    if off:
        return f"NNPACK left on: {off[0]}=0 in this environment"
    if avx2 is None:
        return "NNPACK off on a CPU without AVX2"
    if avx2:
        return "NNPACK left on: this CPU has AVX2"
    return "NNPACK off: this CPU lacks AVX2, which NNPACK needs"


def status(env: Env, tier: str | None) -> tuple[str, str]:
    """applied / missing / stale, with a detail; what the hook does about NNPACK is decided by the CPU this
    interpreter runs on (envcheck asks the venv's own interpreter, under qemu when it emulates a CPU)."""
    files = wanted(tier)
    present = {n: read_own(env.site / n) for n in files if os.path.lexists(env.site / n)}
    if not present:
        return "missing", "the start-up hook is not installed; run `python -m patches apply`"
    if present == files:
        onednn = "oneDNN off" if tier in ONEDNN_OFF_ON else "oneDNN left on"
        nnpack = nnpack_note(cpu_has_avx2())
        return "applied", f"{PTH} -> {MODULE} ({onednn}; {nnpack}; datasets stub)"
    changed = sorted(n for n in files if present.get(n) != files[n])
    return "stale", f"{', '.join(changed)} differ from this checkout's hook (edited by hand, or another tier); " \
                    "run `python -m patches apply`"


def read_own(path: Path) -> bytes:
    """One of the hook's files as apply wrote it: a regular file, never through a link, of bounded size
    (envcheck.reading); a pipe or device there is one line, not a hang or a read without end."""
    return reading.read_bytes(path, f"the start-up hook's {path.name}", "remove it, and run `python -m patches "
                              "apply` to write it again", follow=False, limit=HOOK_LIMIT)


def apply(env: Env, tier: str | None) -> str:
    state_now, detail = status(env, tier)
    if state_now == "applied":
        return f"{NAME}: applied ({detail})"
    files = wanted(tier)
    # The module and config first, the .pth that activates them last.
    for name in (MODULE, CONFIG, PTH):
        write_atomic(env.site / name, files[name])
    state = env.load_state()
    state[NAME] = {"files": {n: bytes_sha256(b) for n, b in files.items()}, "tier": tier}
    env.save_state(state)
    return f"{NAME}: applied ({status(env, tier)[1]})"


def revert(env: Env) -> str:
    removed = [n for n in (PTH, MODULE, CONFIG) if os.path.lexists(env.site / n)]  # a link is removed, not followed
    for name in removed:  # the .pth first, so no interpreter starts with half a hook
        (env.site / name).unlink()
    state = env.load_state()
    state.pop(NAME, None)
    env.save_state(state)
    return f"{NAME}: removed {', '.join(removed)}" if removed else f"{NAME}: nothing to revert"
