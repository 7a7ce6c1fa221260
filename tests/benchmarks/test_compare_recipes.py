"""benchmarks/compare_recipes.py on tiny recipes: one split, a finished run reused, the table's numbers checked."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest
from scipy import stats
from script_loader import load_script

REPO = Path(__file__).resolve().parents[2]
TINY = ["model.width=4", "data.image_size=32", "model.dilations=[1,2]", "train.threads=1", "train.n_folds=5",
        "train.epochs=1"]


def load_benchmark() -> ModuleType:
    """benchmarks/ is not a package: load the script from its path."""
    return load_script("benchmarks/compare_recipes.py")


@pytest.mark.slow
def test_recipes_share_a_split_and_are_tested_against_the_first(
        sample_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    benchmark = load_benchmark()
    cache = f"data.cache_dir={tmp_path / 'cache'}"
    cpu = str(REPO / "configs" / "cpu.yaml")
    recipes = {"base": tmp_path / "base", "wider": tmp_path / "wider"}
    argv = ["--data", str(sample_data), "--out", str(tmp_path / "out"), "--folds", "0", "--threads", "1",
            "--recipe", "base", str(recipes["base"]), cpu, *TINY, cache,
            "--recipe", "wider", str(recipes["wider"]), cpu, *TINY, cache, "model.width=6"]
    assert benchmark.main(argv) == 0
    result = json.loads((tmp_path / "out" / "recipes.json").read_text())
    assert (recipes["base"] / "splits.json").read_bytes() == (recipes["wider"] / "splits.json").read_bytes()
    rows = {name: pd.read_csv(run / "fold_0" / "val_metrics.csv") for name, run in recipes.items()}
    for name, row in result["recipes"].items():
        assert row["DC_mean"] == pytest.approx(rows[name]["DC"].mean()) and row["epochs"] == [1]
        assert row["train_seconds_per_image"] > 0 and row["onnx_seconds_per_image"] > 0
    assert result["recipes"]["wider"]["parameters"] > result["recipes"]["base"]["parameters"]
    paired = rows["wider"].merge(rows["base"], on="id", suffixes=("_wider", "_base"))
    test = result["recipes"]["wider"]["wilcoxon_DC"]
    assert test["n"] == len(paired) == 8  # fold 0 of the 40 sample pairs
    if (paired["DC_wider"] != paired["DC_base"]).any():
        assert test["p_value"] == pytest.approx(stats.wilcoxon(paired["DC_wider"], paired["DC_base"]).pvalue)
    printed = capsys.readouterr().out
    assert "| base |" in printed and "| wider |" in printed and "baseline" in printed

    # A second run trains nothing: the finished folds are reused and the scores stay.
    stamp = (recipes["base"] / "fold_0" / "log.csv").stat().st_mtime_ns
    assert benchmark.main(argv) == 0
    assert (recipes["base"] / "fold_0" / "log.csv").stat().st_mtime_ns == stamp


def test_size_costs_grow_with_the_input(tmp_path: Path) -> None:
    benchmark = load_benchmark()
    out = tmp_path / "sizes"
    argv = ["--data", "unused", "--out", str(out), "--threads", "1", "--sizes", "32,64",
            "--recipe", "tiny", str(tmp_path / "run"), str(REPO / "configs" / "cpu.yaml"), *TINY]
    assert benchmark.main(argv) == 0
    rows = json.loads((out / "sizes.json").read_text())["sizes"]
    assert [r["size"] for r in rows] == [32, 64]
    assert rows[1]["flops"] == pytest.approx(4 * rows[0]["flops"], rel=0.01)  # convolutions scale with pixels
    assert not (tmp_path / "run").exists()  # nothing trained


def test_counts_give_each_recipes_parameters_and_flops(tmp_path: Path) -> None:
    benchmark = load_benchmark()
    out = tmp_path / "counts"
    recipe = str(REPO / "configs" / "pretrained.yaml")
    small = ["data.image_size=64", "model.width=4"]
    argv = ["--data", "unused", "--out", str(out), "--counts",
            "--recipe", "lite0", str(tmp_path / "run"), recipe, *small,
            "--recipe", "lite2", str(tmp_path / "run"), recipe, *small, "model.encoder=efficientnet_lite2"]
    assert benchmark.main(argv) == 0
    rows = json.loads((out / "counts.json").read_text())["counts"]
    assert [(r["recipe"], r["encoder"], r["image_size"]) for r in rows] == [
        ("lite0", "efficientnet_lite0", 64), ("lite2", "efficientnet_lite2", 64)]
    assert rows[1]["parameters"] > rows[0]["parameters"] and rows[1]["flops"] > rows[0]["flops"]
    assert "| lite2 | efficientnet_lite2 | 4 | 64 |" in (out / "counts.md").read_text()
    assert not (tmp_path / "run").exists()  # nothing trained
