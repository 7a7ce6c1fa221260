"""A test folder predicted by the fold ensemble (mean of the fold models' probabilities) and scored."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from skinnet.cli import main
from skinnet.config import load_config
from skinnet.data.io import read_image, read_mask
from skinnet.evaluation.holdout import evaluate_holdout
from skinnet.evaluation.report import write_report
from skinnet.inference.segmenter import Segmenter
from skinnet.metrics import image_metrics
from skinnet.networks import build_model
from skinnet.networks.files import save_weights

TEST_IDS = ["ISIC_0000025", "ISIC_0000321", "ISIC_0012268", "ISIC_0013217", "ISIC_0014045", "ISIC_0015109"]


@pytest.fixture(scope="module")
def test_dir(tmp_path_factory: pytest.TempPathFactory, sample_data: Path) -> Path:
    """Six sample pairs in the official ISIC 2017 test-set layout."""
    root = tmp_path_factory.mktemp("isic")
    images, masks = root / "ISIC-2017_Test_v2_Data", root / "ISIC-2017_Test_v2_Part1_GroundTruth"
    images.mkdir()
    masks.mkdir()
    for key in TEST_IDS:
        shutil.copy(sample_data / "images" / f"{key}.jpg", images)
        shutil.copy(sample_data / "masks" / f"{key}_segmentation.png", masks)
    return root


@pytest.fixture(scope="module")
def models(synthetic_run: Path) -> list[Path]:
    """Two differently initialised tiny networks as fold_0 and fold_1 of the run (plus 32 vs 64 px inputs)."""
    paths = []
    for fold, size in ((0, 32), (1, 64)):
        config = load_config(None, ["model.width=4", f"data.image_size={size}", "model.dilations=[1,2]"])
        torch.manual_seed(fold)
        paths.append(synthetic_run / f"fold_{fold}" / "best.safetensors")
        save_weights(paths[-1], build_model(config.model), config)
    return paths


def test_ensemble_masks_are_the_mean_probability_thresholded(synthetic_run: Path, models: list[Path],
                                                               test_dir: Path, tmp_path: Path) -> None:
    result = evaluate_holdout(synthetic_run, test_dir, out_dir=tmp_path / "test", device="cpu")
    assert result.n_models == 2 and result.summary["n"] == len(TEST_IDS)
    members = [Segmenter.from_file(path, device="cpu") for path in models]
    for key in TEST_IDS:
        image = read_image(test_dir / "ISIC-2017_Test_v2_Data" / f"{key}.jpg")
        first, second = (member.predict_proba(image) for member in members)
        assert (first > 0.5).mean() != pytest.approx((second > 0.5).mean(), abs=1e-3)  # the members differ
        expected = (first + second) / 2 > 0.5
        predicted = read_mask(result.pred_dir / f"{key}_segmentation.png")
        assert predicted.shape == image.shape[:2]
        assert (predicted == expected).all(), key
    table = pd.read_csv(tmp_path / "test" / "metrics.csv").set_index("id")
    for key in TEST_IDS:
        truth = read_mask(test_dir / "ISIC-2017_Test_v2_Part1_GroundTruth" / f"{key}_segmentation.png")
        scores = image_metrics(truth, read_mask(result.pred_dir / f"{key}_segmentation.png"))
        assert table.loc[key, "DC"] == pytest.approx(scores["DC"], abs=1e-9)
    # A second call with the same folder and models reuses the result instead of predicting again.
    stamp = (result.pred_dir / f"{TEST_IDS[0]}_segmentation.png").stat().st_mtime_ns
    again = evaluate_holdout(synthetic_run, test_dir, out_dir=tmp_path / "test", device="cpu")
    assert again.summary == pytest.approx(result.summary)
    assert (result.pred_dir / f"{TEST_IDS[0]}_segmentation.png").stat().st_mtime_ns == stamp


def test_report_and_evaluate_take_a_test_folder(synthetic_run: Path, models: list[Path], test_dir: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    report = write_report(synthetic_run, test_dir=test_dir, out_dir=synthetic_run / "report_test", device="cpu")
    summary = json.loads((synthetic_run / "test" / "summary.json").read_text())["summary"]
    line = next(line for line in report.table_markdown.splitlines() if "2-fold ensemble" in line)
    assert f"test data ISIC-2017_Test_v2 in {test_dir.name} ({len(TEST_IDS)} images)" in line
    for metric in ("AC", "DC", "JI", "SE", "SP"):
        assert f"{summary[metric]:.3f}" in line
    assert (synthetic_run / "report_test" / "gallery_test.png").is_file()
    argv = ["evaluate", "--run", str(synthetic_run), "--test", str(test_dir), "--json", "--device", "cpu"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == pytest.approx(summary)
