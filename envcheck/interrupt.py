"""Ctrl-C in a ttsrig command ends in one line, never a traceback.

A command's module calls `when_run(__name__, prog)` before its heavy imports: torch and the model libraries
take seconds to import, and a Ctrl-C meanwhile (or at any later moment no handler of the command covers)
would end in a traceback through their internals. The process still ends as Ctrl-C ends a program (killed
by SIGINT, exit status 130 in a shell), after the one line. Imported by another module (a test), the
module changes nothing: only a module run as the program sets the hook.
"""
from __future__ import annotations

import sys
from types import TracebackType


def when_run(module_name: str, prog: str, hint: str = "") -> None:
    """Make an uncaught KeyboardInterrupt print `prog: interrupted` (and `hint`) when `module_name` is
    "__main__"; every other uncaught exception is shown as before."""
    if module_name != "__main__":
        return
    previous = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, trace: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.stderr.write(f"\n{prog}: interrupted{'; ' + hint if hint else ''}\n")
            return
        previous(kind, value, trace)

    sys.excepthook = hook
