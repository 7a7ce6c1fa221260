"""Score a folder of predicted masks against ground truth, image by image, like the official scorer."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skinnet.data.io import InputError, read_mask
from skinnet.data.layout import MASK_SUFFIX, LayoutError, duplicate_masks, find_pairs, list_masks
from skinnet.data.tables import write_csv
from skinnet.metrics import METRIC_NAMES, image_metrics, mean_metrics, sample_sd


@dataclass
class Evaluation:
    """Per-image metrics, their means, and the files that could not be scored."""

    rows: list[dict[str, float | str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    unmatched_truth: int = 0

    @property
    def summary(self) -> dict[str, float]:
        return mean_metrics(self.rows)  # type: ignore[arg-type]

    def table(self) -> str:
        """Mean and standard deviation of each metric over images, as a plain-text table."""
        lines = [f"{'metric':<6} {'mean':>7} {'sd':>7}   (n = {len(self.rows)} images)"]
        for name in METRIC_NAMES:
            values = [float(row[name]) for row in self.rows]
            mean = float(np.mean(values)) if values else math.nan
            sd = sample_sd(values)
            lines.append(f"{name:<6} {mean:7.4f} {sd:7.4f}")
        return "\n".join(lines)

    def write_csv(self, path: str | Path) -> None:
        """One row per image: ``id`` and the six metrics (atomically written)."""
        write_csv(path, self.rows, ["id", *METRIC_NAMES])


def truth_masks(gt: str | Path) -> dict[str, Path]:
    """Ground-truth masks by ID: from a data root in any supported layout, or a plain folder of masks.

    A folder holding ``<id>_segmentation.png`` files is a folder of masks, whatever else lies beside them: a
    stray ``X.png`` must not turn it into a flat data folder of one pair.

    Raises:
        LayoutError: ``gt`` is not a folder, or holds no mask.
    """
    masks = list_masks(gt)
    named = {key: path for key, path in masks.items() if path.stem.endswith(MASK_SUFFIX)}
    if named:
        return named
    with contextlib.suppress(LayoutError):  # not a data root either: the masks found above, if any
        masks = {pair.id: pair.mask for pair in find_pairs(gt).pairs}
    if not masks:
        raise LayoutError(f"{gt}: no ground-truth masks (<id>_segmentation.png, or <id>.png) found")
    return masks


def evaluate_folders(pred_dir: str | Path, gt: str | Path, strict: bool = False) -> Evaluation:
    """Score every prediction ``X_segmentation.png`` (or ``X.png``) in ``pred_dir`` against truth ``X``.

    Every prediction must have a ground truth; ground truths without a prediction are counted in
    ``unmatched_truth`` and not scored (so one fold's predictions can be scored against all masks).

    Args:
        pred_dir: folder of predicted masks.
        gt: folder of ground-truth masks or a data root.
        strict: raise at the first problem instead of recording it and going on.

    Raises:
        LayoutError: a folder is missing, or ``pred_dir`` or ``gt`` holds no mask at all.
        InputError: with ``strict``, the first prediction that cannot be scored.
    """
    predictions = list_masks(pred_dir)
    if not predictions:
        raise LayoutError(f"{pred_dir}: no predicted masks (<id>_segmentation.png) found")
    truths = truth_masks(gt)
    result = Evaluation(unmatched_truth=len(set(truths) - set(predictions)))
    for duplicate in duplicate_masks(pred_dir, predictions):
        if strict:
            raise duplicate
        result.problems.append(str(duplicate))
    for key, pred_path in sorted(predictions.items()):
        try:
            if key not in truths:
                raise InputError(pred_path, f"no ground-truth mask for ID {key!r} in {gt}")
            truth, pred = read_mask(truths[key]), read_mask(pred_path)
            if truth.shape != pred.shape:
                raise InputError(pred_path, f"prediction is {pred.shape[1]}x{pred.shape[0]}, ground truth "
                                            f"{truths[key].name} is {truth.shape[1]}x{truth.shape[0]}")
        except InputError as err:
            if strict:
                raise
            result.problems.append(str(err))
            continue
        result.rows.append({"id": key, **image_metrics(truth, pred)})
    return result
