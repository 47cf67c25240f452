"""Imports point one way (envcheck/__init__.py): envcheck <- patches <- trainers <- voices. A module of a
lower layer never imports a higher one, not even inside a function: envcheck's probes and bin/bootstrap
must run where the model code cannot even import."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("envcheck", "patches", "trainers", "voices")


def imported_packages(source: Path) -> set[tuple[int, str]]:
    """(line, top-level package) of every absolute import in the file, function-level ones included."""
    found = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"), str(source))):
        if isinstance(node, ast.Import):
            found |= {(node.lineno, alias.name.split(".")[0]) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.lineno, node.module.split(".")[0]))
    return found


@pytest.mark.parametrize("layer", LAYERS[:-1])
def test_no_module_imports_a_layer_above_its_own(layer):
    above = set(LAYERS[LAYERS.index(layer) + 1:])
    wrong = [f"{source.relative_to(ROOT)}:{line} imports {package}"
             for source in sorted((ROOT / layer).rglob("*.py"))
             for line, package in sorted(imported_packages(source)) if package in above]
    assert wrong == [], wrong


def test_the_check_sees_a_function_level_import(tmp_path):
    source = tmp_path / "probe.py"
    source.write_text("def run():\n    from trainers.transcribe import WhisperCpp\n")
    assert (2, "trainers") in imported_packages(source)
