import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@pytest.fixture(autouse=True)
def _clean_pip_env(monkeypatch):
    """Tests never inherit the machine's pip configuration."""
    for key in list(os.environ):
        if key.startswith(("PIP_", "UV_")):
            monkeypatch.delenv(key)


@pytest.fixture(autouse=True)
def _fresh_tier_table():
    from envcheck import tiers

    tiers.load.cache_clear()
    yield
    tiers.load.cache_clear()
