"""``skinnet evaluate`` and ``report``: scores of predicted masks, and a run's Fig. 2, Table I and galleries."""

from __future__ import annotations

import argparse
import json
import sys

from skinnet.cli.arguments import report_problems
from skinnet.config import ConfigError
from skinnet.extras import require


def cmd_evaluate(args: argparse.Namespace) -> int:
    from skinnet.data.atomic import json_safe
    from skinnet.evaluation.holdout import evaluate_holdout
    from skinnet.scoring import evaluate_folders

    if args.test:
        if not args.run:
            raise ConfigError("--test needs --run RUN_DIR: the cross-validation run whose fold models predict it")
        holdout = evaluate_holdout(args.run, args.test, device=args.device, strict=args.strict)
        print(f"{holdout.n_models}-fold ensemble predictions: {holdout.pred_dir}", file=sys.stderr)
        evaluation = holdout.evaluation
    elif args.pred and args.gt:
        evaluation = evaluate_folders(args.pred, args.gt, strict=args.strict)
    else:
        raise ConfigError("pass --pred DIR --gt DIR, or --run RUN_DIR --test DIR")
    if args.csv:
        evaluation.write_csv(args.csv)
    if args.json:  # strict JSON: a mean over no image is null, never NaN
        print(json.dumps(json_safe(evaluation.summary), allow_nan=False))
    else:
        print(evaluation.table())
        if evaluation.unmatched_truth:
            print(f"({evaluation.unmatched_truth} ground-truth masks have no prediction and were not scored)")
    return report_problems(evaluation.problems)


def cmd_report(args: argparse.Namespace) -> int:
    require("matplotlib", "report", "plotting")  # before report.py's own import fails with a traceback
    from skinnet.evaluation.report import write_report

    report = write_report(args.run_dir, test_dir=args.test, out_dir=args.out, device=args.device)
    print(report.table_markdown)
    for path in report.files:
        print(path)
    for note in report.notes:
        print(note, file=sys.stderr)
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    evaluate = sub.add_parser("evaluate", help="score predicted masks against ground truth, or a test folder "
                                              "predicted by a cross-validation run's fold ensemble")
    evaluate.add_argument("--pred", help="folder of predicted masks (<id>_segmentation.png)")
    evaluate.add_argument("--gt", help="folder of ground-truth masks, or a data folder")
    evaluate.add_argument("--run", help="cross-validation run folder whose fold models predict --test")
    evaluate.add_argument("--test", help="labelled test folder (e.g. the official ISIC-2017_Test_v2_* layout)")
    evaluate.add_argument("--device", default="auto", help="device for --test predictions (auto, cpu, cuda)")
    evaluate.add_argument("--csv", help="write one row of metrics per image to this CSV file")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object of the means")
    evaluate.add_argument("--strict", action="store_true", help="stop at the first bad file")
    evaluate.set_defaults(func=cmd_evaluate)

    report = sub.add_parser("report", help="Fig. 2 curves, Table I and galleries of a cross-validation run")
    report.add_argument("run_dir", metavar="RUN_DIR", help="the run folder skinnet cv wrote")
    report.add_argument("--test", help="labelled test folder to predict with the fold ensemble and add")
    report.add_argument("--out", help="output folder (default RUN_DIR/report)")
    report.add_argument("--device", default="auto", help="device for --test predictions (auto, cpu, cuda)")
    report.set_defaults(func=cmd_report)
