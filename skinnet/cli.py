"""The ``skinnet`` command: parses arguments and calls the library; no logic lives here."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

from skinnet import runs
from skinnet.config import Config, ConfigError, load_config
from skinnet.data.io import InputError, json_safe
from skinnet.data.layout import LayoutError
from skinnet.data.splits import SplitError
from skinnet.extras import MissingExtraError, require
from skinnet.metrics import METRIC_NAMES
from skinnet.networks.files import ModelFileError
from skinnet.runs import RunError
from skinnet.training.epoch import TrainingError

USER_ERRORS = (ConfigError, InputError, LayoutError, SplitError, ModelFileError, TrainingError, RunError,
               MissingExtraError)


def run_arguments(args: argparse.Namespace) -> tuple[Config, str, Path]:
    """The config (file + overrides), the data folder and the run folder of ``train`` and ``cv``."""
    config = load_config(args.config, args.overrides)
    data = args.data or config.data.root
    if not data:
        raise ConfigError("no data folder: pass --data DIR or set data.root in the config")
    return config, data, Path(args.out or Path("runs") / Path(args.config).stem)


def cmd_train(args: argparse.Namespace) -> int:
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
              f"{result.paths.best_weights}")
        return 0
    print(f"fold {args.fold}: best epoch {result.best_epoch + 1}, validation DC {result.best_val_dc:.4f} "
          f"(at {config.data.image_size}px); {minutes:.1f} min")
    print(f"validation predictions at full size: {result.paths.val_predictions}")
    print("  ".join(f"{key} {result.val_summary[key]:.4f}" for key in METRIC_NAMES))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
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


def cmd_cv(args: argparse.Namespace) -> int:
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


def fold_or_all(text: str) -> str:
    if text != "all" and not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a fold number or 'all', got {text!r}")
    return text


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def pixel_spacing(text: str) -> float | tuple[float, float]:
    """``"0.02"`` (square pixels) or ``"0.02,0.025"`` (row, column), in mm."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        values = ()
    if len(values) not in (1, 2) or not all(0 < value < 100 for value in values):
        raise argparse.ArgumentTypeError(f"expected mm per pixel, e.g. 0.02, or ROW,COLUMN, got {text!r}")
    return values[0] if len(values) == 1 else values


def fold_list(text: str) -> list[int]:
    """``"0,2,4"`` → ``[0, 2, 4]``."""
    return [int(part) for part in text.split(",") if part.strip()]


