"""The built-in default job: train a small SkinNet on the bundled sample pairs, segment held-out ones."""

from __future__ import annotations

import time
from pathlib import Path

from skinnet.config import Config, load_config
from skinnet.data.io import read_image, read_mask, write_png
from skinnet.data.layout import list_masks
from skinnet.evaluation.evaluate import Evaluation, evaluate_folders
from skinnet.inference.overlay import overlay
from skinnet.training.trainer import train_fold

SAMPLE_DATA = Path(__file__).parent / "sample_data"

# Sized to finish in a few minutes on a 2-core CPU: 30 training pairs, 10 held out (fold 0 of 4).
DEMO_OVERRIDES = [
    "model.width=16", "data.image_size=128", "train.epochs=40", "train.batch_size=6", "train.lr=0.001",
    "train.lr_patience=4", "train.n_folds=4", "train.seed=0",
]


def demo_config(epochs: int | None = None) -> Config:
    """The demo's config; ``epochs`` overrides the default 40."""
    overrides = list(DEMO_OVERRIDES)
    if epochs is not None:
        overrides.append(f"train.epochs={epochs}")
    return load_config(None, overrides)


def write_overlays(evaluation_dir: Path, data_root: Path, out_dir: Path) -> list[Path]:
    """Image with prediction (green) and ground truth (blue) outlined, for each predicted mask."""
    truths = list_masks(data_root / "masks")
    written = []
    for key, pred_path in sorted(list_masks(evaluation_dir).items()):
        image = read_image(data_root / "images" / f"{key}.jpg")
        target = out_dir / f"{key}_overlay.png"
        write_png(target, overlay(image, read_mask(pred_path), truth=read_mask(truths[key])))
        written.append(target)
    return written


def run_demo(out_dir: str | Path = "demo_output", epochs: int | None = None) -> Evaluation:
    """Train on 30 sample pairs, predict the 10 held out, print their metrics and where the files are."""
    out_dir = Path(out_dir)
    config = demo_config(epochs)
    print(f"Training SkinNet (width {config.model.width}, {config.data.image_size}px, "
          f"{config.train.epochs} epochs) on 30 bundled ISIC 2017 sample pairs; 10 are held out.")
    started = time.perf_counter()
    result = train_fold(config, SAMPLE_DATA, out_dir / "run", fold=0)
    minutes = (time.perf_counter() - started) / 60
    pred_dir = result.fold_dir / "val_predictions"
    evaluation = evaluate_folders(pred_dir, SAMPLE_DATA / "masks")
    overlays = write_overlays(pred_dir, SAMPLE_DATA, out_dir / "overlays")
    print(f"\nTrained in {minutes:.1f} min; best validation epoch {result.best_epoch + 1}.")
    print("\nHeld-out images (masks at the original 256x256):")
    print(f"{'image':<14} {'DC':>6} {'JI':>6} {'AC':>6} {'SE':>6} {'SP':>6}")
    for row in evaluation.rows:
        print(f"{row['id']:<14} {row['DC']:6.3f} {row['JI']:6.3f} {row['AC']:6.3f} {row['SE']:6.3f} "
              f"{row['SP']:6.3f}")
    print("\n" + evaluation.table())
    print(f"\nMasks:    {pred_dir}/\nOverlays: {out_dir / 'overlays'}/ ({len(overlays)} files; green = "
          f"prediction, blue = ground truth)\nModel:    {result.fold_dir / 'best.safetensors'}")
    print(f"Try:      skinnet predict {SAMPLE_DATA / 'images'} --out {out_dir / 'all'} "
          f"--model {result.fold_dir / 'best.safetensors'} --overlay")
    return evaluation
