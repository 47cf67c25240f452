"""A venv's facts in one place: site-packages from its own Python version, and bootstrap's record."""
from __future__ import annotations

from pathlib import Path

import pytest

from envcheck import bootstrap_venv, report
from envcheck.venv import read_state, recorded_tier, site_packages, write_state
from patches.target import Env


def venv_with(tmp_path: Path, config: str, *folders: str) -> Path:
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / "pyvenv.cfg").write_text(config)
    for folder in folders:
        (venv / folder).mkdir(parents=True)
    return venv


@pytest.mark.parametrize("config", ["home = /usr/bin\nversion = 3.12.4\n",  # python -m venv
                                    "home = /usr/bin\nversion_info = 3.12.4\n",  # uv
                                    "home = /usr/bin\nversion_info = 3.12.4.final.0\n"])  # virtualenv
def test_site_packages_follows_the_venvs_python_version(tmp_path, config):
    venv = venv_with(tmp_path, config, "lib/python3.12/site-packages")
    assert site_packages(venv) == venv / "lib/python3.12/site-packages"
    # bootstrap, the report and the patches tool all ask the same place
    assert Env.of(str(venv)).site == report.site_packages(venv) == bootstrap_venv.site_packages(venv)


def test_a_config_without_a_version_falls_back_to_the_one_lib_folder(tmp_path):
    venv = venv_with(tmp_path, "home = /usr/bin\n", "lib/python3.11/site-packages")
    assert site_packages(venv) == venv / "lib/python3.11/site-packages"


def test_the_state_record_missing_unreadable_and_written(tmp_path):
    venv = tmp_path / "venv"
    venv.mkdir()
    assert read_state(venv) == {} and recorded_tier(venv) is None
    (venv / "ttsrig-state.json").write_text("[1, 2]")
    assert read_state(venv) is None and recorded_tier(venv) is None
    (venv / "ttsrig-state.json").write_text("{not json")
    assert read_state(venv) is None
    write_state(venv, {"complete": True, "tier": "v2"})
    assert read_state(venv) == {"complete": True, "tier": "v2"} and recorded_tier(venv) == "v2"
    assert Env(venv, venv).tier() == "v2"
