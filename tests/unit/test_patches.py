"""The patch tool on a fake venv: apply, status, revert, and every refusal."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from patches import cli, dynamo, sitecustomize
from patches.target import sha256

ORIGINAL = (
    "import operator\n\nBUILTIN_TO_TENSOR_FN_MAP = {}\n\n\n"
    "def populate_builtin_to_tensor_fn_map():\n    global BUILTIN_TO_TENSOR_FN_MAP\n\n"
    "    BUILTIN_TO_TENSOR_FN_MAP[operator.add] = 'probe ran'\n\n\npopulate_builtin_to_tensor_fn_map()\n"
).encode()


@pytest.fixture
def venv(tmp_path, monkeypatch):
    root = tmp_path / "venv"
    site = root / "lib/python3.11/site-packages"
    (site / "torch-2.7.0.dist-info").mkdir(parents=True)
    (site / "torch-2.7.0.dist-info/METADATA").write_text("Name: torch\nVersion: 2.7.0\n\n")
    target = site / dynamo.KNOWN["path"]
    target.parent.mkdir(parents=True)
    target.write_bytes(ORIGINAL)
    (root / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (root / "ttsrig-state.json").write_text(json.dumps({"tier": "pre-v2", "complete": True}))
    monkeypatch.setitem(dynamo.KNOWN["originals"], "2.7.0", sha256(ORIGINAL))
    return root


def target(venv: Path) -> Path:
    return venv / "lib/python3.11/site-packages" / dynamo.KNOWN["path"]


def run(venv, *args):
    return cli.main([*args, "--venv", str(venv)])


def test_status_before_apply_says_missing(venv, capsys):
    assert run(venv, "status") == 1
    out = capsys.readouterr().out
    assert "dynamo         missing" in out and "sitecustomize  missing" in out


def test_apply_twice_gives_the_same_bytes_and_revert_restores_the_original(venv, capsys):
    assert run(venv, "apply") == 0
    once = target(venv).read_bytes()
    assert once != ORIGINAL and dynamo.MARK.encode() in once
    assert run(venv, "apply") == 0
    assert target(venv).read_bytes() == once
    assert run(venv, "status") == 0
    assert "dynamo         applied" in capsys.readouterr().out
    assert run(venv, "revert") == 0
    assert target(venv).read_bytes() == ORIGINAL
    site = venv / "lib/python3.11/site-packages"
    assert not (site / sitecustomize.PTH).exists() and not (site / sitecustomize.MODULE).exists()
    assert json.loads((venv / "ttsrig-patches.json").read_text()) == {}


def test_patched_function_is_a_no_op(venv):
    run(venv, "apply")
    namespace: dict = {}
    exec(compile(target(venv).read_bytes(), "torch_function.py", "exec"), namespace)
    assert namespace["BUILTIN_TO_TENSOR_FN_MAP"] == {}


def test_torch_reinstalled_over_the_patch_is_stale(venv, capsys):
    run(venv, "apply")
    target(venv).write_bytes(ORIGINAL)  # what a reinstall of torch does
    assert run(venv, "status", "--only", "dynamo") == 1
    assert "stale" in capsys.readouterr().out
    assert run(venv, "apply") == 0
    assert dynamo.MARK.encode() in target(venv).read_bytes()


def test_patched_file_edited_by_hand_is_stale_and_not_patched_again(venv, capsys):
    run(venv, "apply")
    edited = target(venv).read_bytes() + b"# mine\n"
    target(venv).write_bytes(edited)
    assert run(venv, "status", "--only", "dynamo") == 1
    assert "changed since it was patched" in capsys.readouterr().out
    assert run(venv, "apply", "--only", "dynamo") == 2
    assert "refusing to patch" in capsys.readouterr().err
    assert target(venv).read_bytes() == edited


def test_unknown_torch_file_is_refused_untouched(venv, capsys):
    target(venv).write_bytes(ORIGINAL + b"# a torch build we have not seen\n")
    assert run(venv, "apply", "--only", "dynamo") == 2
    err = capsys.readouterr().err
    assert "is not that of torch 2.7.0's original" in err and "known-files.json" in err
    assert target(venv).read_bytes().endswith(b"have not seen\n")
    assert not (venv / "ttsrig-patches.json").exists()


def test_not_needed_above_pre_v2(venv, capsys):
    assert run(venv, "apply", "--tier", "v3", "--only", "dynamo") == 0
    assert "not needed" in capsys.readouterr().out
    assert target(venv).read_bytes() == ORIGINAL


def test_venv_without_torch(venv, capsys):
    import shutil

    shutil.rmtree(venv / "lib/python3.11/site-packages/torch-2.7.0.dist-info")
    assert run(venv, "status", "--only", "dynamo") == 0
    assert "torch is not installed" in capsys.readouterr().out


def test_read_only_site_packages_fails_clearly_with_nothing_half_written(venv, capsys):
    if os.geteuid() == 0:
        pytest.skip("root writes through read-only permissions")
    folder = target(venv).parent
    folder.chmod(0o555)
    try:
        assert run(venv, "apply", "--only", "dynamo") == 2
        assert "permission denied" in capsys.readouterr().err
        assert target(venv).read_bytes() == ORIGINAL
        assert [p.name for p in folder.iterdir()] == [target(venv).name]
    finally:
        folder.chmod(0o755)


def test_read_only_target_file_fails_clearly(venv, capsys, monkeypatch):
    # Stands in for a read-only site-packages when the tests run as root.
    from envcheck import atomic

    def deny(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(atomic.os, "replace", deny)
    assert run(venv, "apply", "--only", "dynamo") == 2
    assert "permission denied" in capsys.readouterr().err
    assert target(venv).read_bytes() == ORIGINAL
    assert not list(target(venv).parent.glob(".*ttsrig-tmp"))


def test_corrupt_state_record(venv, capsys):
    (venv / "ttsrig-patches.json").write_text("{not json")
    assert run(venv, "status") == 2
    assert "is corrupt" in capsys.readouterr().err


def test_not_a_venv(tmp_path, capsys):
    assert cli.main(["status", "--venv", str(tmp_path)]) == 2
    assert "is not a Python 3.11 venv" in capsys.readouterr().err


def test_sitecustomize_edited_by_hand_is_stale_and_apply_restores_it(venv, capsys):
    run(venv, "apply", "--only", "sitecustomize")
    module = venv / "lib/python3.11/site-packages" / sitecustomize.MODULE
    module.write_text("# mine\n")
    assert run(venv, "status", "--only", "sitecustomize") == 1
    assert "stale" in capsys.readouterr().out
    run(venv, "apply", "--only", "sitecustomize")
    assert module.read_bytes() == sitecustomize.RUNTIME.read_bytes()


# --- the start-up hook itself, in a fresh interpreter ------------------------

FAKE_TORCH = {"torch/__init__.py": "from torch import backends\n",
              "torch/backends/__init__.py": "from torch.backends import mkldnn\n",
              "torch/backends/mkldnn.py": "enabled = True\n"}
SHOW = ("import site, sys; site.addsitedir(sys.argv[1]); print('torch' in sys.modules); "
        "import datasets; print(getattr(datasets, '__ttsrig_stub__', False)); "
        "import importlib.util; print(importlib.util.find_spec('datasets') is not None); "
        "import torch; print(torch.backends.mkldnn.enabled)")


def hook_site(tmp_path, tier, extra=None):
    site = tmp_path / "site"
    site.mkdir()
    for name, data in sitecustomize.wanted(tier).items():
        (site / name).write_bytes(data)
    for name, text in {**FAKE_TORCH, **(extra or {})}.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(text)
    return site


def show(site, **env):
    out = subprocess.run([sys.executable, "-S", "-c", SHOW, str(site)], capture_output=True, text=True,
                         env={**os.environ, **env}, cwd=site)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_hook_disables_onednn_on_pre_v2_when_torch_is_imported(tmp_path):
    assert show(hook_site(tmp_path, "pre-v2")) == ["False", "True", "True", "False"]


def test_hook_leaves_onednn_alone_on_v2(tmp_path):
    assert show(hook_site(tmp_path, "v2")) == ["False", "True", "True", "True"]


def test_hook_switches(tmp_path):
    site = hook_site(tmp_path, "pre-v2")
    assert show(site, TTSRIG_ONEDNN_FIX="0")[3] == "True"
    out = subprocess.run([sys.executable, "-S", "-c", SHOW, str(site)], capture_output=True, text=True,
                         env={**os.environ, "TTSRIG_DATASETS_STUB": "0"}, cwd=site)
    assert "No module named 'datasets'" in out.stderr
    out = subprocess.run([sys.executable, "-S", "-c", SHOW, str(site)], capture_output=True, text=True,
                         env={**os.environ, "TTSRIG_SITE": "0"}, cwd=site)
    assert "No module named 'datasets'" in out.stderr


def test_a_real_datasets_package_wins_over_the_stub(tmp_path):
    site = hook_site(tmp_path, "v3", {"datasets/__init__.py": "REAL = True\n"})
    assert show(site)[1] == "False"


def test_the_stub_says_why_when_used(tmp_path):
    site = hook_site(tmp_path, "pre-v2")
    code = f"import site; site.addsitedir({str(site)!r}); import datasets; datasets.load_from_disk('x')"
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd=site)
    assert "manifest.jsonl" in out.stderr
