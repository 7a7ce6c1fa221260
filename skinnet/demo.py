"""The built-in default job: segment the bundled ISIC sample pairs and score them.

With the shipped model (the default) nothing is trained: the 40 sample pairs are segmented and scored.
With ``--train`` (or where no model ships) a small SkinNet is trained on 30 of them for a few minutes and
the 10 held out are segmented and scored.
"""

from __future__ import annotations

import time
from pathlib import Path

from skinnet.batch.run import predict_files
from skinnet.clinical.overlay import overlay
from skinnet.config import Config, load_config
from skinnet.data.atomic import write_png
from skinnet.data.io import read_image, read_mask
from skinnet.data.layout import list_masks
from skinnet.data.samples import SAMPLE_DATA
from skinnet.inference.segmenter import Segmenter
from skinnet.scoring import Evaluation, evaluate_folders
from skinnet.training.trainer import train_fold
from skinnet.weights import default_model_path

# Sized to finish in a few minutes on a 2-core CPU: 30 training pairs, 10 held out (fold 0 of 4).
DEMO_OVERRIDES = [
    "model.width=16", "data.image_size=128", "train.epochs=40", "train.batch_size=6", "train.lr=0.001",
    "train.lr_patience=4", "train.n_folds=4", "train.seed=0",
]


def demo_config(epochs: int | None = None) -> Config:
    """The training demo's config; ``epochs`` overrides the default 40."""
    overrides = list(DEMO_OVERRIDES)
    if epochs is not None:
        overrides.append(f"train.epochs={epochs}")
    return load_config(None, overrides)


def write_overlays(pred_dir: Path, data_root: Path, out_dir: Path) -> list[Path]:
    """Image with prediction (green) and ground truth (blue) outlined, for each predicted mask."""
    truths = list_masks(data_root / "masks")
    written = []
    for key, pred_path in sorted(list_masks(pred_dir).items()):
        image = read_image(data_root / "images" / f"{key}.jpg")
        target = out_dir / f"{key}_overlay.png"
        write_png(target, overlay(image, read_mask(pred_path), truth=read_mask(truths[key])))
        written.append(target)
    return written


def print_results(evaluation: Evaluation, pred_dir: Path, overlay_dir: Path, model: Path) -> None:
    print(f"{'image':<14} {'DC':>6} {'JI':>6} {'AC':>6} {'SE':>6} {'SP':>6}")
    for row in evaluation.rows:
        print(f"{row['id']:<14} {row['DC']:6.3f} {row['JI']:6.3f} {row['AC']:6.3f} {row['SE']:6.3f} "
              f"{row['SP']:6.3f}")
    print("\n" + evaluation.table())
    print(f"\nMasks:    {pred_dir}/\nOverlays: {overlay_dir}/ (green = prediction, blue = ground truth)\n"
          f"Model:    {model}")


def run_demo(out_dir: str | Path = "demo_output", epochs: int | None = None, train: bool = False,
             model: str | Path | None = None) -> Evaluation:
    """Segment the sample pairs with the shipped (or given) model, or train first with ``train=True``.

    Args:
        out_dir: where masks, overlays (and the training run) go.
        epochs: epochs of the training demo.
        train: train a small model on 30 pairs and score the 10 held out, even where a model ships.
        model: a model file to use instead of the shipped one.
    """
    out_dir = Path(out_dir)
    model = model or default_model_path()
    if train or model is None:
        return train_demo(out_dir, epochs)
    started = time.perf_counter()
    segmenter = Segmenter.from_file(model)
    pred_dir = out_dir / "predictions"
    report = predict_files(segmenter, [SAMPLE_DATA / "images"], pred_dir)
    seconds = time.perf_counter() - started
    evaluation = evaluate_folders(pred_dir, SAMPLE_DATA / "masks")
    write_overlays(pred_dir, SAMPLE_DATA, out_dir / "overlays")
    print(f"Segmented {len(report.written)} bundled ISIC 2017 sample images in {seconds:.1f} s "
          f"(model load included) with {model}.")
    print("These pairs come from the ISIC 2017 training set, on which the shipped model was trained: the "
          "scores show it works, not how well it generalises (cross-validated scores: "
          "skinnet/weights/MODEL_CARD.md).\n")
    print_results(evaluation, pred_dir, out_dir / "overlays", Path(model))
    return evaluation


def train_demo(out_dir: Path, epochs: int | None = None) -> Evaluation:
    """Train on 30 sample pairs, predict the 10 held out, print their metrics and where the files are."""
    config = demo_config(epochs)
    print(f"Training SkinNet (width {config.model.width}, {config.data.image_size}px, "
          f"{config.train.epochs} epochs) on 30 bundled ISIC 2017 sample pairs; 10 are held out.")
    started = time.perf_counter()
    result = train_fold(config, SAMPLE_DATA, out_dir / "run", fold=0)
    minutes = (time.perf_counter() - started) / 60
    pred_dir = result.paths.val_predictions
    evaluation = evaluate_folders(pred_dir, SAMPLE_DATA / "masks")
    write_overlays(pred_dir, SAMPLE_DATA, out_dir / "overlays")
    print(f"\nTrained in {minutes:.1f} min; kept epoch {result.kept_epoch + 1}.")
    print("\nHeld-out images (masks at the original 256x256):")
    print_results(evaluation, pred_dir, out_dir / "overlays", result.paths.kept_weights)
    return evaluation
