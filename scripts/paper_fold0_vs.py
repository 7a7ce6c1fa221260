"""Pair the paper-config fold-0 run (issue 10) with another recipe's fold-0 per-image scores: paired Wilcoxon.

    python scripts/paper_fold0_vs.py [--paper docs/paper_fold0/per_image.csv]
        [--other docs/pretrained_cv/side_by_side/pretrained_fold_0_val_metrics.csv] [--network skinnet]

``--paper`` is the job's per-image table (columns ``id``, ``DC_<network>``, ``JI_<network>``); ``--other`` a
``val_metrics.csv`` of the same fold and split (columns ``id``, ``DC``, ``JI``). Prints one line per metric.
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from skinnet.evaluation.comparison import paired_wilcoxon


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paper", default="docs/paper_fold0/per_image.csv")
    parser.add_argument("--other", default="docs/pretrained_cv/side_by_side/pretrained_fold_0_val_metrics.csv")
    parser.add_argument("--network", default="skinnet", help="which network of the paper job (default skinnet)")
    args = parser.parse_args(argv)
    paper = pd.read_csv(args.paper).set_index("id")
    other = pd.read_csv(args.other).set_index("id")
    if set(paper.index) != set(other.index):
        print(f"the two tables score different images ({len(paper)} and {len(other)}): not the same fold",
              file=sys.stderr)
        return 2
    for metric in ("DC", "JI"):
        ours = paper[f"{metric}_{args.network}"].to_dict()
        theirs = other[metric].to_dict()
        test = paired_wilcoxon(ours, theirs)
        print(f"{metric}: {args.network} {paper[f'{metric}_{args.network}'].mean():.4f}, other "
              f"{other[metric].mean():.4f}; " + ", ".join(f"{k} {v:.4g}" for k, v in test.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
