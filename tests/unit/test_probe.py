"""The probe, replayed on recorded /proc/cpuinfo texts of real CPUs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from envcheck import cli, probe
from envcheck.errors import TtsrigError

CPUINFO = Path(__file__).resolve().parent.parent / "cpuinfo"
RECORDED = sorted(CPUINFO.glob("*--*.txt"))
LDSO_V4 = """Subdirectories of glibc-hwcaps directories, in priority order:
  x86-64-v4 (supported, searched)
  x86-64-v3 (supported, searched)
  x86-64-v2 (supported, searched)
"""
LDSO_V2 = """Subdirectories of glibc-hwcaps directories, in priority order:
  x86-64-v4
  x86-64-v3
  x86-64-v2 (supported, searched)
"""
LDSO_NONE = "Subdirectories of glibc-hwcaps directories, in priority order:\n  x86-64-v4\n  x86-64-v3\n  x86-64-v2\n"


def no_cpuid():
    raise ImportError("archspec")


def replay(text: str, ldso: str | None = None, cpuid=no_cpuid):
    def no_ldso():
        raise OSError("not recorded")

    return probe.probe(cpuid=cpuid, cpuinfo=lambda: text, ldso=(lambda: ldso) if ldso else no_ldso,
                       machine="x86_64")


def expected_tier(path: Path) -> str:
    return path.stem.split("--")[1]


def test_every_tier_has_recorded_cpus():
    assert {expected_tier(p) for p in RECORDED} == {"pre-v2", "v2", "v3"}
    assert len(RECORDED) >= 6


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.stem)
def test_recorded_cpu_is_classified(path):
    result = replay(path.read_text())
    assert result.tier == expected_tier(path)
    assert result.sources["cpuinfo"]["tier"] == expected_tier(path)
    assert result.vendor_known


@pytest.mark.parametrize(
    "name, microarch, missing",
    [
        ("amd-phenom-ii-x6-1090t--pre-v2", "k10", ["ssse3", "sse4_1", "sse4_2"]),
        ("intel-core2-duo-e8400--pre-v2", "core2", ["popcnt", "sse4_2"]),
        ("intel-xeon-x5570-nehalem--v2", "nehalem", ["abm", "avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "movbe", "xsave"]),
        ("intel-core-i7-2600-sandybridge--v2", "sandybridge", ["abm", "avx2", "bmi1", "bmi2", "f16c", "fma", "movbe"]),
        ("intel-core-i7-4770-haswell--v3", "haswell", []),
        ("amd-ryzen-7-5800x-zen3--v3", "zen3", []),
    ],
)
def test_microarch_and_missing_features(name, microarch, missing):
    result = replay((CPUINFO / f"{name}.txt").read_text())
    assert result.microarch == microarch
    assert result.missing_for_next_tier == missing


def test_only_first_processor_block_is_read():
    # The second block of each recording lists only 'fpu'; reading it would give no tier.
    vendor, model, flags = probe.parse_cpuinfo((CPUINFO / "intel-core-i7-4770-haswell--v3.txt").read_text())
    assert "avx2" in flags and vendor == "GenuineIntel" and "4770" in model


def test_views_that_disagree_take_the_lowest_tier_and_say_so():
    result = replay((CPUINFO / "intel-core-i7-4770-haswell--v3.txt").read_text(), ldso=LDSO_V2)
    assert result.tier == "v2"
    assert result.disagreement
    assert result.decided_by == ["glibc"]
    assert any("disagree" in w and "glibc says v2" in w and "cpuinfo says v3" in w for w in result.warnings)
    # glibc gives no feature list; the missing features come from a view that has one.
    assert result.missing_for_next_tier == []


def test_emulated_cpuid_wins_over_host_cpuinfo():
    host = (CPUINFO / "amd-ryzen-7-5800x-zen3--v3.txt").read_text()
    _, _, phenom_flags = probe.parse_cpuinfo((CPUINFO / "amd-phenom-ii-x6-1090t--pre-v2.txt").read_text())
    result = replay(host, ldso=LDSO_V4, cpuid=lambda: ("AuthenticAMD", "AMD Phenom(tm) 9550", phenom_flags))
    assert result.tier == "pre-v2"
    assert result.microarch == "k10"
    assert result.model_name == "AMD Phenom(tm) 9550"
    assert result.sources["cpuid"]["tier"] == "pre-v2"
    assert result.sources["cpuinfo"]["tier"] == "v3"


def test_glibc_view_parses_supported_levels():
    assert probe.parse_ldso_help(LDSO_V4) == ["x86-64-v4", "x86-64-v3", "x86-64-v2"]
    assert probe.parse_ldso_help(LDSO_V2) == ["x86-64-v2"]
    assert probe.glibc_view(lambda: LDSO_NONE).tier == "pre-v2"


def test_unknown_vendor_is_classified_by_features_with_a_warning():
    text = (CPUINFO / "intel-xeon-x5570-nehalem--v2.txt").read_text().replace("GenuineIntel", "NewCpuVendor")
    result = replay(text)
    assert result.tier == "v2"
    assert not result.vendor_known
    assert any("unknown CPU vendor 'NewCpuVendor'" in w for w in result.warnings)


def test_flag_set_that_fits_no_tier_is_refused_with_the_missing_features():
    text = "vendor_id\t: GenuineIntel\nflags\t\t: fpu cx8 cmov mmx\n"
    with pytest.raises(TtsrigError, match=r"fits no ttsrig tier.*fxsr, sse, sse2"):
        replay(text)


def test_no_readable_source_is_a_clear_error():
    with pytest.raises(TtsrigError, match="Could not read the CPU from any source"):
        probe.probe(cpuid=no_cpuid, cpuinfo=lambda: "", ldso=lambda: (_ for _ in ()).throw(OSError("x")),
                    machine="x86_64")


def test_non_x86_machine_is_refused():
    with pytest.raises(TtsrigError, match="aarch64.*x86-64"):
        probe.probe(machine="aarch64")


def test_cli_exits_non_zero_on_other_architectures(monkeypatch, capsys):
    monkeypatch.setattr(probe.platform, "machine", lambda: "aarch64")
    assert cli.main(["probe"]) == 2
    assert "tiers (pre-v2, v2, v3) are x86-64" in capsys.readouterr().err


def test_cli_json_has_the_documented_keys(monkeypatch, capsys):
    text = (CPUINFO / "amd-phenom-ii-x6-1090t--pre-v2.txt").read_text()
    monkeypatch.setattr(probe, "read_proc_cpuinfo", lambda: text)
    monkeypatch.setattr(probe, "read_cpuid", no_cpuid)
    monkeypatch.setattr(probe, "run_ldso_help", lambda: LDSO_NONE)
    monkeypatch.setattr(probe.platform, "machine", lambda: "x86_64")
    assert cli.main(["probe", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tier"] == "pre-v2"
    assert data["microarch"] == "k10"
    assert data["missing_for_next_tier"] == ["ssse3", "sse4_1", "sse4_2"]
    assert set(data["sources"]) == {"cpuid", "cpuinfo", "glibc"}
    assert data["sources"]["cpuid"]["ok"] is False


def test_text_report_names_tier_microarch_and_missing():
    text = probe.render(replay((CPUINFO / "intel-core2-duo-e8400--pre-v2.txt").read_text()))
    assert "tier:       pre-v2" in text
    assert "microarch:  core2" in text
    assert "missing popcnt, sse4_2" in text
