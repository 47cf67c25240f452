"""The argv of a Python command that imports nothing from the current directory.

`python -m MODULE` and `python -c CODE` put the current directory first on sys.path, so a module there (an
argparse.py, a torch/ or an envcheck/ in /tmp, where anyone may write) would be imported instead of the
standard library's, the venv's or ttsrig's. `-P` prevents that only from Python 3.11, and `-I` also drops
PYTHONPATH, which ttsrig's checks need. So the code's first statement takes that entry out before anything
else is imported (sys is built in; with -c the entry is added after site has run, so no sitecustomize is
looked for there either). bin/no-cwd.sh does the same for the shell commands.

Standard library only (bin/bootstrap uses it before any package is installed).
"""
from __future__ import annotations

NO_CWD = "import sys; sys.path[:] = [p for p in sys.path if p]"


def code(python: str, source: str) -> list[str]:
    """`python -c source`, without the current directory (source may not start with a __future__ import)."""
    return [python, "-c", f"{NO_CWD}\n{source}"]


def module(python: str, name: str, *args: str) -> list[str]:
    """`python -m name args...`, without the current directory: runpy as -m runs it (__main__, sys.argv[0])."""
    return [python, "-c", f"{NO_CWD}; import runpy; runpy.run_module({name!r}, run_name='__main__', alter_sys=True)",
            *args]
