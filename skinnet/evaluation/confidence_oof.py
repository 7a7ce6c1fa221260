"""Which confidence score flags poor outlines, and at what threshold: out-of-fold evidence from a CV run.

Every image of a cross-validation run's split is predicted by the fold model that did not train on it
(fold ``K``'s kept model for the IDs of fold ``K`` in the run's split, :mod:`skinnet.runs`), with its own
threshold, TTA and post-processing unless overridden. For each image: its Dice coefficient against the
truth (official conventions, :func:`skinnet.metrics.image_metrics`, at the image's size) and both
confidence scores of :mod:`skinnet.clinical.confidence`.

Per score: the Spearman rank correlation with DC (``scipy.stats.spearmanr``), the AUROC of the score for
telling images with DC below the cut-off (0.7) from the rest (the Mann-Whitney U statistic divided by the
number of pairs, ``scipy.stats.mannwhitneyu``), and a flagging threshold: the largest one whose false-alarm
rate (flagged images among those with DC at or above the cut-off) stays within a budget (10%), with the
share of poor images it catches. The recommended score is the one with the larger Spearman correlation.
:func:`store_confidence_choice` writes a model file carrying the choice.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from skinnet import runs
from skinnet.clinical.confidence import WORK_SIDE, margin_score, no_outline, tta_score
from skinnet.config import CONFIDENCE_METHODS
from skinnet.data.atomic import file_sha256
from skinnet.data.io import read_image, read_mask
from skinnet.metrics import image_metrics
from skinnet.networks.files import save_config

DC_CUTOFF = 0.7
MAX_FALSE_ALARM = 0.10
ROW_FIELDS = ["id", "fold", "DC", *CONFIDENCE_METHODS, "no_outline"]


def score_run(run_dir: str | Path, data_root: str | Path, device: str = "auto", tta: bool | None = None,
              postprocess: Sequence[str] | None = None,
              progress: Callable[[str], None] | None = None) -> tuple[list[dict[str, Any]], list[Path]]:
    """Predict every out-of-fold image of a run and score it.

    Args:
        run_dir: the cross-validation run (its split and fold models, :mod:`skinnet.runs`).
        data_root: the data folder the run was trained on (any layout :func:`find_pairs` reads).
        device: torch device.
        tta: flip TTA for the masks; ``None`` takes each model's saved choice.
        postprocess: mask post-processing; ``None`` takes each model's saved steps.
        progress: called with one line per fold.

    Returns:
        One row per image (:data:`ROW_FIELDS`) and the model files used.
    """
    from skinnet.inference.segmenter import Segmenter

    rows: list[dict[str, Any]] = []
    models: list[Path] = []
    for fold in runs.out_of_fold(run_dir, data_root, on_missing=progress):
        models.append(fold.model)
        segmenter = Segmenter.from_file(fold.model, device=device, tta=tta, postprocess=postprocess)
        threshold = segmenter.threshold
        for pair in fold.validation:
            image, truth = read_image(pair.image), read_mask(pair.mask)
            probability = segmenter.predict_proba(image)
            mask = segmenter.to_mask(probability)
            views = segmenter.predict_views_batch([image], WORK_SIDE)[0]
            rows.append({"id": pair.id, "fold": fold.fold, "DC": image_metrics(truth, mask)["DC"],
                         "tta": tta_score(views, threshold), "margin": margin_score(probability, mask, threshold),
                         "no_outline": no_outline(mask) or ""})
        if progress:
            progress(f"fold {fold.fold}: {len(fold.validation)} images scored with {fold.model}")
    return rows, models


def flag_rates(scores: np.ndarray, poor: np.ndarray, threshold: float) -> tuple[float, float, float]:
    """``(flagged, caught, false alarms)``: shares of all images, of the poor ones, of the others."""
    flagged = scores < threshold

    def share(part: np.ndarray) -> float:
        return float(flagged[part].mean()) if part.any() else math.nan

    return float(flagged.mean()), share(poor), share(~poor)


def choose_threshold(scores: np.ndarray, poor: np.ndarray, max_false_alarm: float = MAX_FALSE_ALARM) -> float:
    """The largest threshold (flag ``score < threshold``) whose false-alarm rate is within ``max_false_alarm``.

    Candidates lie halfway between consecutive distinct scores (rounded to 4 decimals), so each flags a
    different set of images; the lowest candidate, the smallest score, flags none.
    """
    values = np.unique(scores)
    candidates = [float(values[0])] + [round(float(a + b) / 2, 4) for a, b in itertools.pairwise(values)]
    allowed = [t for t in candidates if not flag_rates(scores, poor, t)[2] > max_false_alarm]
    return max(allowed) if allowed else float(values[0])


def analyse(rows: Sequence[dict[str, Any]], cutoff: float = DC_CUTOFF,
            max_false_alarm: float = MAX_FALSE_ALARM) -> dict[str, Any]:
    """Spearman, AUROC and the chosen threshold of each score (see the module docstring)."""
    dc = np.array([row["DC"] for row in rows], dtype=float)
    poor = dc < cutoff
    result: dict[str, Any] = {"n": len(rows), "n_poor": int(poor.sum()), "dc_cutoff": cutoff,
                              "max_false_alarm": max_false_alarm, "methods": {}}
    for method in CONFIDENCE_METHODS:
        scores = np.array([row[method] for row in rows], dtype=float)
        rho, p_value = math.nan, math.nan
        if len(rows) > 2 and np.ptp(scores) > 0 and np.ptp(dc) > 0:  # undefined for constant input
            rho, p_value = stats.spearmanr(scores, dc)
        auroc = math.nan
        if poor.any() and (~poor).any():
            u = stats.mannwhitneyu(scores[~poor], scores[poor], alternative="two-sided").statistic
            auroc = float(u) / (int((~poor).sum()) * int(poor.sum()))
        threshold = choose_threshold(scores, poor, max_false_alarm)
        flagged, caught, false_alarm = flag_rates(scores, poor, threshold)
        result["methods"][method] = {"spearman": float(rho), "spearman_p": float(p_value), "auroc": auroc,
                                     "threshold": threshold, "flagged": flagged, "caught": caught,
                                     "false_alarm": false_alarm}
    usable = {m: v for m, v in result["methods"].items() if not math.isnan(v["spearman"])}
    best = max(usable, key=lambda m: usable[m]["spearman"]) if usable else CONFIDENCE_METHODS[0]
    result["recommended"] = {"method": best, "threshold": result["methods"][best]["threshold"]}
    return result


def _percent(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.1f} %"


def markdown_table(result: dict[str, Any]) -> str:
    """The summary as a markdown table, one row per score."""
    lines = [f"Out-of-fold confidence scores, n = {result['n']} images, {result['n_poor']} with DC < "
             f"{result['dc_cutoff']:g}; thresholds chosen for at most {_percent(result['max_false_alarm'])} "
             "false alarms.", "",
             f"| score | Spearman ρ vs DC | AUROC (DC < {result['dc_cutoff']:g}) | threshold | flagged | "
             f"caught (DC < {result['dc_cutoff']:g}) | false alarms |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for method, v in result["methods"].items():
        star = " (recommended)" if method == result["recommended"]["method"] else ""
        auroc = "n/a" if math.isnan(v["auroc"]) else f"{v['auroc']:.3f}"
        lines.append(f"| {method}{star} | {v['spearman']:.3f} | {auroc} | {v['threshold']:.4f} | "
                     f"{_percent(v['flagged'])} | {_percent(v['caught'])} | {_percent(v['false_alarm'])} |")
    return "\n".join(lines) + "\n"


def describe_models(models: Sequence[Path]) -> list[dict[str, str]]:
    return [{"file": str(path), "sha256": file_sha256(path)} for path in models]


def store_confidence_choice(model: str | Path, out: str | Path, method: str, threshold: float) -> Path:
    """Copy a ``.safetensors`` model file with ``inference.confidence`` and its threshold set in its config.

    The tensors are copied as they are (float16 stays float16); only the config in the metadata changes.

    Raises:
        ConfigError: the method or threshold is not valid.
    """
    return save_config(model, out, {"inference": {"confidence": method, "confidence_threshold": float(threshold)}})
