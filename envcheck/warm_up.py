"""`bin/bootstrap --compile used`: write the .pyc files of what ttsrig's commands import, and nothing else.

One interpreter in the new venv imports, printing nothing, (1) the report's import probes (envcheck.probes:
the stack, with f5-tts's model core loaded the way ttsrig loads it) and then (2) every import statement of
ttsrig's command packages (trainers/, voices/, patches/, and the ASR backends), read from their source, function-level imports
included: the model code those commands import lazily (vocos, transformers' WavLM, StyleTTS2's modules, ...)
is compiled too, and a new import in the code joins the warm-up without anyone keeping a list. Python writes
the .pyc file of every module it imports. Standard library only (bootstrap runs on Python 3.8).
"""
from __future__ import annotations

import ast
import os
import subprocess
import time
from pathlib import Path

from envcheck import python_command

ROOT = Path(__file__).resolve().parent.parent
# ...and the ASR backends, which live in envcheck because its probes run them too (envcheck/asr_backends.py).
COMMAND_PACKAGES = ("trainers", "voices", "patches", "envcheck/asr_backends.py")
# Our own modules are compiled in the checkout on first use; the warm-up is for the venv's packages.
PROJECT_PACKAGES = frozenset({"envcheck", "trainers", "voices", "patches", "tests"})
TIMEOUT_S = 1800


def command_imports(packages: tuple[str, ...] = COMMAND_PACKAGES, root: Path = ROOT) -> list[str]:
    """Each distinct absolute import statement of another package in these packages' (or files') source, in
    file order."""
    statements: dict[str, None] = {}
    for package in packages:
        where = root / package
        for source in [where] if where.is_file() else sorted(where.rglob("*.py")):
            tree = ast.parse(source.read_text(encoding="utf-8"), str(source))
            for node in ast.walk(tree):
                statement = _statement(node)
                if statement:
                    statements.setdefault(statement)
    return list(statements)


def _statement(node: ast.AST) -> str:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names if alias.name.split(".")[0] not in PROJECT_PACKAGES]
        return f"import {', '.join(names)}" if names else ""
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        if node.module.split(".")[0] in PROJECT_PACKAGES | {"__future__"}:
            return ""
        return f"from {node.module} import {', '.join(alias.name for alias in node.names)}"
    return ""


def program() -> str:
    """The warm-up program: the import probes must all import (a failure is reported); the commands' own
    imports are tried one by one, since some name optional packages (faster-whisper) a venv may lack."""
    from envcheck import probes

    required = [check.code for check in probes.IMPORTS]
    optional = command_imports()
    return ("import contextlib, io\n"
            f"for source in {required!r}:\n"
            "    with contextlib.redirect_stdout(io.StringIO()):\n"
            "        exec(compile(source, 'warm-up', 'exec'), {})\n"
            f"for source in {optional!r}:\n"
            "    try:\n"
            "        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
            "            exec(compile(source, 'warm-up', 'exec'), {})\n"
            "    except Exception:\n"
            "        pass\n")


def run(venv_python: Path) -> str:
    """Compile what ttsrig's commands import, once, now; a one-line note for bootstrap's summary. A failure is
    only noted: the modules are then compiled on first use, and envcheck names what does not import."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
    started = time.monotonic()
    try:
        out = subprocess.run(python_command.code(str(venv_python), program()), capture_output=True, text=True,
                             cwd=ROOT, env=env, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return "the warm-up import took over 30 minutes and was stopped; modules compile on first use"
    seconds = time.monotonic() - started
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no message"])[-1]
        return f"the warm-up import failed ({last}); modules compile on first use; run envcheck"
    return f"compiled what ttsrig's commands import ({seconds:.1f} s)"
