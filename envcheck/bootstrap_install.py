"""Running the installers into the venv: the installer's own tools (uv, archspec), the lock, the --no-deps
packages, removing what the tier forbids, ttsrig itself, the patches, and the check against the lock; an
installer's failure becomes one line that says what to do next.

Standard library only (bin/bootstrap runs on any Python 3.8 or newer).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from envcheck import bootstrap_common as common
from envcheck import bootstrap_layers, bootstrap_venv, bootstrap_wheels, locks, python_command
from envcheck.bootstrap_common import forbidden, log, rel
from envcheck.bootstrap_plan import Plan
from envcheck.errors import TtsrigError
from envcheck.venv import site_packages, write_state

PROJECT_DIST = "ttsrig"

HASH_MISMATCH = ("hash mismatch", "hashes do not match", "do not match the hashes", "Hash mismatch")
# The package an installer names when a file does not match its hash (uv, then pip).
MISMATCHED_PIN = (re.compile(r"Hash mismatch for `([A-Za-z0-9._-]+)==([^`\s]+)`"),
                  re.compile(r"^\s+([A-Za-z0-9._-]+)==(\S+) from \S", re.M))
# An installer found no file for a pin: in a wheelhouse it is missing; from the index, the pin is wrong.
NOT_FOUND = ("was not found in the provided package locations", "No matching distribution found",
             "there is no version of")
# What an installer's failure output means, and what the user should do next.
FAILURE_HINTS = (
    (HASH_MISMATCH,
     "a downloaded file does not match the hash in {lock}: the lock was edited by hand or is corrupt. "
     "Restore it with `git checkout -- requirements/` or regenerate it with bin/lock."),
    (("was not found in the cache", "wasn't found in the cache"),
     "offline, and a package of {lock} is not in uv's cache: connect and re-run bin/bootstrap (it "
     "continues where it stopped), or copy every file of the locks into a folder and pass --wheelhouse DIR."),
    (("No space left on device",),
     "the disk is full. Free space where the venv and the cache live ({venv}, ~/.cache), then re-run "
     "bin/bootstrap: it continues where it stopped."),
    (("Failed to fetch", "dns error", "Connection refused", "Network is unreachable",
      "Temporary failure in name resolution", "connect error", "NewConnectionError", "timed out"),
     "the package index could not be reached (no network?). Connect and re-run bin/bootstrap: it "
     "continues where it stopped; with a warm cache, `--offline` installs without the network."),
    (("command 'gcc' failed", "gcc: not found", "error: command 'cc'", "No such file or directory: 'gcc'",
      "unable to execute 'gcc'"),
     "building the monotonic-align extension needs a C compiler: install one (Debian/Ubuntu: "
     "`sudo apt-get install build-essential python{python}-dev`) and re-run bin/bootstrap."),
)


def run(cmd: list[str], plan: Plan, what: str, lock_files: tuple[Path, ...] = ()) -> None:
    """Run an installer step, streaming its output; turn a failure into a clear message."""
    log(what)
    # Machine-local installer settings must not change the lock; where uv keeps its cache does not.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "UV_", "VIRTUAL_ENV")) or k == "UV_CACHE_DIR"}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_CONFIG_FILE"] = os.devnull  # machine-local indexes and constraints must not change the lock
    env["VIRTUAL_ENV"] = str(plan.venv)
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                bufsize=1)
    except OSError as exc:
        raise TtsrigError(f"{what} failed: {cmd[0]} could not be started ({exc.strerror}). Re-run bin/bootstrap: "
                          "it rebuilds what is missing in a venv it made.") from None
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stderr.write(line)
        tail = (tail + [line])[-200:]
    if proc.wait() != 0:
        raise TtsrigError(f"{what} failed" + explain_failure("".join(tail), proc.returncode, plan, lock_files))


def explain_failure(output: str, code: int, plan: Plan, lock_files: tuple[Path, ...]) -> str:
    """What an installer's failure output means, and what to do next."""
    lock_files = lock_files or (plan.lock,)
    if any(needle.lower() in output.lower() for needle in HASH_MISMATCH):
        where = mismatched_pin(output, lock_files)
        if where:
            return f": {where}"
    names = " or ".join(rel(path) for path in lock_files)
    if any(needle in output for needle in NOT_FOUND):
        if plan.wheelhouse or plan.offline:
            return (f": a file of {names} is not in {plan.wheelhouse or 'the cache'}: copy it there "
                    f"({bootstrap_wheels.download_hint(plan, *lock_files)}) and re-run bin/bootstrap.")
        return f": {names} names a release the index does not have, so the lock was edited by hand. {locks.RESTORE}"
    for needles, hint in FAILURE_HINTS:
        if any(needle in output for needle in needles):
            return ": " + hint.format(lock=names, venv=plan.venv, python=plan.python_minor)
    return (f" (exit {code}); its output is above. Re-run bin/bootstrap to continue: finished steps are not "
            "repeated.")


