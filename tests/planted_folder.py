"""A folder of planted modules, for the tests that run ttsrig's commands from it (tests/unit and tests/models
test_wrappers_cwd.py): every module and package in it writes its name into a marks folder when imported, so a
command that imports anything from the directory it is run from leaves a mark."""
from __future__ import annotations

from pathlib import Path

# The user's PYTHONPATH: absolute entries only (the hole of -m and -c alone), or with the empty and relative entries
# that name the current directory too (`export PYTHONPATH=$PYTHONPATH:/x` with none set makes one).
PYTHONPATHS = {"absolute": "{}", "empty-and-relative": "::.:{}"}
# ttsrig's own packages: one of these in the current directory must not replace the checkout's.
PACKAGES = ("envcheck", "patches", "voices", "trainers")


def planted(tmp_path: Path, modules: tuple[str, ...]) -> tuple[Path, Path]:
    """The folder holding `modules` (and PACKAGES, each with a __main__), and the marks folder."""
    folder, marks = tmp_path / "shared", tmp_path / "marks"
    folder.mkdir()
    marks.mkdir()
    mark = f"import os\nopen(os.path.join({str(marks)!r}, __name__), 'w').close()\n"
    for name in modules:
        (folder / f"{name}.py").write_text(mark)
    for name in PACKAGES:
        (folder / name).mkdir()
        (folder / name / "__init__.py").write_text(mark)
        (folder / name / "__main__.py").write_text(mark)
    return folder, marks
