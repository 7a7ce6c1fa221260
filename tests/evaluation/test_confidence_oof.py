"""The out-of-fold confidence analysis on rows with known answers, and the model file that stores the choice."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from skinnet.config import ConfigError
from skinnet.evaluation.confidence_oof import analyse, choose_threshold, flag_rates, store_confidence_choice
from skinnet.networks.files import load_model
from skinnet.weights import default_model_path


def rows(dc: list[float], tta: list[float], margin: list[float]) -> list[dict]:
    return [{"id": f"i{k}", "fold": 0, "DC": d, "tta": t, "margin": m, "no_outline": ""}
            for k, (d, t, m) in enumerate(zip(dc, tta, margin, strict=True))]


def test_a_score_that_ranks_dice_perfectly() -> None:
    dc = [0.1, 0.3, 0.6, 0.75, 0.8, 0.85, 0.9, 0.92, 0.95, 0.97]
    tta = [0.5, 0.6, 0.7, 0.9, 0.91, 0.92, 0.93, 0.95, 0.97, 0.99]  # the same order as DC
    margin = [0.9, 0.2, 0.8, 0.3, 0.7, 0.4, 0.6, 0.5, 0.55, 0.45]  # unrelated
    result = analyse(rows(dc, tta, margin), cutoff=0.7, max_false_alarm=0.0)
    assert (result["n"], result["n_poor"]) == (10, 3)
    perfect = result["methods"]["tta"]
    assert perfect["spearman"] == pytest.approx(1.0) and perfect["auroc"] == pytest.approx(1.0)
    # The largest threshold with no false alarm lies halfway between the worst good score and the best poor.
    assert perfect["threshold"] == pytest.approx(0.8)
    assert (perfect["caught"], perfect["false_alarm"], perfect["flagged"]) == (1.0, 0.0, 0.3)
    assert result["recommended"] == {"method": "tta", "threshold": perfect["threshold"]}
    assert result["methods"]["margin"]["spearman"] < 0.5


def test_threshold_within_the_false_alarm_budget() -> None:
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 1, 200)
    poor = rng.uniform(0, 1, 200) < 0.3
    for budget in (0.0, 0.05, 0.2):
        threshold = choose_threshold(scores, poor, budget)
        assert flag_rates(scores, poor, threshold)[2] <= budget
        # Flagging the next good image would break the budget: the threshold is the largest allowed.
        above = scores[~poor][scores[~poor] >= threshold]
        if len(above):
            assert flag_rates(scores, poor, float(above.min()) + 1e-9)[2] > budget


def test_undefined_cases_are_nan_not_errors() -> None:
    constant = analyse(rows([0.5, 0.6, 0.9], [0.0, 0.0, 0.0], [0.1, 0.2, 0.3]))
    assert math.isnan(constant["methods"]["tta"]["spearman"])
    assert constant["recommended"]["method"] == "margin"
    all_good = analyse(rows([0.8, 0.9, 0.95], [0.1, 0.2, 0.3], [0.1, 0.2, 0.3]))
    assert math.isnan(all_good["methods"]["tta"]["auroc"]) and math.isnan(all_good["methods"]["tta"]["caught"])


@pytest.mark.skipif(default_model_path() is None, reason="no shipped model in skinnet/weights/")
def test_store_confidence_choice_keeps_the_tensors(tmp_path: Path) -> None:
    shipped = default_model_path()
    out = store_confidence_choice(shipped, tmp_path / "model.safetensors", "margin", 0.42)
    _, config = load_model(out)
    assert (config.inference.confidence, config.inference.confidence_threshold) == ("margin", 0.42)
    _, original = load_model(shipped)
    assert config.to_dict()["model"] == original.to_dict()["model"]
    before, after = load_file(shipped), load_file(out)
    assert before.keys() == after.keys()
    assert all(after[key].dtype == before[key].dtype and torch.equal(after[key], before[key]) for key in before)
    with pytest.raises(ConfigError):
        store_confidence_choice(shipped, tmp_path / "bad.safetensors", "entropy", 0.5)
