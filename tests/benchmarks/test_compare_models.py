"""benchmarks/compare_models.py on a tiny config and 2 folds: same split, and the table's numbers checked."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest
from scipy import stats
from script_loader import load_script

from skinnet.config import load_config

REPO = Path(__file__).resolve().parents[2]
TINY = ["model.width=4", "data.image_size=32", "model.dilations=[1,2]", "train.threads=1", "train.n_folds=2"]


def load_benchmark() -> ModuleType:
    """benchmarks/ is not a package: load the script from its path."""
    return load_script("benchmarks/compare_models.py")


@pytest.mark.slow
def test_compare_models_trains_both_on_one_split_and_reports_checked_numbers(
        sample_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    benchmark = load_benchmark()
    out = tmp_path / "compare"
    argv = ["--config", str(REPO / "configs" / "cpu.yaml"), "--data", str(sample_data), "--out", str(out),
            "--folds", "0,1", "--epochs", "2", *TINY, f"data.cache_dir={tmp_path / 'cache'}"]
    assert benchmark.main(argv) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "comparison.json").read_text())

    runs = {name: out / name for name in ("skinnet", "unet")}
    assert (runs["skinnet"] / "splits.json").read_bytes() == (runs["unet"] / "splits.json").read_bytes()
    configs = {name: json.loads((run / "config.json").read_text()) for name, run in runs.items()}
    assert configs["skinnet"]["model"].pop("name") == "skinnet" and configs["unet"]["model"].pop("name") == "unet"
    assert configs["skinnet"] == configs["unet"]  # equal terms: everything else is the same
    assert configs["unet"]["train"]["epochs"] == 2

    per_image = {}
    for name, run in runs.items():
        row = result["models"][name]
        folds = [pd.read_csv(run / f"fold_{k}" / "val_metrics.csv") for k in (0, 1)]
        assert sorted(folds[0]["id"]) == sorted(pd.read_csv(runs["skinnet"] / "fold_0" / "val_metrics.csv")["id"])
        means = pd.DataFrame([fold[["DC", "JI"]].mean() for fold in folds])
        for metric in ("DC", "JI"):
            assert row[f"{metric}_mean"] == pytest.approx(means[metric].mean())
            assert row[f"{metric}_sd"] == pytest.approx(means[metric].std())  # ddof=1
        logs = pd.concat([pd.read_csv(run / f"fold_{k}" / "log.csv") for k in (0, 1)])
        assert len(logs) == 4 and row["seconds_per_epoch_logged"] == pytest.approx(logs["seconds"].median())
        assert 0 < row["train_seconds_per_image"] < logs["seconds"].max()  # a step, not an epoch
        assert f"| {row['train_seconds_per_image']:.4f} |" in printed
        per_image[name] = pd.concat(folds)[["id", "DC"]]
        assert f"{row['DC_mean']:.4f} ± {row['DC_sd']:.4f}" in printed
    assert result["models"]["skinnet"]["parameters"] != result["models"]["unet"]["parameters"]

    # FLOPs are counted at the config's input size: convolutions scale with the pixel count.
    config = load_config(REPO / "configs" / "cpu.yaml", [*TINY, "model.name=unet"])
    assert result["models"]["unet"]["flops"] == benchmark.count_flops(config, 32)
    assert benchmark.count_flops(config, 64) == pytest.approx(4 * benchmark.count_flops(config, 32), rel=0.01)

    paired = per_image["skinnet"].merge(per_image["unet"], on="id", suffixes=("_skinnet", "_unet"))
    assert len(paired) == 40 == result["wilcoxon_dc"]["n"]
    expected = stats.wilcoxon(paired["DC_skinnet"], paired["DC_unet"])
    assert result["wilcoxon_dc"]["p_value"] == pytest.approx(expected.pvalue)
    assert result["wilcoxon_dc"]["statistic"] == pytest.approx(expected.statistic)
    assert "| SkinNet |" in printed and "| U-Net |" in printed and "Wilcoxon" in printed
    assert f"timed in this run on {result['timed_on']}" in printed and result["timed_on"].startswith("CPU")

