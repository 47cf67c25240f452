"""The tier table is data; these tests hold its shape and meaning."""
import json

from envcheck import locks, tiers


def test_schema():
    raw = json.loads(tiers.DATA_FILE.read_text())
    assert raw["schema"] == 1
    level_names = [lv["name"] for lv in raw["levels"]]
    assert level_names == ["x86-64", "x86-64-v2", "x86-64-v3", "x86-64-v4"]
    assert [t["name"] for t in raw["tiers"]] == list(tiers.TIER_NAMES)
    for tier in raw["tiers"]:
        # No lock field: envcheck.locks.lock_path is the one place that knows where a tier's lock is.
        assert set(tier) == {"name", "level", "emulate", "cpus", "forbidden"}
        assert tier["level"] in level_names
        for python in locks.SUPPORTED_PYTHONS:
            assert locks.lock_path(tier["name"], python).is_file()
        assert all(isinstance(reason, str) and reason for reason in tier["forbidden"].values())


def test_levels_add_disjoint_features():
    seen = set()
    for level in tiers.load().levels:
        assert not seen & set(level.adds), level.name
        seen |= set(level.adds)


def test_a_v4_cpu_runs_the_v3_tier():
    table = tiers.load()
    assert table.tier_for_level(table.level("x86-64-v4")).name == "v3"
    assert table.tier_for_level(table.level("x86-64")).name == "pre-v2"


def test_kernel_spellings_are_normalised():
    table = tiers.load()
    v2 = table.level("x86-64-v2").features - {"sse3"} | {"pni"}
    assert table.highest_level(frozenset(v2)).name == "x86-64-v2"


def test_pre_v2_forbids_what_the_seed_uninstalled():
    forbidden = tiers.load().tier("pre-v2").forbidden
    assert {"datasets", "pyarrow", "pyarrow-hotfix", "pandas", "torchcodec", "bitsandbytes"} <= set(forbidden)
    assert "bitsandbytes" in tiers.load().tier("v2").forbidden