def mismatched_pin(output: str, lock_files: tuple[Path, ...]) -> str | None:
    """The lock line of the first package an installer says does not match its hash."""
    for pattern in MISMATCHED_PIN:
        for match in pattern.finditer(output):
            for path in lock_files:
                pin = locks.parse_lock(path).get(locks.canonical(match[1]))
                if pin:
                    return (f"{rel(path)} line {pin.line}: the file of {match[1]}=={match[2]} does not match the "
                            f"lock's hashes for it, so the lock was edited by hand or is corrupt. {locks.RESTORE}")
    return None


def installer_cmd(plan: Plan, *args: str) -> list[str]:
    if plan.installer == "uv":
        uv = plan.venv / "bin" / "uv"
        # uv compiles nothing by default (pip compiles everything): --compile all asks it to.
        cmd = [str(uv), "pip", "install", "--python", str(plan.venv_python), "--no-config"]
        cmd += ["--compile-bytecode"] if plan.compile == "all" else []
    else:
        cmd = python_command.module(str(plan.venv_python), "pip", "install", "--no-input")
        cmd += [] if plan.compile == "all" else ["--no-compile"]
    return cmd + plan.source_args() + list(args)


def uninstall_cmd(plan: Plan, names: list[str]) -> list[str]:
    if plan.installer == "uv":
        return [str(plan.venv / "bin" / "uv"), "pip", "uninstall", "--python", str(plan.venv_python), *names]
    return python_command.module(str(plan.venv_python), "pip", "uninstall", "-y", *names)


def tools_installed(plan: Plan, pins: dict[str, locks.Pin]) -> bool:
    have = locks.installed(site_packages(plan.venv))
    uv = plan.venv / "bin" / "uv"
    return all(have.get(n) == p.version for n, p in pins.items()) and uv.is_file() and os.access(uv, os.X_OK)


# Here, beside its only caller, and not in bootstrap_wheels: the download is an installer step (`run`).
def fetch_bootstrap_wheels(plan: Plan) -> None:
    """Online: download the installer's wheels (hash-checked) into the wheel cache, for this and offline runs."""
    lock, cache = common.REQUIREMENTS / "bootstrap.txt", plan.wheel_cache
    bootstrap_wheels.fetch_installer_wheels(str(plan.venv_python), cache, lambda cmd: run(
        cmd, plan, f"downloading the installer's wheels into {cache} (kept for offline runs)", (lock,)))


def ensure_bootstrap_tools(plan: Plan) -> None:
    """uv and archspec, installed by pip from verified wheels on disk (the wheelhouse or the wheel cache)."""
    lock = common.REQUIREMENTS / "bootstrap.txt"
    pins = locks.parse_lock(lock)
    if tools_installed(plan, pins):
        return
    good, bad = bootstrap_wheels.verified_wheels(pins, plan.wheel_folders)
    if len(good) < len(pins) and not (plan.offline or plan.wheelhouse):
        fetch_bootstrap_wheels(plan)
        good, bad = bootstrap_wheels.verified_wheels(pins, plan.wheel_folders)
    if len(good) < len(pins):
        raise TtsrigError(bootstrap_wheels.missing_tools_message(plan, pins, good, bad))
    with tempfile.TemporaryDirectory(prefix="ttsrig-wheels-") as links:
        # Only the verified files: pip must not pick a damaged or foreign one lying beside them.
        for path in good.values():
            (Path(links) / path.name).symlink_to(path)
        run(python_command.module(str(plan.venv_python), "pip", "install", "--no-input", "--require-hashes",
                                  "--no-deps", "--force-reinstall", "--no-index", "--find-links", links, "-r",
                                  str(lock)), plan,
            "installing the installer (uv) and the CPU reader (archspec)", (lock,))


def verify(plan: Plan) -> locks.Conformance:
    have = locks.installed(site_packages(plan.venv))
    allowed = {"pip", PROJECT_DIST}
    return locks.conformance(plan.pins, have, forbidden(plan.tier), allowed)


