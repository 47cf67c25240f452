"""envcheck.warm_up: `bin/bootstrap --compile used` writes the .pyc files of what ttsrig's commands import."""
from __future__ import annotations

import sys
from pathlib import Path

from envcheck import probes, warm_up
from envcheck.isolated import Check

ROOT = Path(__file__).resolve().parents[2]


def test_the_commands_imports_are_read_from_their_source_lazy_ones_included():
    statements = warm_up.command_imports()
    # Function-level imports of the model code the commands load only when they run.
    assert "from vocos import Vocos" in statements  # voices/f5.py, inside a function
    assert "from transformers import WavLMConfig, WavLMModel" in statements  # trainers/styletts2_model.py
    assert "from faster_whisper import WhisperModel" in statements  # optional backend: tried, may be absent
    assert not [s for s in statements if s.split()[1].split(".")[0] in warm_up.PROJECT_PACKAGES]
    assert not [s for s in statements if s.startswith("from __future__")]
    assert len(statements) == len(set(statements))


def test_a_new_import_in_a_command_joins_the_warm_up(tmp_path):
    (tmp_path / "voices").mkdir()
    (tmp_path / "voices/new.py").write_text(
        "import os.path as osp\nfrom . import sibling\nfrom voices import other\n"
        "def render():\n    from newvocoder.heads import Head as H, Tail\n    import trainers.f5, numpy\n")
    assert warm_up.command_imports(("voices",), tmp_path) == [
        "import os.path", "from newvocoder.heads import Head, Tail", "import numpy"]


def _fake_stack(tmp_path: Path) -> tuple[Path, Path]:
    package = tmp_path / "lib"
    (package / "stackmod").mkdir(parents=True)
    (package / "stackmod/__init__.py").write_text("VALUE = 1\n")
    (package / "lazymod.py").write_text("print('loud'); VALUE = 2\n")
    (package / "unused.py").write_text("VALUE = 3\n")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin/python").symlink_to(sys.executable)
    return package, venv / "bin/python"


def test_the_warm_up_compiles_the_probes_and_the_commands_imports_only(tmp_path, monkeypatch):
    package, python = _fake_stack(tmp_path)
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")  # the user's setting must not stop the warm-up
    monkeypatch.setattr(probes, "IMPORTS", [Check("stack", f"import sys; sys.path.insert(0, {str(package)!r}); "
                                                           "import stackmod; print('loud')")])
    monkeypatch.setattr(warm_up, "command_imports", lambda: ["import lazymod", "from not_installed import X"])
    note = warm_up.run(python)
    assert note.startswith("compiled what ttsrig's commands import (")
    assert list((package / "stackmod/__pycache__").glob("__init__.*.pyc"))
    assert list((package / "__pycache__").glob("lazymod.*.pyc"))  # a command's lazy import
    assert not list((package / "__pycache__").glob("unused.*.pyc"))  # what nothing imports stays uncompiled


def test_a_probe_that_does_not_import_is_noted_and_nothing_stops(tmp_path, monkeypatch):
    _, python = _fake_stack(tmp_path)
    monkeypatch.setattr(probes, "IMPORTS", [Check("broken", "import no_such_module_here")])
    note = warm_up.run(python)
    assert "the warm-up import failed (ModuleNotFoundError: No module named 'no_such_module_here')" in note
    assert "modules compile on first use" in note