def cmd_predict(args: argparse.Namespace) -> int:
    from skinnet.devices import resolve_device
    from skinnet.inference.findings import predict_outputs, write_measurements
    from skinnet.inference.model_spec import ModelSpec
    from skinnet.inference.predict import predict_files
    from skinnet.inference.shard import Shard

    if args.model and args.run:
        raise ConfigError("--model and --run both given: pass --model for one model file, or --run for the "
                          "ensemble of a cross-validation run's fold models")
    steps = tuple(step for step in args.postprocess.split(",") if step != "none")
    postprocess = None if args.postprocess == "saved" else steps
    tta = {"saved": None, "on": True, "off": False}[args.tta]
    shard = Shard.parse(args.shard) if args.shard else None
    batch_size = args.batch_size or (8 if args.backend == "torch" and resolve_device(args.device).type == "cuda"
                                     else 1)
    # with --run, the fold models of a cross-validation run, their probabilities averaged
    spec = ModelSpec(model=args.model, run=args.run, device=args.device, backend=args.backend, tta=tta,
                     postprocess=postprocess, threads=args.threads, batch_size=batch_size)
    # the worker threads share the cores: by default each network call gets an equal share of them
    cores = max(1, (os.cpu_count() or 1) // args.workers)
    segmenter = spec.load() if args.threads or args.dask else replace(spec, threads=cores).load()
    engine = None
    if args.dask:
        from skinnet.inference.dask_engine import DaskEngine

        engine = DaskEngine(spec, args.dask)
    writers, reader = predict_outputs(segmenter, args.overlay, args.probability, bool(args.measurements),
                                      args.uncertainty, args.dicom_seg, args.pixel_spacing, spec)
    started = time.perf_counter()
    report = predict_files(segmenter, args.inputs, args.out, with_overlay=args.overlay,
                           with_probability=args.probability, strict=args.strict, resume=not args.overwrite,
                           shard=shard, batch_size=batch_size, workers=args.workers, engine=engine,
                           progress={"auto": None, "on": True, "off": False}[args.progress], writers=writers,
                           reader=reader)
    seconds = time.perf_counter() - started
    for path in report.written:
        print(path)
    per_image = seconds / max(len(report.written), 1)
    print(f"{len(report.written)} masks written to {args.out} in {seconds:.2f} s ({per_image:.3f} s per image)",
          file=sys.stderr)
    if report.skipped:
        print(f"{len(report.skipped)} images already done by a run of the same model and options: skipped "
              "(--overwrite recomputes them)", file=sys.stderr)
    if report.table is not None and shard is not None:
        print(f"shard {shard.index}/{shard.count}: table {report.table}; once every shard is done: "
              f"skinnet merge-shards {Path(args.out) / 'predictions.csv'}", file=sys.stderr)
    if args.measurements and report.table is not None:
        rows = write_measurements(report.table, args.measurements)
        print(f"measurements of {rows} images: {args.measurements}", file=sys.stderr)
    return report_problems(report.failed)


def cmd_merge_shards(args: argparse.Namespace) -> int:
    from skinnet.inference.merge import merge_shard_tables

    for table in args.tables:
        print(f"{table}: {merge_shard_tables(table)} rows")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from skinnet.inference.model_guard import load_checked
    from skinnet.inference.onnx import export_onnx
    from skinnet.weights import default_model_path

    path = args.model or default_model_path()
    if path is None:
        raise ModelFileError("no --model given and no shipped model found")
    model, config = load_checked(path)
    if not args.int8:
        print(export_onnx(model, config, args.onnx))
        return 0
    from skinnet.demo import SAMPLE_DATA
    from skinnet.inference.quantize import CALIBRATION_IMAGES, calibration_images, quantize_onnx

    images, problems = calibration_images(args.calibration or [SAMPLE_DATA / "images"],
                                          args.calibration_images or CALIBRATION_IMAGES)
    for problem in problems:
        print(f"skipped calibration image {problem}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as scratch:
        float32 = export_onnx(model, config, Path(scratch) / "float32.onnx")
        count = quantize_onnx(float32, args.onnx, images, config)
    print(f"{args.onnx} (int8, calibrated on {count} images)")
    return 0


def cmd_finalize(args: argparse.Namespace) -> int:
    from skinnet.inference.finalize import finalize_model

    report = finalize_model(args.model, args.run, args.data, args.out, half=not args.float32)
    print(json.dumps(json_safe(report), indent=1, allow_nan=False))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from skinnet.demo import run_demo

    run_demo(args.out, epochs=args.epochs, train=args.train, model=args.model)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    for module in ("fastapi", "uvicorn", "python_multipart"):  # all three, before the server is half built
        require(module, "serve", "the web app")
    from skinnet.app.server import serve

    return serve(args.model, host=args.host, port=args.port, device=args.device, backend=args.backend,
                 max_upload_bytes=round(args.max_upload_mb * 1e6), workers=args.workers, queue_size=args.queue,
                 allow_hosts=args.allow_host)


def report_problems(problems: list[str]) -> int:
    """Print every problem of a batch at the end; non-zero exit status when there was any."""
    if not problems:
        return 0
    print(f"\n{len(problems)} file(s) failed:", file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skinnet", description="SkinNet skin lesion segmentation")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train one cross-validation fold")
    train.add_argument("--config", required=True, help="YAML config, e.g. configs/cpu.yaml")
    train.add_argument("--fold", default="0", type=fold_or_all,
                       help="fold to validate on (default 0), or 'all' to train a final model on every pair")
    train.add_argument("--data", help="data folder (official ISIC 2017 layout, images/+masks/, or flat)")
    train.add_argument("--out", help="run folder (default runs/<config name>)")
    train.add_argument("--resume", action="store_true", help="continue from the fold's last.pt")
    train.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.epochs=5")
    train.set_defaults(func=cmd_train)

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

    report = sub.add_parser("report", help="Fig. 2 curves, Table I and galleries of a cross-validation run")
    report.add_argument("run_dir", metavar="RUN_DIR", help="the run folder skinnet cv wrote")
    report.add_argument("--test", help="labelled test folder to predict with the fold ensemble and add")
    report.add_argument("--out", help="output folder (default RUN_DIR/report)")
    report.add_argument("--device", default="auto", help="device for --test predictions (auto, cpu, cuda)")
    report.set_defaults(func=cmd_report)

    predict = sub.add_parser("predict", help="segment images; writes <id>_segmentation.png")
    predict.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    predict.add_argument("--out", required=True, help="output folder")
    predict.add_argument("--model", help="model file (.safetensors, .pt or .onnx); default: the shipped model")
    predict.add_argument("--run", help="cross-validation run folder: average its fold models (an ensemble)")
    predict.add_argument("--overlay", action="store_true", help="also write <id>_overlay.png")
    predict.add_argument("--probability", action="store_true", help="also write <id>_probability.png (0-255)")
    predict.add_argument("--tta", choices=["saved", "on", "off"], default="saved",
                         help="flip test-time augmentation (4x the compute); saved = the model's own choice")
    predict.add_argument("--postprocess", default="saved",
                         help="saved (the model's own choice), none, or a comma list of "
                              "largest_component,fill_holes")
    predict.add_argument("--backend", choices=["torch", "onnx"], default="torch",
                         help="onnx runs ONNX Runtime (faster on CPU)")
    predict.add_argument("--threads", type=positive_int,
                         help="CPU threads of each network call, torch or ONNX Runtime (default: the cores "
                              "divided by --workers)")
    predict.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ... (torch backend)")
    predict.add_argument("--strict", action="store_true", help="stop at the first bad file")
    predict.add_argument("--batch-size", type=positive_int,
                         help="images per forward pass (default: 8 on a GPU, 1 on the CPU)")
    predict.add_argument("--workers", type=positive_int, default=2,
                         help="threads that each take a batch from file to outputs, so that decoding and writing "
                              "overlap with the network (default 2; 1: one image after another)")
    predict.add_argument("--overwrite", action="store_true",
                         help="recompute every image (by default, images whose outputs a run of the same model "
                              "files and options finished are skipped)")
    predict.add_argument("--shard", metavar="K/N",
                         help="predict only shard K of N, chosen by a hash of each image ID (stable when files "
                              "are added); its table is predictions.shard-K-of-N.csv (see merge-shards)")
    predict.add_argument("--dask", metavar="SCHEDULER",
                         help="run on a Dask cluster: its scheduler address (tcp://host:8786) or scheduler file; "
                              "needs pip install 'skinnet[cluster]' (docs/archive_prediction.md)")
    predict.add_argument("--measurements", metavar="CSV",
                         help="write one row per image: every measurement with its unit (mm where the pixel "
                              "spacing is known), the confidence and its flag, the model file and SHA-256")
    predict.add_argument("--pixel-spacing", type=pixel_spacing, metavar="MM",
                         help="mm per pixel (or ROW,COLUMN) for images whose file gives none; a DICOM file's "
                              "own PixelSpacing wins")
    predict.add_argument("--uncertainty", action="store_true",
                         help="also write <id>_uncertainty.png (0 sure, 255 unsure, by the model's confidence "
                              "method)")
    predict.add_argument("--dicom-seg", action="store_true",
                         help="also write <id>_seg.dcm, a DICOM Segmentation referencing each input (DICOM inputs "
                              "only; others fail with a reason)")
    predict.add_argument("--progress", choices=["auto", "on", "off"], default="auto",
                         help="progress bar: images/s, ETA, failed files (auto: on a terminal only)")
    predict.set_defaults(func=cmd_predict)

    merge = sub.add_parser("merge-shards", help="combine the per-shard tables of a sharded predict run")
    merge.add_argument("tables", nargs="+", metavar="TABLE",
                       help="the whole run's table to write, e.g. OUT/predictions.csv: merges the "
                            "OUT/predictions.shard-K-of-N.csv beside it, checking that no shard is missing")
    merge.set_defaults(func=cmd_merge_shards)

    export = sub.add_parser("export", help="export a model to ONNX (dynamic batch and image size)")
    export.add_argument("--model", help="model file (.safetensors or .pt); default: the shipped model")
    export.add_argument("--onnx", required=True, help="output .onnx file")
    export.add_argument("--int8", action="store_true",
                        help="quantise to int8 (about 2x faster on a CPU; the masks change a little: "
                             "docs/archive_prediction.md)")
    export.add_argument("--calibration", nargs="+", metavar="PATH",
                        help="with --int8: images or folders typical of the inputs, whose activation ranges "
                             "set the quantisation (default: the bundled ISIC sample images)")
    export.add_argument("--calibration-images", type=positive_int, metavar="N",
                        help="with --int8: calibrate on at most N of them, drawn with a fixed seed (default 64)")
    export.set_defaults(func=cmd_export)

    finalize = sub.add_parser("finalize", help="choose TTA and post-processing on a run's out-of-fold "
                                              "predictions and write a shippable model")
    finalize.add_argument("--model", required=True, help="the model to ship (.safetensors or .pt)")
    finalize.add_argument("--run", required=True, help="cross-validation run folder (skinnet cv's)")
    finalize.add_argument("--data", required=True, help="the data folder the run was trained on")
    finalize.add_argument("--out", required=True, help="output .safetensors (a .json report goes beside it)")
    finalize.add_argument("--float32", action="store_true", help="keep float32 weights (default float16)")
    finalize.set_defaults(func=cmd_finalize)

    serve = sub.add_parser("serve", help="web app and JSON API: upload an image, see the lesion outlined")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine)")
    serve.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    serve.add_argument("--model", help="model file (.safetensors, .pt or .onnx); default: the shipped model")
    serve.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ... (torch backend)")
    serve.add_argument("--backend", choices=["torch", "onnx"], default="torch", help="inference backend")
    serve.add_argument("--max-upload-mb", type=positive_float, default=20.0,
                       help="largest image accepted (default 20)")
    serve.add_argument("--workers", type=int, default=1, help="images segmented at the same time (default 1)")
    serve.add_argument("--queue", type=int, default=32,
                       help="requests admitted at once; more are answered 503 with Retry-After (default 32)")
    serve.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                       help="also answer requests addressed to this host name (repeatable; * for any). By default "
                            "only localhost, 127.0.0.1, ::1 and --host are answered, against DNS rebinding")
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser("demo", help="segment and score the bundled ISIC sample pairs with the shipped model")
    demo.add_argument("--out", default="demo_output", help="output folder (default demo_output)")
    demo.add_argument("--model", help="model file instead of the shipped one")
    demo.add_argument("--train", action="store_true",
                      help="train a small model on 30 sample pairs for a few minutes, score the 10 held out")
    demo.add_argument("--epochs", type=int, help="epochs of --train (default 40)")
    demo.set_defaults(func=cmd_demo)
    return parser


def one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                     line: str | None = None) -> str:
    """Warnings as ``warning: <message>`` lines: they are for users, not for debugging our source."""
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    default_format, warnings.formatwarning = warnings.formatwarning, one_line_warning
    try:
        return args.func(args)
    except USER_ERRORS as err:
        print(f"skinnet {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # an unwritable output folder, a full disk: the file and the reason suffice
        where = f"{err.filename}: " if err.filename else ""
        print(f"skinnet {args.command}: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = default_format


if __name__ == "__main__":
    sys.exit(main())
