"""How many flip views TTA needs, out of fold: 1, 2 (image + left-right flip) or all 4, with the shipped choices.

Each image of a cross-validation run is predicted by the fold model that did not train on it, once, as its
four flip views (``Segmenter.predict_views_batch``). The lesion probability of 1, 2 and 4 views is their mean;
each is thresholded with the empty-mask fallback and post-processed with the shipped model's steps, and scored
(DC, official conventions) at the image's size. Prints the mean DC of each and paired Wilcoxon signed-rank
tests against 4 views. Fewer views cost proportionally less network time on a CPU.

    python benchmarks/tta_views_oof.py --run runs/pretrained_last --data ../shared/data/isic2017_train
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from skinnet import runs
from skinnet.data.io import read_image, read_mask
from skinnet.evaluation.comparison import paired_wilcoxon
from skinnet.inference.segmenter import Segmenter
from skinnet.metrics import image_metrics

VIEWS = {"1 view": slice(0, 1), "2 views (image, left-right flip)": slice(0, 2), "4 views": slice(0, 4)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="cross-validation run folder")
    parser.add_argument("--data", required=True, help="the run's data")
    parser.add_argument("--model", help="whose post-processing and fallback to apply (default: the shipped model)")
    args = parser.parse_args(argv)
    shipped = Segmenter.from_file(args.model, device="cpu")  # by default the shipped model
    scores: dict[str, dict[str, float]] = {name: {} for name in VIEWS}
    for fold in runs.out_of_fold(args.run, args.data, on_missing=lambda line: print(line, file=sys.stderr)):
        model = Segmenter.from_file(fold.model, device="cpu", postprocess=shipped.postprocess)
        model.config.inference.empty_fallback = shipped.config.inference.empty_fallback
        for pair in fold.validation:
            views = model.predict_views_batch([read_image(pair.image)])[0]
            truth = read_mask(pair.mask)
            for name, chosen in VIEWS.items():
                mask = model.to_mask(views[chosen].mean(axis=0))
                scores[name][pair.id] = image_metrics(truth, mask)["DC"]
        print(f"fold {fold.fold}: {len(fold.validation)} images", file=sys.stderr)
    print(f"out-of-fold DC over {len(scores['4 views'])} images, post-processing {shipped.postprocess}, "
          f"empty fallback {shipped.config.inference.empty_fallback}\n")
    print("| views | DC | − 4 views: median, Wilcoxon p |\n| --- | ---: | ---: |")
    for name in VIEWS:
        test = paired_wilcoxon(scores[name], scores["4 views"])
        versus = "" if name == "4 views" else f"{test['median_difference']:+.4f}, p = {test['p_value']:.3g}"
        print(f"| {name} | {np.mean(list(scores[name].values())):.4f} | {versus} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
