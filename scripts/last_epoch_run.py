"""A copy of a cross-validation run whose fold models are each fold's last epoch instead of its best one.

``skinnet cv`` keeps, per fold, the epoch with the best validation DC. Those validation images are the ones
the fold is then scored on, so picking the epoch on them flatters the out-of-fold score a little. A recipe
with a schedule fixed in advance (``train.schedule=poly`` or ``step``) ships the last epoch of its all-data
run; scoring each fold's last epoch (its ``last.pt``) measures exactly that recipe, with no choice made on
the scored images. The copy holds ``splits.json`` and ``fold_K/best.safetensors`` (the last epoch's weights,
named as ``finalize`` and ``benchmarks/confidence_oof.py`` expect them), nothing else:

    python scripts/last_epoch_run.py runs/pretrained runs/pretrained_last
    skinnet finalize --model runs/pretrained/all/best.safetensors --run runs/pretrained_last \\
        --data ../shared/data/isic2017_train --out runs/ship/skinnet_isic2017.safetensors
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from skinnet.networks.files import load_model, save_weights
from skinnet.runs import fold_paths, read_split, share_split


def copy_last_epochs(run_dir: Path, out: Path) -> list[int]:
    """Write ``out``: the run's split and each fold's last epoch as its model; returns the folds copied."""
    split = read_split(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    share_split(run_dir, out)
    copied = []
    for fold in range(len(split)):
        last = fold_paths(run_dir, fold).last_checkpoint
        if not last.is_file():
            print(f"fold {fold}: no {last}; left out", file=sys.stderr)
            continue
        model, config = load_model(last)
        fold_paths(out, fold).folder.mkdir(exist_ok=True)
        save_weights(fold_paths(out, fold).kept_weights, model, config)
        copied.append(fold)
    return copied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="cross-validation run folder (splits.json, fold_K/last.pt)")
    parser.add_argument("out", type=Path, help="the copy to write")
    args = parser.parse_args(argv)
    folds = copy_last_epochs(args.run, args.out)
    print(f"{args.out}: last epochs of folds {folds}")
    return 0 if folds else 2


if __name__ == "__main__":
    sys.exit(main())
