"""The patch tool on a fake venv: apply, status, revert, and every refusal."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from patches import cli, dynamo, sitecustomize
from envcheck.digests import bytes_sha256

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
    target = site / dynamo.known()["path"]
    target.parent.mkdir(parents=True)
    target.write_bytes(ORIGINAL)
    (root / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (root / "ttsrig-state.json").write_text(json.dumps({"tier": "pre-v2", "complete": True}))
    monkeypatch.setitem(dynamo.known()["originals"], "2.7.0", bytes_sha256(ORIGINAL))
    return root


def target(venv: Path) -> Path:
    return venv / "lib/python3.11/site-packages" / dynamo.known()["path"]


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


def test_status_json_is_what_envcheck_reads(venv, capsys):
    assert run(venv, "status", "--json") == 1
    before = json.loads(capsys.readouterr().out)
    assert (before["venv"], before["tier"], before["ok"]) == (str(venv), "pre-v2", False)
    assert [(p["name"], p["state"], p["ok"]) for p in before["patches"]] == [
        ("dynamo", "missing", False), ("sitecustomize", "missing", False)]
    run(venv, "apply")
    capsys.readouterr()
    assert run(venv, "status", "--json") == 0
    after = json.loads(capsys.readouterr().out)
    assert after["ok"] and all(p["state"] == "applied" and p["ok"] for p in after["patches"])
    assert "torch 2.7.0" in after["patches"][0]["detail"]


def test_status_json_reports_an_unreadable_record_per_patch(venv, capsys):
    (venv / "ttsrig-patches.json").write_text("{not json")
    assert run(venv, "status", "--json") == 1
    patches = {p["name"]: p for p in json.loads(capsys.readouterr().out)["patches"]}
    assert patches["dynamo"]["state"] == "unknown" and "is corrupt" in patches["dynamo"]["detail"]
    assert patches["sitecustomize"]["state"] == "missing"


def test_not_a_venv(tmp_path, capsys):
    assert cli.main(["status", "--venv", str(tmp_path)]) == 2
    assert "is not a Python venv (no pyvenv.cfg" in capsys.readouterr().err


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
              "torch/backends/mkldnn.py": "enabled = True\n",
              # the CPU the fake torch reports: FAKE_AVX2=1 has AVX2 (torch's cpuinfo reads CPUID)
              "torch/cpu/__init__.py": "import os\n\ndef _is_avx2_supported():\n"
                                       "    return os.environ.get('FAKE_AVX2') == '1'\n",
              "torch/backends/nnpack.py": "enabled = True\n\ndef set_flags(_enabled):\n"
                                          "    global enabled\n    enabled = _enabled\n"}
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


# --- NNPACK: off on a CPU without AVX2, decided from the CPU, not the tier ----------------------------

SHOW_NNPACK = "import site, sys; site.addsitedir(sys.argv[1]); import torch.backends.nnpack as n; print(n.enabled)"


def nnpack_enabled(site, **env) -> str:
    out = subprocess.run([sys.executable, "-S", "-c", SHOW_NNPACK, str(site)], capture_output=True, text=True,
                         env={**os.environ, **env}, cwd=site)
    assert out.returncode == 0 and not out.stderr, out.stderr
    return out.stdout.strip()


@pytest.mark.parametrize("tier", ["pre-v2", "v2", "v3"])
def test_hook_turns_nnpack_off_on_a_cpu_without_avx2_whatever_the_tier(tmp_path, tier):
    site = hook_site(tmp_path, tier)
    assert nnpack_enabled(site, FAKE_AVX2="0") == "False"
    assert nnpack_enabled(site, FAKE_AVX2="1") == "True"  # e.g. a v2 venv on an AVX2 machine keeps NNPACK


def test_nnpack_switches(tmp_path):
    site = hook_site(tmp_path, "pre-v2")
    assert nnpack_enabled(site, FAKE_AVX2="0") == "False"
    assert nnpack_enabled(site, FAKE_AVX2="0", TTSRIG_NNPACK_FIX="0") == "True"
    assert nnpack_enabled(site, FAKE_AVX2="0", TTSRIG_SITE="0") == "True"
    assert show(site, FAKE_AVX2="0", TTSRIG_NNPACK_FIX="0")[3] == "False"  # oneDNN's fix stays on


def test_without_torchs_cpuinfo_the_cpu_capability_decides(tmp_path):
    older = {"torch/cpu/__init__.py": "",
             "torch/backends/cpu.py": "import os\n\ndef get_cpu_capability():\n"
                                      "    return os.environ.get('FAKE_CAPABILITY', 'NO AVX')\n"}
    site = hook_site(tmp_path, "v2", older)
    assert nnpack_enabled(site) == "False"
    assert nnpack_enabled(site, FAKE_CAPABILITY="AVX2") == "True"


def test_a_failing_avx2_check_leaves_torch_importable(tmp_path):
    site = hook_site(tmp_path, "v2", {"torch/cpu/__init__.py": "def _is_avx2_supported():\n    raise OSError('no')\n"})
    out = subprocess.run([sys.executable, "-S", "-c", SHOW_NNPACK, str(site)], capture_output=True, text=True,
                         cwd=site)
    assert out.returncode == 0 and out.stdout.strip() == "True"
    assert "NNPACK left on (could not check for AVX2: no)" in out.stderr


@pytest.mark.parametrize("avx2, expected", [(False, "NNPACK off: this CPU lacks AVX2"),
                                            (True, "NNPACK left on: this CPU has AVX2"),
                                            (None, "NNPACK off on a CPU without AVX2")])
def test_status_says_what_the_hook_does_about_nnpack(venv, monkeypatch, capsys, avx2, expected):
    run(venv, "apply", "--only", "sitecustomize")
    capsys.readouterr()
    monkeypatch.setattr(sitecustomize, "cpu_has_avx2", lambda: avx2)
    assert run(venv, "status", "--only", "sitecustomize") == 0
    assert expected in capsys.readouterr().out
    monkeypatch.setenv("TTSRIG_NNPACK_FIX", "0")
    assert run(venv, "status", "--only", "sitecustomize") == 0
    assert "NNPACK left on: TTSRIG_NNPACK_FIX=0 in this environment" in capsys.readouterr().out


def test_cpu_has_avx2_reads_cpuid_then_proc_cpuinfo(monkeypatch):
    from envcheck import probe

    monkeypatch.setattr(probe, "read_cpuid", lambda: ("GenuineIntel", "Nehalem", frozenset({"sse4_2"})))
    monkeypatch.setattr(probe, "read_proc_cpuinfo", lambda: "vendor_id : GenuineIntel\nflags : sse4_2 avx2\n")
    assert sitecustomize.cpu_has_avx2() is False  # CPUID wins: under qemu it is the emulated CPU

    def no_archspec():
        raise ImportError("archspec")

    monkeypatch.setattr(probe, "read_cpuid", no_archspec)
    assert sitecustomize.cpu_has_avx2() is True

    def unreadable():
        raise OSError("no /proc")

    monkeypatch.setattr(probe, "read_proc_cpuinfo", unreadable)
    assert sitecustomize.cpu_has_avx2() is None


# -- the record: one writer at a time, consistent when stopped, never a pointer elsewhere ------------------

def _in_child(venv: Path, args: list[str], crash_at: str | None = None) -> int:
    """`python -m patches ARGS --venv VENV` in a forked child (it keeps this test's known torch hash)."""
    import multiprocessing

    def child() -> None:
        if crash_at:
            os.environ["TTSRIG_CRASH_AT"] = crash_at
        with open(os.devnull, "w") as quiet:
            sys.stdout = quiet
            os._exit(cli.main([*args, "--venv", str(venv)]))

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(60)
    return process.exitcode


def test_two_patch_commands_at_once_never_lose_the_dynamo_record(venv, capsys):
    for _ in range(25):
        import multiprocessing

        context = multiprocessing.get_context("fork")
        jobs = [context.Process(target=_in_child, args=(venv, ["apply", "--only", "dynamo"])),
                context.Process(target=_in_child, args=(venv, ["revert", "--only", "sitecustomize"]))]
        for job in jobs:
            job.start()
        for job in jobs:
            job.join(60)
        record = json.loads((venv / "ttsrig-patches.json").read_text())
        assert "dynamo" in record, "a concurrent revert wrote back a record without the dynamo entry"
        assert run(venv, "status", "--only", "dynamo") == 0
        assert run(venv, "revert", "--only", "dynamo") == 0 and target(venv).read_bytes() == ORIGINAL
    capsys.readouterr()


def test_apply_killed_between_record_and_file_is_finished_by_the_next_apply(venv, capsys):
    assert _in_child(venv, ["apply", "--only", "dynamo"], crash_at="patches:between-record-and-file") == -9
    assert target(venv).read_bytes() == ORIGINAL  # killed before the file: the record says what it meant to do
    assert run(venv, "status", "--only", "dynamo") == 1
    assert "stale" in capsys.readouterr().out
    assert run(venv, "apply", "--only", "dynamo") == 0 and dynamo.MARK.encode() in target(venv).read_bytes()
    assert run(venv, "revert", "--only", "dynamo") == 0 and target(venv).read_bytes() == ORIGINAL


@pytest.mark.parametrize("field, value", [("file", "../../../outside.py"), ("backup", "../outside.orig")])
def test_revert_never_writes_where_an_edited_record_points(venv, tmp_path, capsys, field, value):
    assert run(venv, "apply", "--only", "dynamo") == 0
    victim = tmp_path / "outside.py"
    victim.write_text("precious")
    record = json.loads((venv / "ttsrig-patches.json").read_text())
    record["dynamo"][field] = value
    (venv / "ttsrig-patches.json").write_text(json.dumps(record))
    assert run(venv, "revert", "--only", "dynamo") == 2
    assert "names other files than the patch writes" in capsys.readouterr().err
    assert victim.read_text() == "precious" and dynamo.MARK.encode() in target(venv).read_bytes()


def test_status_names_the_layers_bootstrap_added_and_patches_none_of_them(venv, capsys):
    record = {"tier": "v3", "complete": True, "layers": {"asr": {"lock": "requirements/py3.11/v3-asr.txt"}}}
    (venv / "ttsrig-state.json").write_text(json.dumps(record))
    run(venv, "status", "--only", "dynamo")
    assert "asr layer      unpatched   requirements/py3.11/v3-asr.txt: nothing of it needs a patch" in \
        capsys.readouterr().out
    run(venv, "status", "--only", "dynamo", "--json")
    assert json.loads(capsys.readouterr().out)["layers"] == record["layers"]


# --- the hook's config as something other than the file apply wrote ------------------------------------

def _config_as(site: Path, kind: str) -> Path:
    config = site / sitecustomize.CONFIG
    config.unlink(missing_ok=True)
    if kind == "fifo":
        os.mkfifo(config)
    elif kind == "link to /dev/zero":
        config.symlink_to("/dev/zero")
    elif kind == "huge":
        config.write_bytes(b'{"disable_onednn": true, "pad": "' + b" " * (2 << 20) + b'"}')
    elif kind == "deep":
        config.write_bytes(b"[" * 60_000 + b"]" * 60_000)
    elif kind == "a list":
        config.write_text('["disable_onednn"]')
    return config


@pytest.mark.parametrize("kind", ["fifo", "link to /dev/zero"])
def test_status_of_a_hook_config_that_is_no_regular_file_is_one_line(venv, capsys, kind):
    run(venv, "apply", "--only", "sitecustomize")
    config = _config_as(venv / "lib/python3.11/site-packages", kind)
    for action in ("status", "apply"):  # read, never waited on or read without end
        assert run(venv, action, "--only", "sitecustomize") == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(config) in err
        assert ("named pipe" in err and "python -m patches apply" in err) if kind == "fifo" else "symbolic link" in err
    assert cli.main(["status", "--json", "--only", "sitecustomize", "--venv", str(venv)]) == 1
    assert json.loads(capsys.readouterr().out)["patches"][0]["state"] == "unknown"
    assert run(venv, "revert", "--only", "sitecustomize") == 0  # removes it (the link itself, not /dev/zero)
    assert not os.path.lexists(config)


@pytest.mark.parametrize("kind", ["fifo", "link to /dev/zero", "huge", "deep", "a list"])
def test_the_hook_falls_back_to_its_defaults_silently_when_its_config_is_not_the_one_written(tmp_path, kind):
    site = hook_site(tmp_path, "pre-v2")
    _config_as(site, kind)
    out = subprocess.run([sys.executable, "-S", "-c", SHOW, str(site)], capture_output=True, text=True, cwd=site,
                         timeout=60)
    assert out.returncode == 0 and out.stderr == ""
    assert out.stdout.split() == ["False", "True", "True", "True"]  # the stub (a default); oneDNN not turned off
