"""Tests of model code; they run inside a bootstrapped tier venv (tests/run_in_venv.py)."""
import pytest


@pytest.fixture(autouse=True)
def _own_trust_list(tmp_path, monkeypatch):
    """Every test gets an empty trust list of its own, never the user's."""
    monkeypatch.setenv("TTSRIG_TRUST_FILE", str(tmp_path / "trust" / "trusted-checkpoints.json"))
