"""The zoo's scenarios are well-formed and split into a tune half and a held-out half (benchmarks/detection.py)."""

import importlib.util
import sys
from pathlib import Path

import pytest

from lightning_sanity.findings import CHECKS

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("detection", ROOT / "benchmarks" / "detection.py")
detection = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("detection", detection)  # dataclasses look their module up there
_spec.loader.exec_module(detection)

# The contract's 23 names: the 19 of the first release and the 4 leakage checks.
KNOWN = set(CHECKS) | {"causal-leakage", "target-leakage", "split-overlap", "val-divergence"}


def test_every_scenario_names_known_checks_and_a_valid_split():
    scenarios = detection.scenarios()
    assert scenarios, "benchmarks/zoo/ is empty"
    for name, path in scenarios.items():
        expect = detection.read_expect(path)
        assert name.startswith("healthy_") == (expect is None), f"{name}: healthy_ files have EXPECT = None"
        assert expect is None or (expect and expect <= KNOWN), f"{name}: unknown check in EXPECT {sorted(expect)}"
        assert detection.read_split(path) in detection.SPLITS


def test_heldout_half_is_at_least_half_healthy():
    heldout = [p for p in detection.scenarios().values() if detection.read_split(p) == "heldout"]
    assert heldout, "no scenario has SPLIT = 'heldout'"
    healthy = sum(detection.read_expect(p) is None for p in heldout)
    assert 2 * healthy >= len(heldout), f"{healthy} healthy of {len(heldout)} held-out scenarios"


def test_split_defaults_to_tune_and_rejects_unknown_values(tmp_path):
    plain = tmp_path / "healthy_plain.py"
    plain.write_text("EXPECT = None\n")
    assert detection.read_split(plain) == "tune"
    odd = tmp_path / "healthy_odd.py"
    odd.write_text('EXPECT = None\nSPLIT = "test"\n')
    with pytest.raises(ValueError, match="SPLIT must be one of"):
        detection.read_split(odd)
