"""``skinnet train``, ``cv`` and ``finalize``: fold models, cross-validation, and the model to ship."""

from __future__ import annotations

import argparse
import json
import os
import time

from skinnet.cli.arguments import fold_list, fold_or_all, run_arguments


def cmd_train(args: argparse.Namespace) -> int:
    from skinnet.metrics import METRIC_NAMES
    from skinnet.training.trainer import train_fold

    config, data, out = run_arguments(args)
    started = time.perf_counter()
    fold = None if args.fold == "all" else int(args.fold)
    result = train_fold(config, data, out, fold=fold, resume=args.resume)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun, rank 0 reports for all processes
        return 0
    minutes = (time.perf_counter() - started) / 60
    if fold is None:
        print(f"trained on all pairs for {config.train.epochs} epochs in {minutes:.1f} min: "
              f"{result.paths.kept_weights}")
        return 0
    print(f"fold {args.fold}: kept epoch {result.kept_epoch + 1}, validation DC {result.kept_val_dc:.4f} "
          f"(at {config.data.image_size}px); {minutes:.1f} min")
    print(f"validation predictions at full size: {result.paths.val_predictions}")
    print("  ".join(f"{key} {result.val_summary[key]:.4f}" for key in METRIC_NAMES))
    return 0


def cmd_cv(args: argparse.Namespace) -> int:
    from skinnet import runs
    from skinnet.training.cv import format_summary, prepare_run, run_cv

    config, data, out = run_arguments(args)
    if args.prepare:
        folds = prepare_run(config, data, out)
        print(f"{runs.splits_path(out)}: {len(folds)} folds; resize cache ready")
        return 0
    result = run_cv(config, data, out, folds=args.folds, resume=args.resume, progress=print)
    print(format_summary(result.summary))
    print(f"written: {runs.cv_summary_path(out)}, {runs.cv_metrics_path(out)}")
    return 0


def cmd_finalize(args: argparse.Namespace) -> int:
    from skinnet.data.atomic import json_safe
    from skinnet.selection.finalize import finalize_model

    report = finalize_model(args.model, args.run, args.data, args.out, half=not args.float32)
    print(json.dumps(json_safe(report), indent=1, allow_nan=False))
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    train = sub.add_parser("train", help="train one cross-validation fold")
    train.add_argument("--config", required=True, help="YAML config, e.g. configs/cpu.yaml")
    train.add_argument("--fold", default="0", type=fold_or_all,
                       help="fold to validate on (default 0), or 'all' to train a final model on every pair")
    train.add_argument("--data", help="data folder (official ISIC 2017 layout, images/+masks/, or flat)")
    train.add_argument("--out", help="run folder (default runs/<config name>)")
    train.add_argument("--resume", action="store_true", help="continue from the fold's last.pt")
    train.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.epochs=5")
    train.set_defaults(func=cmd_train)

    cv = sub.add_parser("cv", help="k-fold cross-validation: train the folds one after another, pool them")
    cv.add_argument("--config", required=True, help="YAML config, e.g. configs/cpu.yaml")
    cv.add_argument("--folds", type=fold_list, help="comma list of folds to train, e.g. 0,1 (default: all)")
    cv.add_argument("--data", help="data folder (official ISIC 2017 layout, images/+masks/, or flat)")
    cv.add_argument("--out", help="run folder (default runs/<config name>)")
    cv.add_argument("--resume", action="store_true", help="continue an unfinished fold from its last.pt")
    cv.add_argument("--prepare", action="store_true",
                    help="only write the split and fill the resize cache (before folds run in parallel)")
    cv.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.epochs=5")
    cv.set_defaults(func=cmd_cv)

    finalize = sub.add_parser("finalize", help="choose TTA and post-processing on a run's out-of-fold "
                                              "predictions and write a shippable model")
    finalize.add_argument("--model", required=True, help="the model to ship (.safetensors or .pt)")
    finalize.add_argument("--run", required=True, help="cross-validation run folder (skinnet cv's)")
    finalize.add_argument("--data", required=True, help="the data folder the run was trained on")
    finalize.add_argument("--out", required=True, help="output .safetensors (a .json report goes beside it)")
    finalize.add_argument("--float32", action="store_true", help="keep float32 weights (default float16)")
    finalize.set_defaults(func=cmd_finalize)
