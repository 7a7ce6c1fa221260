"""Choosing TTA and post-processing on out-of-fold predictions, and writing the shippable model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skinnet.metrics import mean_metrics
from skinnet.networks.files import ModelFileError, load_model, save_weights
from skinnet.runs import read_metrics_csv
from skinnet.selection.finalize import finalize_model, oof_metrics_path


def test_finalize_records_the_choice_in_the_model(tiny_model: Path, sample_data: Path, tmp_path: Path) -> None:
    run_dir = tiny_model.parent.parent
    out = tmp_path / "shipped.safetensors"
    report = finalize_model(tiny_model, run_dir, sample_data, out)
    _, config = load_model(out)
    assert config.inference.tta == report["tta"] and config.inference.postprocess == report["postprocess"]
    assert report["n_out_of_fold"] == 8  # fold 0 of 5 over the 40 sample pairs
    # The choice follows the scores it reports.
    assert report["tta"] == (report["out_of_fold_with_tta"]["DC"] > report["out_of_fold_without_tta"]["DC"])
    pp = report["postprocessing_mean_dc"]
    assert all(pp[step] > pp["none"] for step in report["postprocess"][:1])
    # Without TTA or post-processing the out-of-fold scores are those train_fold wrote from its mask files.
    written = json.loads((tiny_model.parent / "val_summary.json").read_text())
    assert report["out_of_fold_without_tta"]["DC"] == pytest.approx(written["DC"], abs=1e-9)
    assert json.loads(out.with_suffix(".json").read_text())["size_bytes"] == out.stat().st_size
    assert out.stat().st_size < 0.6 * tiny_model.stat().st_size  # float16
    # The fallback is kept only where it raised out-of-fold Dice over the choice before it.
    before = report["out_of_fold_with_tta" if report["tta"] else "out_of_fold_without_tta"]["DC"]
    assert config.inference.empty_fallback == report["empty_fallback"]
    assert report["empty_fallback"] == (report["out_of_fold_with_empty_fallback"]["DC"] > before)
    # One row per out-of-fold image with every shipped choice applied; its mean is the reported figure.
    rows = read_metrics_csv(oof_metrics_path(out))
    assert len(rows) == 8 and len({row["id"] for row in rows}) == 8
    assert mean_metrics(rows)["DC"] == pytest.approx(report["out_of_fold_shipped"]["DC"], abs=1e-9)


def test_finalize_refuses_a_model_file_with_nan_weights(tiny_model: Path, sample_data: Path,
                                                        tmp_path: Path) -> None:
    model, config = load_model(tiny_model)
    next(model.parameters()).data.fill_(float("nan"))
    save_weights(tmp_path / "nan.safetensors", model, config)
    out = tmp_path / "out.safetensors"
    with pytest.raises(ModelFileError, match=r"nan\.safetensors: .* NaN or infinite values"):
        finalize_model(tmp_path / "nan.safetensors", tiny_model.parent.parent, sample_data, out)
    assert not out.exists()
