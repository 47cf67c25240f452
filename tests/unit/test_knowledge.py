"""envcheck scan: the knowledge file, reading requirement files, and what is flagged on which tier."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from envcheck import knowledge, locks, tiers
from envcheck.errors import TtsrigError

ROOT = Path(__file__).resolve().parents[2]
REQ = ROOT / "requirements"


def scan_text(tmp_path: Path, text: str, tier: str) -> list[knowledge.Finding]:
    path = tmp_path / "requirements.txt"
    path.write_text(text)
    return knowledge.scan(knowledge.read_requirements(path), tier)


def ids(findings) -> list[tuple[str, bool]]:
    return [(f.entry.id, f.certain) for f in findings]


def test_every_entry_is_complete_and_cites_its_evidence():
    raw = json.loads(knowledge.DATA_FILE.read_text())["entries"]
    assert len({e["id"] for e in raw}) == len(raw)
    for entry in knowledge.load():
        assert set(entry.tiers) <= set(tiers.TIER_NAMES) and entry.tiers
        assert entry.outcome in knowledge.OUTCOMES
        assert entry.needs in (None, *tiers.TIER_NAMES)
        assert entry.sources and all(s["kind"] in ("measured", "issue", "report") and s["ref"] for s in entry.sources)
        if entry.outcome == "crash":
            assert entry.signal in ("SIGILL", "SIGFPE") and entry.needs


def test_the_issue_list_is_covered():
    packages = {e.package for e in knowledge.load()}
    assert {"numpy", "pyarrow", "pandas", "bitsandbytes", "torch", "torchaudio"} <= packages


def test_a_v3_lock_on_pre_v2_flags_numpy_2_4():
    v3 = locks.lock_path("v3", "3.11")
    findings = knowledge.scan(knowledge.read_requirements(v3), "pre-v2")
    assert ids(findings) == [("numpy-2.4-baseline", True)]
    assert findings[0].line.source.startswith("v3.txt:")
    line = int(findings[0].line.source.split(":")[1])
    assert v3.read_text().splitlines()[line - 1].startswith("numpy==")


@pytest.mark.parametrize("python", locks.SUPPORTED_PYTHONS, ids=locks.python_name)
@pytest.mark.parametrize("tier", tiers.TIER_NAMES)
def test_each_tier_lock_has_nothing_that_fails_on_its_tier(tier, python):
    findings = knowledge.scan(knowledge.read_requirements(locks.lock_path(tier, python)), tier, python)
    assert all(f.entry.outcome == "patched" for f in findings), ids(findings)


def test_exact_pins_only_inside_the_bad_range(tmp_path):
    text = "numpy==2.3.5\nnumpy==2.4.0\ntorch==2.7.0+cu126\ntorch==2.8.0\ntorchaudio==2.8.0\ntorchaudio==2.9.1\n"
    assert ids(scan_text(tmp_path, text, "pre-v2")) == [
        ("numpy-2.4-baseline", True), ("torch-2.7-onednn-sigfpe", True), ("torchaudio-2.9-torchcodec", True)]
    assert ids(scan_text(tmp_path, text, "v2")) == [("torchaudio-2.9-torchcodec", True)]


def test_ranges_and_bare_names_are_flagged_as_possible(tmp_path):
    text = "numpy>=1.26\nnumpy<2\nbitsandbytes\npandas>=2,<3\ntorchaudio~=2.8.0\n"
    assert ids(scan_text(tmp_path, text, "pre-v2")) == [("numpy-2.4-baseline", False), ("bitsandbytes-avx2", False)]
    assert ids(scan_text(tmp_path, text, "v3")) == []


def test_lock_syntax_includes_and_markers(tmp_path):
    (tmp_path / "base.txt").write_text("pyarrow==26.0.1 \\\n    --hash=sha256:" + "a" * 64 + "\n")
    text = ("-r base.txt\n-c constraints.txt\n--index-url https://example.invalid/simple\n"
            "# a comment\npandas==3.1.1 ; sys_platform == 'win32'\nbitsandbytes[extra]==0.45.0  # gpu\n")
    found = scan_text(tmp_path, text, "v2")
    assert ids(found) == [("bitsandbytes-avx2", True)] and found[0].line.source == "requirements.txt:6"
    assert [f.line.source for f in scan_text(tmp_path, text, "pre-v2")] == ["base.txt:1", "requirements.txt:6"]


def test_bad_input_names_the_line(tmp_path):
    with pytest.raises(TtsrigError, match=r"requirements.txt:2: 'numpy=>2' is not a requirement"):
        scan_text(tmp_path, "torch==2.7.0\nnumpy=>2\n", "v3")
    with pytest.raises(TtsrigError, match="does not exist"):
        knowledge.read_requirements(tmp_path / "missing.txt")


def run_scan(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "envcheck", "scan", *args], capture_output=True, text=True,
                          cwd=ROOT)


def test_scan_command_exit_status_text_and_json():
    bad = run_scan("requirements/py3.11/v3.txt", "--tier", "pre-v2")
    assert bad.returncode == 1
    assert "numpy==2.4.6" in bad.stdout and "needs tier v2" in bad.stdout and "evidence: measured" in bad.stdout
    patched_only = run_scan("requirements/py3.11/pre-v2.txt", "--tier", "pre-v2", "--json")
    assert patched_only.returncode == 0
    data = json.loads(patched_only.stdout)
    assert data["ok"] is True and [f["id"] for f in data["findings"]] == ["torch-2.7-onednn-sigfpe"]
    missing = run_scan("no-such-file.txt", "--tier", "v3")
    assert missing.returncode == 2 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr


def test_the_asr_backends_wheels_are_flagged_below_v2(tmp_path):
    """faster-whisper (the audition screen's ASR) is not in the locks; a user's requirements naming it or
    CTranslate2 are flagged on pre-v2, where CTranslate2 dies loading a model, and pass from v2 on."""
    text = "faster-whisper==1.2.1\nctranslate2==4.8.5\nctranslate2==3.24.0\nonnxruntime==1.32.0\nav==18.1.0\n"
    assert ids(scan_text(tmp_path, text, "pre-v2")) == [("faster-whisper-pre-v2", True), ("ctranslate2-pre-v2", True)]
    assert ids(scan_text(tmp_path, text, "v2")) == ids(scan_text(tmp_path, text, "v3")) == []
    assert ids(scan_text(tmp_path, "faster-whisper\n", "pre-v2")) == [("faster-whisper-pre-v2", False)]
    [entry] = [e for e in knowledge.load() if e.id == "ctranslate2-pre-v2"]
    assert entry.needs == "v2" and "asr-phenom-numpy1.txt" in entry.evidence()
    for name in ("asr-phenom-numpy1.txt", "asr-core2duo-numpy1.txt", "asr-Nehalem.txt", "asr-SandyBridge.txt",
                 "asr-Haswell.txt", "asr-phenom.txt", "asr-phenom-ctranslate2-4.0.0.txt"):
        assert (REQ / "evidence" / name).is_file(), name  # the records the entry cites
