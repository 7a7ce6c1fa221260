"""Score a held-out test folder (e.g. the official ISIC 2017 test set) with a cross-validation run's folds.

The fold models predict together (:class:`skinnet.inference.ensemble.Ensemble`: their lesion probabilities
averaged) at each image's full size, and the masks are scored like the official scorer. Outputs, under
``RUN_DIR/test/`` by default: ``predictions/<id>_segmentation.png``, ``metrics.csv`` (per image) and
``summary.json`` (means, what was predicted with which models). A later call with the same test folder and
unchanged model files reuses them instead of predicting again.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skinnet.batch.run import predict_files
from skinnet.data.atomic import write_json
from skinnet.data.layout import Pair, find_pairs
from skinnet.inference.ensemble import Ensemble
from skinnet.inference.predictor import Predictor
from skinnet.runs import fold_models, read_metrics_csv, relative_to_run
from skinnet.scoring import Evaluation, evaluate_folders

# The official layout's test subset; other layouts (images/ + masks/, flat) are read as they are.
TEST_SUBSET = "Test_v2"


@dataclass
class HoldoutResult:
    """The test folder's per-image scores, where they were written, and with how many fold models."""

    evaluation: Evaluation
    out_dir: Path
    test_dir: Path
    n_models: int

    @property
    def summary(self) -> dict[str, float]:
        return self.evaluation.summary

    @property
    def pred_dir(self) -> Path:
        return self.out_dir / "predictions"


def _source(run_dir: Path, test_dir: Path, models: list[Path], n_images: int) -> dict[str, Any]:
    """What a result was computed from: reuse it only while all of this is unchanged (paths relative to the
    run folder, like every summary in it)."""
    return {"test_dir": relative_to_run(test_dir, run_dir), "n_images": n_images,
            "models": [[relative_to_run(path, run_dir), path.stat().st_mtime_ns] for path in models]}


def evaluate_holdout(run_dir: str | Path, test_dir: str | Path, out_dir: str | Path | None = None,
                     device: str = "auto", reuse: bool = True, strict: bool = False) -> HoldoutResult:
    """Predict ``test_dir`` with the ensemble of ``run_dir``'s fold models and score it.

    Args:
        run_dir: a cross-validation run folder (its fold models, see :mod:`skinnet.runs`).
        test_dir: the test data in any layout :func:`skinnet.data.layout.find_pairs` reads; the official
            ISIC 2017 layout is read from its ``ISIC-2017_Test_v2_*`` folders.
        out_dir: where predictions and scores go (default ``run_dir/test``).
        device: torch device of the models ("auto", "cpu", "cuda", ...).
        reuse: return the saved result of an identical earlier call instead of predicting again.
        strict: stop at the first image that cannot be read or scored.

    Raises:
        LayoutError: ``test_dir`` holds no pairs.
        RunError: ``run_dir`` has no fold model.
    """
    run_dir, test_dir = Path(run_dir), Path(test_dir)
    out_dir = Path(out_dir) if out_dir else run_dir / "test"
    pairs = find_pairs(test_dir, subset=TEST_SUBSET).pairs
    models = fold_models(run_dir)
    source = _source(run_dir, test_dir, models, len(pairs))
    summary_file, metrics_file = out_dir / "summary.json", out_dir / "metrics.csv"
    if reuse and summary_file.is_file() and metrics_file.is_file():
        saved = json.loads(summary_file.read_text())
        if saved.get("source") == source:
            evaluation = Evaluation(rows=read_metrics_csv(metrics_file), problems=saved.get("problems", []))
            return HoldoutResult(evaluation, out_dir, test_dir, len(models))
    evaluation = predict_and_score(Ensemble.from_files(models, device=device), pairs, out_dir, strict)
    evaluation.write_csv(metrics_file)
    write_json(summary_file, {"source": source, "summary": evaluation.summary, "problems": evaluation.problems})
    return HoldoutResult(evaluation, out_dir, test_dir, len(models))


def predict_and_score(predictor: Predictor, pairs: Sequence[Pair], out_dir: Path,
                      strict: bool = False) -> Evaluation:
    """Predict the images of ``pairs`` into ``out_dir/predictions`` and score the masks against theirs.

    Args:
        predictor: the model (e.g. the folds' :class:`~skinnet.inference.ensemble.Ensemble`).
        pairs: image and mask pairs, their masks in one folder.
        out_dir: the folder whose ``predictions/`` is replaced.
        strict: stop at the first image that cannot be read or scored.

    Returns:
        The scores; its problems list the images that could not be predicted, then those not scored.
    """
    pred_dir = out_dir / "predictions"
    if pred_dir.is_dir():  # masks of an earlier test folder would be scored against this one's truths
        shutil.rmtree(pred_dir)
    prediction = predict_files(predictor, [pair.image for pair in pairs], pred_dir, strict=strict)
    evaluation = evaluate_folders(pred_dir, pairs[0].mask.parent, strict=strict)
    evaluation.problems = prediction.failed + evaluation.problems
    return evaluation
