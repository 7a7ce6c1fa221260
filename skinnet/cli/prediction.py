"""``skinnet predict``, ``merge-shards`` and ``export``: segmenting files, archives and shards, and ONNX."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from skinnet.cli.arguments import add_backend_options, backend_of, pixel_spacing, positive_int, report_problems
from skinnet.config import ConfigError


def cmd_predict(args: argparse.Namespace) -> int:
    from skinnet.batch.run import check_batch_size, max_batch_size, predict_files
    from skinnet.batch.shard import Shard, shard_table
    from skinnet.batch.writers import predict_outputs, write_measurements
    from skinnet.devices import resolve_device
    from skinnet.inference.model_spec import ModelSpec

    if args.model and args.run:
        raise ConfigError("--model and --run both given: pass --model for one model file, or --run for the "
                          "ensemble of a cross-validation run's fold models")
    steps = tuple(step for step in args.postprocess.split(",") if step != "none")
    postprocess = None if args.postprocess == "saved" else steps
    tta = {"saved": None, "on": True, "off": False}[args.tta]
    shard = Shard.parse(args.shard) if args.shard is not None else None
    # a sharded run writes its own measurement table too, merged by merge-shards like predictions.csv
    measurements = shard_table(Path(args.measurements), shard) if args.measurements else None
    backend = backend_of(args)
    if args.batch_size:
        check_batch_size(None, args.batch_size)  # the count, before a model is loaded
    batch_size = args.batch_size or (8 if backend == "torch" and resolve_device(args.device).type == "cuda" else 1)
    # with --run, the fold models of a cross-validation run, their probabilities averaged
    spec = ModelSpec(model=args.model, run=args.run, device=args.device, backend=backend, tta=tta,
                     postprocess=postprocess, threads=args.threads, batch_size=batch_size,
                     precision="int8" if args.int8 else None)
    if args.dask:  # a mistyped scheduler or a missing extra fails now, not after the model is loaded
        from skinnet.batch.dask import import_distributed, scheduler_address

        import_distributed()
        scheduler_address(args.dask)
    # the worker threads share the cores: by default each network call gets an equal share of them
    cores = max(1, (os.cpu_count() or 1) // args.workers)
    segmenter = spec.load() if args.threads or args.dask else replace(spec, threads=cores).load()
    if not args.batch_size and batch_size > 1:  # the default batch, within what a large network allows
        batch_size = min(batch_size, max_batch_size(segmenter))
        spec = replace(spec, batch_size=batch_size)
    engine = None
    if args.dask:
        from skinnet.batch.dask import DaskEngine

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
              f"skinnet merge-shards {Path(args.out) / 'predictions.csv'}"
              f"{f' {args.measurements}' if args.measurements else ''}", file=sys.stderr)
    if measurements and report.table is not None:
        rows = write_measurements(report.table, measurements)
        print(f"measurements of {rows} images: {measurements}", file=sys.stderr)
    return report_problems(report.failed)


def cmd_merge_shards(args: argparse.Namespace) -> int:
    from skinnet.batch.merge import merge_shard_tables

    for table in args.tables:
        print(f"{table}: {merge_shard_tables(table)} rows")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from skinnet.inference.model_guard import load_checked
    from skinnet.inference.onnx import export_onnx
    from skinnet.networks.files import ModelFileError
    from skinnet.weights import default_model_path

    path = args.model or default_model_path()
    if path is None:
        raise ModelFileError("no --model given and no shipped model found")
    model, config = load_checked(path)
    if not args.int8:
        print(export_onnx(model, config, args.onnx))
        return 0
    from skinnet.data.samples import SAMPLE_IMAGES
    from skinnet.inference.quantize import CALIBRATION_IMAGES, calibration_images, quantize_onnx

    images, problems = calibration_images(args.calibration or [SAMPLE_IMAGES],
                                          args.calibration_images or CALIBRATION_IMAGES)
    for problem in problems:
        print(f"skipped calibration image {problem}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as scratch:
        float32 = export_onnx(model, config, Path(scratch) / "float32.onnx")
        count = quantize_onnx(float32, args.onnx, images)
    print(f"{args.onnx} (int8, calibrated on {count} images)")
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    add_backend_options(predict)
    predict.add_argument("--threads", type=positive_int,
                         help="CPU threads of each network call, torch or ONNX Runtime (default: the cores "
                              "divided by --workers)")
    predict.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ... (torch backend)")
    predict.add_argument("--strict", action="store_true", help="stop at the first bad file")
    predict.add_argument("--batch-size", type=positive_int,
                         help="images per forward pass (default: 8 on a GPU, 1 on the CPU; at most 4096, and "
                              "as many as 64 GB of the network's activations allow)")
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
                              "needs pip install 'skinnet[cluster]' (docs/how-to/archive_prediction.md)")
    predict.add_argument("--measurements", metavar="CSV",
                         help="write one row per image: every measurement with its unit (mm where the pixel "
                              "spacing is known), the confidence and its flag, the model file and SHA-256; with "
                              "--shard K/N into CSV's shard-K-of-N table (see merge-shards)")
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
                       help="the whole run's table to write, e.g. OUT/predictions.csv or the --measurements CSV: "
                            "merges the OUT/predictions.shard-K-of-N.csv beside it, checking that no shard is "
                            "missing and that all come from one run (one model and options)")
    merge.set_defaults(func=cmd_merge_shards)

    export = sub.add_parser("export", help="export a model to ONNX (dynamic batch and image size)")
    export.add_argument("--model", help="model file (.safetensors or .pt); default: the shipped model")
    export.add_argument("--onnx", required=True, help="output .onnx file")
    export.add_argument("--int8", action="store_true",
                        help="quantise to int8 (about 2x faster on a CPU; the masks change a little: "
                             "docs/how-to/archive_prediction.md)")
    export.add_argument("--calibration", nargs="+", metavar="PATH",
                        help="with --int8: images or folders typical of the inputs, whose activation ranges "
                             "set the quantisation (default: the bundled ISIC sample images)")
    export.add_argument("--calibration-images", type=positive_int, metavar="N",
                        help="with --int8: calibrate on at most N of them, drawn with a fixed seed (default 64)")
    export.set_defaults(func=cmd_export)
