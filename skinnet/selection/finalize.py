"""Turn a trained model into a shippable one: choose TTA, the empty-mask fallback and post-processing on
out-of-fold predictions.

As nnU-Net does, each option is kept only where it raises the mean Dice of the cross-validation folds'
out-of-fold predictions (each fold's validation images, predicted by that fold's own model). The choice is
written into the model file's config (``inference.tta``, ``inference.empty_fallback``,
``inference.postprocess``), so every user of the
file gets it, and returned with the scores for the model card.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from skinnet import runs
from skinnet.data.atomic import write_json
from skinnet.data.io import read_image, read_mask
from skinnet.data.tables import write_csv
from skinnet.inference.postprocess import apply_postprocessing, choose_postprocessing, threshold_mask
from skinnet.inference.segmenter import Segmenter
from skinnet.metrics import METRIC_NAMES, image_metrics, mean_metrics
from skinnet.networks.files import load_model, save_weights


def out_of_fold_probabilities(run_dir: Path, data_root: str | Path, tta: bool) -> tuple[
        list[str], list[np.ndarray], list[np.ndarray]]:
    """(image IDs, truths, lesion probabilities) of every finished fold's validation images, at full size."""
    ids, truths, probs = [], [], []
    for fold in runs.out_of_fold(run_dir, data_root):
        segmenter = Segmenter.from_file(fold.model, tta=tta, postprocess=[])
        for pair in fold.validation:
            ids.append(pair.id)
            truths.append(read_mask(pair.mask))
            probs.append(segmenter.predict_proba(read_image(pair.image)))
    if not truths:
        raise FileNotFoundError(f"{run_dir}: no fold has a kept model to take out-of-fold predictions from")
    return ids, truths, probs


def oof_metrics_path(model_out: Path) -> Path:
    """Where :func:`finalize_model` writes the per-image out-of-fold metrics of the shipped choices."""
    return model_out.with_name(model_out.stem + "_oof_metrics.csv")


def finalize_model(model_path: str | Path, run_dir: str | Path, data_root: str | Path, out: str | Path,
                   half: bool = True) -> dict[str, Any]:
    """Choose TTA, the empty-mask fallback and post-processing on ``run_dir``'s folds; write ``model_path``
    with them to ``out``.

    Args:
        model_path: the model to ship (e.g. trained on all data with the folds' recipe).
        run_dir: a cross-validation run folder (its split and fold models, :mod:`skinnet.runs`).
        data_root: the data the run was trained on.
        out: the shippable ``.safetensors`` file; a ``.json`` report is written beside it.
        half: store the weights as float16.

    Returns:
        The report: out-of-fold mean metrics for each choice, and what was kept.
    """
    run_dir, out = Path(run_dir), Path(out)
    model, config = load_model(model_path)
    threshold = config.inference.threshold
    ids, truths, plain = out_of_fold_probabilities(run_dir, data_root, tta=False)
    _, _, flipped = out_of_fold_probabilities(run_dir, data_root, tta=True)

    def masks(probs: list[np.ndarray], fallback: bool) -> list[np.ndarray]:
        return [threshold_mask(p, threshold, fallback) for p in probs]

    def summary(predictions: list[np.ndarray]) -> dict[str, float]:
        return mean_metrics(image_metrics(t, p) for t, p in zip(truths, predictions, strict=True))

    scores = {"plain": summary(masks(plain, False)), "tta": summary(masks(flipped, False))}
    tta = scores["tta"]["DC"] > scores["plain"]["DC"]
    chosen = flipped if tta else plain
    scores["fallback"] = summary(masks(chosen, True))
    fallback = scores["fallback"]["DC"] > scores["tta" if tta else "plain"]["DC"]
    chosen_masks = masks(chosen, fallback)
    steps, step_scores = choose_postprocessing(truths, chosen_masks)
    config.inference.tta, config.inference.empty_fallback, config.inference.postprocess = tta, fallback, steps
    save_weights(out, model, config, half=half)
    # Per-image out-of-fold scores with every shipped choice applied: the paired data for comparing recipes.
    shipped = [{"id": key, **image_metrics(t, apply_postprocessing(m, steps))}
               for key, t, m in zip(ids, truths, chosen_masks, strict=True)]
    write_csv(oof_metrics_path(out), shipped, ["id", *METRIC_NAMES])
    report = {"model": str(model_path), "run": str(run_dir), "n_out_of_fold": len(truths),
              "out_of_fold_without_tta": scores["plain"], "out_of_fold_with_tta": scores["tta"], "tta": tta,
              "out_of_fold_with_empty_fallback": scores["fallback"], "empty_fallback": fallback,
              "empty_predictions": sum(not m.any() for m in masks(chosen, False)),
              "postprocessing_mean_dc": step_scores, "postprocess": steps, "half": half,
              "out_of_fold_shipped": mean_metrics(shipped), "size_bytes": out.stat().st_size}
    write_json(out.with_suffix(".json"), report)
    return report
