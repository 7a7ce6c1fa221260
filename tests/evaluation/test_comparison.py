"""Paired comparisons of per-image scores: scipy's Wilcoxon is the oracle, and the table counts what it says."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from skinnet.evaluation.comparison import paired_table, paired_wilcoxon


def test_paired_wilcoxon_is_scipys_over_the_shared_ids() -> None:
    rng = np.random.default_rng(1)
    first = {f"id{k}": float(v) for k, v in enumerate(rng.uniform(0.5, 1.0, 30))}
    second = {key: value - float(rng.normal(0.02, 0.03)) for key, value in first.items()} | {"extra": 0.0}
    result = paired_wilcoxon(first, second)
    diff = np.array([first[key] - second[key] for key in sorted(first)])
    assert result["n"] == 30
    assert result["median_difference"] == pytest.approx(np.median(diff))
    assert result["p_value"] == pytest.approx(stats.wilcoxon(diff).pvalue)
    same = paired_wilcoxon(first, first)
    assert same["median_difference"] == 0 and math.isnan(same["p_value"])


def test_paired_table_rows_say_means_median_p_and_counts() -> None:
    first = {"a": {"DC": 0.9, "JI": 0.8}, "b": {"DC": 0.7, "JI": 0.6}, "c": {"DC": 0.5, "JI": 0.4},
             "only_first": {"DC": 0.0, "JI": 0.0}}
    second = {"a": {"DC": 0.8, "JI": 0.8}, "b": {"DC": 0.75, "JI": 0.5}, "c": {"DC": 0.4, "JI": 0.3}}
    lines = paired_table(first, second, ("new", "old")).splitlines()
    assert lines[0] == "| metric | new | old | median new − old | Wilcoxon p | new better / worse |"
    p_dc = stats.wilcoxon([0.1, -0.05, 0.1]).pvalue
    assert lines[2] == f"| DC | 0.7000 | 0.6500 | +0.1000 | {p_dc:.3g} | 2 / 1 |"
    assert lines[3].startswith("| JI | 0.6000 | 0.5333 | +0.1000 |") and lines[3].endswith("| 2 / 0 |")
