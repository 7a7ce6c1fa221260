"""benchmarks/confidence_oof.py on a tiny real cross-validation run of the sample pairs, numbers re-derived."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
from script_loader import load_script
from sklearn.metrics import roc_auc_score

from skinnet.config import load_config
from skinnet.data.io import read_image, read_mask
from skinnet.inference.segmenter import Segmenter
from skinnet.networks.files import load_model


def load_benchmark() -> ModuleType:
    """benchmarks/ is not a package: load the script from its path."""
    return load_script("benchmarks/confidence_oof.py")


@pytest.fixture(scope="module")
def tiny_cv_run(tmp_path_factory: pytest.TempPathFactory, sample_data: Path) -> Path:
    """Two folds of a tiny SkinNet (width 4, 64 px, 2 epochs) on the 40 sample pairs, as skinnet cv leaves them.

    Two epochs leave probabilities below 0.5 everywhere (every mask empty, every score 0); each fold model's
    threshold is therefore set to the 80th percentile of its probabilities on its own validation images, so
    that the masks are partial and the scores and Dice coefficients spread out.
    """
    from skinnet.networks.files import save_weights
    from skinnet.training.cv import run_cv

    run = tmp_path_factory.mktemp("tiny_cv")
    config = load_config(None, ["model.width=4", "data.image_size=64", "train.epochs=2", "train.lr=0.003",
                                "train.n_folds=2", "model.dilations=[1,2,4]", f"data.cache_dir={run / 'cache'}"])
    run_cv(config, sample_data, run)
    for fold, ids in enumerate(json.loads((run / "splits.json").read_text())["folds"]):
        path = run / f"fold_{fold}" / "best.safetensors"
        model, fold_config = load_model(path)
        segmenter = Segmenter(model, fold_config)
        probabilities = np.concatenate([segmenter.predict_proba(read_image(sample_data / "images" / f"{key}.jpg"))
                                        .ravel() for key in ids])
        fold_config.inference.threshold = float(np.quantile(probabilities, 0.8))
        save_weights(path, model, fold_config)
    return run


@pytest.mark.slow
def test_scores_every_out_of_fold_image_and_reports_checked_numbers(tiny_cv_run: Path, sample_data: Path,
                                                                    tmp_path: Path) -> None:
    out = tmp_path / "confidence"
    model_out = tmp_path / "chosen.safetensors"
    fold0 = tiny_cv_run / "fold_0" / "best.safetensors"
    assert load_benchmark().main(["--run", str(tiny_cv_run), "--data", str(sample_data), "--out", str(out),
                                  "--device", "cpu", "--max-false-alarm", "0.25", "--model", str(fold0),
                                  "--write-model", str(model_out)]) == 0
    with open(out / "confidence_oof.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    result = json.loads((out / "confidence_oof.json").read_text())

    # Every image once, scored by the fold model that did not train on it.
    split = json.loads((tiny_cv_run / "splits.json").read_text())["folds"]
    assert sorted(row["id"] for row in table) == sorted(key for fold in split for key in fold)
    assert all(row["id"] in split[int(row["fold"])] for row in table)
    assert result["n"] == 40 and [m["file"] for m in result["models"]] == [
        str(tiny_cv_run / f"fold_{k}" / "best.safetensors") for k in (0, 1)]

    # DC re-derived for a few images from the fold model's own mask, with plain numpy.
    for row in table[:: 10]:
        segmenter = Segmenter.from_file(tiny_cv_run / f"fold_{row['fold']}" / "best.safetensors", device="cpu")
        mask = segmenter.predict(read_image(sample_data / "images" / f"{row['id']}.jpg"))
        truth = read_mask(sample_data / "masks" / f"{row['id']}_segmentation.png")
        total = mask.sum() + truth.sum()
        expected = 1.0 if total == 0 else 2 * (mask & truth).sum() / total
        assert float(row["DC"]) == pytest.approx(expected, abs=1e-9)

    # The summary, re-derived from the per-image table with pandas and scikit-learn.
    frame = pd.DataFrame(table).astype({"DC": float, "tta": float, "margin": float})
    poor = frame["DC"] < 0.7
    assert result["n_poor"] == int(poor.sum())
    assert 0 < poor.sum() < len(frame), "the fixture should give good and poor outlines"
    assert frame["tta"].nunique() > 5 and frame["margin"].nunique() > 5
    for method in ("tta", "margin"):
        stats = result["methods"][method]
        if frame[method].nunique() > 1:
            assert stats["spearman"] == pytest.approx(frame[method].corr(frame["DC"], method="spearman"))
        if poor.any() and (~poor).any():
            assert stats["auroc"] == pytest.approx(roc_auc_score(~poor, frame[method]))
        flagged = frame[method] < stats["threshold"]
        assert stats["flagged"] == pytest.approx(flagged.mean())
        if poor.any():
            assert stats["caught"] == pytest.approx(flagged[poor].mean())
        if (~poor).any():
            assert stats["false_alarm"] == pytest.approx(flagged[~poor].mean()) and stats["false_alarm"] <= 0.25
    markdown = (out / "confidence_oof.md").read_text()
    for method, stats in result["methods"].items():
        assert f"| {method}" in markdown and f"{stats['threshold']:.4f}" in markdown

    # The copy of the model carries the recommended choice.
    _, config = load_model(model_out)
    assert config.inference.confidence == result["recommended"]["method"]
    assert config.inference.confidence_threshold == pytest.approx(result["recommended"]["threshold"])
    assert np.isfinite(result["recommended"]["threshold"])
