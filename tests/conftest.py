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


def pytest_collection_modifyitems(config, items):
    """Tests marked ci_only (long emulated runs) are skipped, with the reason in -ra's summary, unless CI asks."""
    if os.environ.get("TTSRIG_CI") == "1":
        return
    skip = pytest.mark.skip(reason="slow, CI only: run with `bin/test --ci` (or TTSRIG_CI=1)")
    for item in items:
        if item.get_closest_marker("ci_only"):
            item.add_marker(skip)
