"""TOML parsing on every supported Python: the standard library's tomllib from 3.11; on 3.10, tomli, the same
parser under its PyPI name (every Python 3.10 lock pins it: tests/unit/test_locks.py holds that)."""
from __future__ import annotations

try:
    from tomllib import TOMLDecodeError, loads
except ModuleNotFoundError:  # Python 3.10
    from tomli import TOMLDecodeError, loads

__all__ = ["TOMLDecodeError", "loads"]
