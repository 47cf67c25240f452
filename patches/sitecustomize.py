"""The sitecustomize patch: put the start-up hook (site_runtime.py) into a venv, check it, remove it."""
from __future__ import annotations

import json
from pathlib import Path

from envcheck.atomic import write_atomic
from patches.target import Env, sha256

NAME = "sitecustomize"
ONEDNN_OFF_ON = ("pre-v2",)  # measured: oneDNN faults under -cpu phenom, not under Nehalem or Haswell
RUNTIME = Path(__file__).with_name("site_runtime.py")
MODULE, CONFIG, PTH = "_ttsrig_site.py", "_ttsrig_site.json", "ttsrig-site.pth"


def wanted(tier: str | None) -> dict[str, bytes]:
    config = {"tier": tier, "disable_onednn": tier in ONEDNN_OFF_ON, "datasets_stub": True}
    return {
        MODULE: RUNTIME.read_bytes(),
        CONFIG: (json.dumps(config, indent=2, sort_keys=True) + "\n").encode(),
        PTH: b"import _ttsrig_site\n",
    }


def status(env: Env, tier: str | None) -> tuple[str, str]:
    files = wanted(tier)
    present = {n: (env.site / n).read_bytes() for n in files if (env.site / n).exists()}
    if not present:
        return "missing", "the start-up hook is not installed; run `python -m patches apply`"
    if present == files:
        onednn = "oneDNN off" if tier in ONEDNN_OFF_ON else "oneDNN left on"
        return "applied", f"{PTH} -> {MODULE} ({onednn}, datasets stub)"
    changed = sorted(n for n in files if present.get(n) != files[n])
    return "stale", f"{', '.join(changed)} differ from this checkout's hook (edited by hand, or another tier); " \
                    "run `python -m patches apply`"


def apply(env: Env, tier: str | None) -> str:
    state_now, detail = status(env, tier)
    if state_now == "applied":
        return f"{NAME}: applied ({detail})"
    files = wanted(tier)
    # The module and config first, the .pth that activates them last.
    for name in (MODULE, CONFIG, PTH):
        write_atomic(env.site / name, files[name])
    state = env.load_state()
    state[NAME] = {"files": {n: sha256(b) for n, b in files.items()}, "tier": tier}
    env.save_state(state)
    return f"{NAME}: applied ({status(env, tier)[1]})"


def revert(env: Env) -> str:
    removed = [n for n in (PTH, MODULE, CONFIG) if (env.site / n).exists()]
    for name in removed:  # the .pth first, so no interpreter starts with half a hook
        (env.site / name).unlink()
    state = env.load_state()
    state.pop(NAME, None)
    env.save_state(state)
    return f"{NAME}: removed {', '.join(removed)}" if removed else f"{NAME}: nothing to revert"