def packages_to_remove(plan: Plan, previous: object, have: dict[str, str]) -> list[str]:
    """What the tier forbids and what an earlier lock of this venv installed that this one dropped.

    Only installed distributions, by name (the installers remove what their RECORD lists inside the venv),
    and never the tools bootstrap itself runs on.
    """
    keep = {"pip", "setuptools", PROJECT_DIST, *locks.parse_lock(common.REQUIREMENTS / "bootstrap.txt")}
    names = previous if isinstance(previous, list) else []
    dropped = {locks.canonical(n) for n in names if isinstance(n, str)} - set(plan.pins)
    forbid = {locks.canonical(f) for f in forbidden(plan.tier)}
    return sorted(((dropped | forbid) - keep) & set(have))


def install(plan: Plan, state: dict) -> list[str]:
    """Bring the venv to the plan. Returns what was done."""
    done: list[str] = []
    bootstrap_venv.ensure_venv(plan)
    ensure_bootstrap_tools(plan)
    previous_pins = state.get("packages", [])
    write_state(plan.venv, {**bootstrap_venv.load_state(plan.venv), **state, "complete": False,
                            "installing": plan.lock_digest})

    run(installer_cmd(plan, "--require-hashes", "--no-deps", "-r", str(plan.lock)), plan,
        f"installing {rel(plan.lock)}", (plan.lock,))
    done.append(f"installed {rel(plan.lock)}")
    run(installer_cmd(plan, "--require-hashes", "--no-deps", "--no-build-isolation", "-r", str(plan.nodeps)),
        plan, f"installing {rel(plan.nodeps)} (building monotonic-align against the pinned numpy)", (plan.nodeps,))
    done.append(f"installed {rel(plan.nodeps)}")
    done += install_layers(plan, state)

    # Remove what the tier forbids, and what an earlier lock installed that this one dropped.
    remove = packages_to_remove(plan, previous_pins, locks.installed(site_packages(plan.venv)))
    if remove:
        run(uninstall_cmd(plan, remove), plan, f"removing {', '.join(remove)}")
        done.append(f"removed {', '.join(remove)}")

    run(installer_cmd(plan, "--no-deps", "--no-build-isolation", "-e", str(common.ROOT)), plan,
        "installing ttsrig itself (editable)")
    write_state(plan.venv, {
        "complete": True, "made_by": "bin/bootstrap", "tier": plan.tier, "lock": rel(plan.lock),
        "gpu_class": plan.gpu_class, "layers": plan.layer_records(),
        "python": plan.python_version,
        "lock_digest": plan.lock_digest, "packages": sorted(plan.pins),
        "installed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    return done


def install_layers(plan: Plan, state: dict) -> list[str]:
    """Each layer of the plan (a lock after the tier's, or a build into bin/), and a built layer the plan no
    longer has taken away (a lock layer's packages go with the dropped pins); what was done."""
    done = []
    recorded = state.get("layers") if isinstance(state.get("layers"), dict) else {}
    for layer in plan.layers:
        if layer.lock:
            run(installer_cmd(plan, "--require-hashes", "--no-deps", "-r", str(layer.lock)), plan,
                f"installing the {layer.name} layer ({rel(layer.lock)})", (layer.lock,))
            done.append(f"installed the {layer.name} layer ({rel(layer.lock)})")
        else:
            log(f"building whisper.cpp for the {layer.name} layer (a few minutes)")
            built = bootstrap_layers.install_build(layer, plan.venv, plan.wheel_cache, plan.offline,
                                                   recorded.get(layer.name))
            if built:
                done.append(built)
    for name, record in recorded.items():
        if name not in plan.layer_records() and isinstance(record, dict) and "whisper.cpp" in record:
            gone = bootstrap_layers.remove_build(plan.venv)
            done.append(f"removed the {name} layer ({', '.join(gone) or 'nothing left'})")
    return done


def apply_patches(plan: Plan) -> str:
    """Run `python -m patches apply` in the venv; returns what it did, one phrase per patch."""
    out = subprocess.run(python_command.module(str(plan.venv_python), "patches", "apply", "--tier", plan.tier),
                         capture_output=True, text=True, cwd=common.ROOT,
                         env={**os.environ, "PYTHONPATH": str(common.ROOT)})
    sys.stderr.write(out.stdout + out.stderr)
    if out.returncode != 0:
        raise TtsrigError("applying the patches failed; see the message above. The environment is installed; "
                          "fix the cause and re-run bin/bootstrap.")
    return "; ".join(line.split(" (")[0] for line in out.stdout.splitlines()) or "applied"
