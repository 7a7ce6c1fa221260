"""Two recipes' per-image out-of-fold scores side by side: means and paired Wilcoxon signed-rank tests.

Each side is one or more per-image metric tables (``val_metrics.csv`` of folds, ``skinnet evaluate --csv``),
given as glob patterns; images are paired by ID, over the IDs both sides scored.

    python benchmarks/paired_oof.py --a 'runs/pretrained_sog/fold_*/val_metrics.csv' \\
        --b 'runs/base_fold*/val_metrics.csv' [--names "Shades of Gray" plain]
"""

from __future__ import annotations

import argparse
import glob
import sys

from skinnet.evaluation.comparison import paired_table
from skinnet.runs import read_metrics_csv


def scores(pattern: str) -> dict[str, dict[str, float]]:
    """ID -> metrics of every table the pattern matches (an ID scored twice is an error)."""
    rows: dict[str, dict[str, float]] = {}
    for path in sorted(glob.glob(pattern)):
        for row in read_metrics_csv(path):
            if row["id"] in rows:
                raise SystemExit(f"{path}: {row['id']} is scored twice on one side")
            rows[str(row["id"])] = row
    if not rows:
        raise SystemExit(f"{pattern}: no table matched")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", required=True, help="glob of the first recipe's per-image tables")
    parser.add_argument("--b", required=True, help="glob of the second recipe's per-image tables")
    parser.add_argument("--names", nargs=2, default=["a", "b"], help="the two recipes' names")
    args = parser.parse_args(argv)
    first, second = scores(args.a), scores(args.b)
    ids = sorted(set(first) & set(second))
    print(f"{len(ids)} images scored by both ({len(first)} and {len(second)} in all)\n")
    print(paired_table(first, second, tuple(args.names)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
