"""What int8 quantisation costs out of fold: each fold model in float32 and in int8, on the images it never saw.

For each fold of a cross-validation run, the fold model is exported to ONNX and quantised (``skinnet export
--int8``), calibrated on ``--calibration`` images drawn (seeded) from that fold's *training* images, never its
validation ones. Both ONNX files then predict the fold's validation images with the shipped model's choices
(TTA, empty-mask fallback, post-processing), on one ONNX Runtime thread each, and each mask is scored (DC, JI,
official conventions). Prints the means, the paired Wilcoxon signed-rank tests and the network's time per
image (4 TTA views) in each precision, measured in the same run; writes each precision's per-image scores to
``--out/{float32,int8}_metrics.csv`` (``benchmarks/paired_oof.py`` reads them).

    python benchmarks/int8_oof.py --run runs/pretrained_sog --data ../shared/data/isic2017_train \\
        --out docs/pretrained_cv/shades_of_gray/int8
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from skinnet import runs
from skinnet.data.io import read_image, read_mask
from skinnet.data.tables import write_csv
from skinnet.evaluation.comparison import paired_table
from skinnet.inference.onnx import PRECISIONS, OnnxBackend, export_onnx
from skinnet.inference.quantize import CALIBRATION_IMAGES, quantize_onnx
from skinnet.inference.segmenter import Segmenter
from skinnet.metrics import image_metrics
from skinnet.networks.files import load_model


def fold_segmenters(weights: Path, calibration: list[np.ndarray], shipped: Segmenter,
                    scratch: Path) -> dict[str, Segmenter]:
    """The fold model as float32 and int8 ONNX Runtime segmenters with the shipped inference choices."""
    model, config = load_model(weights)
    files = {"float32": export_onnx(model, config, scratch / "float32.onnx"), "int8": scratch / "int8.onnx"}
    quantize_onnx(files["float32"], files["int8"], calibration)
    segmenters = {}
    for precision, path in files.items():
        backend = OnnxBackend(path, threads=1)
        backend.config.inference.empty_fallback = shipped.config.inference.empty_fallback
        segmenters[precision] = Segmenter(backend, backend.config, tta=shipped.tta,
                                          postprocess=shipped.postprocess)
    return segmenters


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="cross-validation run folder")
    parser.add_argument("--data", required=True, help="the run's data")
    parser.add_argument("--out", required=True, help="folder for float32_metrics.csv and int8_metrics.csv")
    parser.add_argument("--model", help="whose TTA, fallback and post-processing to apply (default: shipped)")
    parser.add_argument("--calibration", type=int, default=CALIBRATION_IMAGES,
                        help="calibration images per fold, from its training images")
    parser.add_argument("--folds", help="comma list of folds (default: all)")
    parser.add_argument("--limit", type=int, help="score only the first N images of each fold (a quick check)")
    args = parser.parse_args(argv)
    shipped = Segmenter.from_file(args.model, device="cpu")  # by default the shipped model
    folds = [int(k) for k in args.folds.split(",")] if args.folds else None
    rows: dict[str, list[dict[str, object]]] = {precision: [] for precision in PRECISIONS}
    network_seconds = {precision: 0.0 for precision in PRECISIONS}
    for fold in runs.out_of_fold(args.run, args.data, folds, on_missing=lambda line: print(line, file=sys.stderr)):
        training = {pair.id: pair for pair in fold.training}
        drawn = random.Random(fold.fold).sample(sorted(training), args.calibration)
        calibration = [read_image(training[key].image) for key in sorted(drawn)]
        with tempfile.TemporaryDirectory() as scratch:
            segmenters = fold_segmenters(fold.model, calibration, shipped, Path(scratch))
            for pair in fold.validation[: args.limit]:
                image, truth = read_image(pair.image), read_mask(pair.mask)
                for precision, segmenter in segmenters.items():
                    started = time.perf_counter()
                    probability = segmenter.predict_proba(image)
                    network_seconds[precision] += time.perf_counter() - started
                    scores = image_metrics(truth, segmenter.to_mask(probability))
                    rows[precision].append({"id": pair.id, "fold": fold.fold, **scores})
        print(f"fold {fold.fold}: {len(fold.validation[: args.limit])} images", file=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for precision, table in rows.items():
        write_csv(out / f"{precision}_metrics.csv", table, list(table[0]))
    count = len(rows["int8"])
    print(f"out-of-fold over {count} images of {args.run}; TTA {shipped.tta}, empty fallback "
          f"{shipped.config.inference.empty_fallback}, post-processing {shipped.postprocess}; "
          f"{args.calibration} calibration images per fold from its training images\n")
    by_id = {precision: {str(row["id"]): row for row in table} for precision, table in rows.items()}
    print(paired_table(by_id["int8"], by_id["float32"], ("int8", "float32")))  # type: ignore[arg-type]
    per_image = {precision: seconds / count for precision, seconds in network_seconds.items()}
    print(f"\nresize, network and resize back, 1 thread, per image: float32 {per_image['float32']:.4f} s, "
          f"int8 {per_image['int8']:.4f} s ({per_image['float32'] / per_image['int8']:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
