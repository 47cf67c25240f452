"""Every command ttsrig ships ends a Ctrl-C and a wrong option in one line (issue: trust, second round,
class 6), read from the commands' own source, so a new command cannot forget either. The behaviour itself is
shown end to end in tests/models/test_voices.py (Ctrl-C while say-strong starts, numbers out of range)."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Each module users run as `python -m MODULE` (or through voices/ and bin/ wrappers), with its name in messages.
COMMANDS = {"envcheck/__main__.py": "envcheck", "patches/__main__.py": "patches", "trainers/prepare.py": "trainers.prepare",
            "trainers/f5.py": "trainers.f5", "trainers/styletts2.py": "trainers.styletts2",
            "trainers/fetch.py": "trainers.fetch", "voices/say.py": "say",
            "voices/audition.py": "audition", "voices/screen.py": "screen"}
HEAVY = {"numpy", "torch", "torchaudio", "soundfile", "transformers", "yaml", "librosa"}


def module_imports(tree: ast.Module) -> list[tuple[int, str]]:
    found = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


@pytest.mark.parametrize("path, prog", COMMANDS.items())
def test_each_command_quiets_ctrl_c_before_anything_slow_is_imported(path: str, prog: str) -> None:
    source = (ROOT / path).read_text()
    tree = ast.parse(source)
    calls = [n for n in tree.body if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)
             and ast.unparse(n.value.func) == "interrupt.when_run"]
    assert calls, f"{path} never calls interrupt.when_run(__name__, ...)"
    call = calls[0].value
    assert ast.unparse(call.args[0]) == "__name__" and ast.literal_eval(call.args[1]) == prog
    first_heavy = min((line for line, name in module_imports(tree) if name in HEAVY), default=None)
    ours = [line for line, name in module_imports(tree) if name in ("trainers", "voices", "patches")]
    assert first_heavy is None or calls[0].lineno < first_heavy, f"{path} imports {first_heavy} before the hook"
    assert not ours or calls[0].lineno < min(ours), f"{path}: ttsrig modules (which import torch) come before it"


def test_every_command_line_parser_errs_in_one_line() -> None:
    sources = [p for folder in ("envcheck", "patches", "trainers", "voices") for p in (ROOT / folder).glob("*.py")]
    plain = [f"{p.relative_to(ROOT)}:{n}" for p in sources for n, line in enumerate(p.read_text().splitlines(), 1)
             if re.search(r"argparse\.ArgumentParser\(", line) and p.name != "bootstrap.py"]
    assert plain == [], f"use envcheck.arguments.Parser (one-line errors) in {plain}"


def test_an_uncaught_ctrl_c_prints_one_line_and_ends_as_sigint(tmp_path: Path) -> None:
    script = tmp_path / "cmd.py"
    script.write_text("from envcheck import interrupt\ninterrupt.when_run(__name__, 'demo', 'run again')\n"
                      "raise KeyboardInterrupt\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT)})
    assert done.returncode in (-2, 130) and done.stderr.strip() == "demo: interrupted; run again", done.stderr
    imported = subprocess.run([sys.executable, "-c", "import sys; from envcheck import interrupt; "
                               "hook = sys.excepthook; interrupt.when_run('some.module', 'demo'); "
                               "assert sys.excepthook is hook"], capture_output=True, text=True,
                              env={"PYTHONPATH": str(ROOT)})
    assert imported.returncode == 0, imported.stderr  # imported, not run: nothing changes
