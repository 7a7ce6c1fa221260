"""``skinnet predict``, ``merge-shards`` and ``export``: segmenting files, archives and shards, and ONNX."""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skinnet.batch.shard import TABLE
from skinnet.cli.arguments import add_backend_options, pixel_spacing, positive_int, report_problems
from skinnet.config import POSTPROCESS_STEPS, ConfigError

if TYPE_CHECKING:  # the library is imported inside the commands, so that --help does not load torch
    from skinnet.batch.local import Reader
    from skinnet.batch.writers import OutputWriter
    from skinnet.inference.predictor import Predictor


def cmd_predict(args: argparse.Namespace) -> int:
    from skinnet.batch.run import check_batch_size, max_batch_size, predict_files
    from skinnet.batch.shard import Shard, shard_table
    from skinnet.batch.writers import write_measurements
    from skinnet.devices import resolve_device
    from skinnet.inference.model_spec import ModelSpec
    from skinnet.inference.segmenter import choose_runtime
    from skinnet.networks.files import model_path

    if args.model and args.run:
        raise ConfigError("--model and --run both given: pass --model for one model file, or --run for the "
                          "ensemble of a cross-validation run's fold models")
    steps = tuple(step for step in args.postprocess.split(",") if step != "none")
    postprocess = None if args.postprocess == "saved" else steps
    tta = {"saved": None, "on": True, "off": False}[args.tta]
    shard = Shard.parse(args.shard) if args.shard is not None else None
    # a sharded run writes its own measurement table too, merged by merge-shards like predictions.csv
    measurements = shard_table(Path(args.measurements), shard) if args.measurements else None
    from_web = bool(args.stow_to) or any(text.startswith(("http://", "https://")) for text in args.inputs)
    if from_web and args.dask:  # its writers collect the SEG and SR objects to store, in this process's threads
        raise ConfigError("DICOMweb inputs and --stow-to run on this machine: drop --dask")
    if args.batch_size:
        check_batch_size(None, args.batch_size)  # the count, before a model is loaded
    # resolved here, once, so that cluster workers run what the manifest records
    runtime = choose_runtime(None if args.run else model_path(args.model), args.backend,
                             args.precision, args.device)
    if runtime.note:
        print(f"note: {runtime.note}", file=sys.stderr)
    backend = runtime.backend
    on_gpu = backend == "torch" and resolve_device(args.device).type == "cuda"
    batch_size = args.batch_size or (8 if on_gpu else 1)
    # with --run, the fold models of a cross-validation run, their probabilities averaged
    spec = ModelSpec(model=args.model, run=args.run, device=args.device, backend=backend, tta=tta,
                     postprocess=postprocess, threads=args.threads, batch_size=batch_size,
                     precision=runtime.precision)
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
    executor = None  # the local one, of args.workers threads
    if args.dask:
        from skinnet.batch.dask import DaskExecutor

        executor = DaskExecutor(spec, args.dask)
    elif args.workers > 1 and args.executor != "threads" and not from_web:
        # processes: as fast as threads or faster, GPU or CPU
        from skinnet.batch.processes import MIN_IMAGES, ProcessExecutor

        executor = ProcessExecutor(segmenter, spec, args.workers, min_images=MIN_IMAGES)
    writers, reader = predict_writers(args, segmenter)
    if args.jpeg_draft:
        from skinnet.data.io import DraftReader

        if args.overlay or args.measurements or args.uncertainty or args.dicom_seg:
            raise ConfigError("--jpeg-draft decodes JPEGs only as large as the network needs: not with "
                              "--overlay, --measurements, --uncertainty or --dicom-seg, which need the full image")
        members = getattr(segmenter, "members", [segmenter])
        reader = DraftReader(max(member.config.data.image_size for member in members))
    if not args.overwrite:
        explain_recompute(Path(args.out), segmenter, list(writers))
    with contextlib.ExitStack() as stack:
        inputs, web = args.inputs, None
        if from_web:
            web = stack.enter_context(dicomweb_run(args))
            inputs = web.inputs
            writers, reader = web.outputs(segmenter, writers, args.overlay, args.probability)
            for line in web.skipped:
                print(line, file=sys.stderr)
        started = time.perf_counter()
        report = predict_files(segmenter, inputs, args.out, with_overlay=args.overlay,
                               with_probability=args.probability, strict=args.strict, resume=not args.overwrite,
                               shard=shard, batch_size=batch_size, workers=args.workers, executor=executor,
                               progress={"auto": None, "on": True, "off": False}[args.progress], writers=writers,
                               reader=reader)
        seconds = time.perf_counter() - started
        stored = web.store(args.out) if web is not None and args.stow_to else None
    for path in report.written:
        print(path)
    per_image = seconds / max(len(report.written), 1)
    print(f"{len(report.written)} masks written to {args.out} in {seconds:.2f} s ({per_image:.3f} s per image, "
          f"{segmenter.runtime})", file=sys.stderr)
    if stored is not None:
        print(f"{stored} SEG and SR instances stored at {args.stow_to} (STOW-RS)", file=sys.stderr)
    if report.skipped:
        print(f"{len(report.skipped)} images already done by a run of the same model and options: skipped "
              "(--overwrite recomputes them)", file=sys.stderr)
    if report.table is not None and shard is not None:
        print(f"shard {shard.index}/{shard.count}: table {report.table}; once every shard is done: "
              f"skinnet merge-shards {Path(args.out) / TABLE}"
              f"{f' {args.measurements}' if args.measurements else ''}", file=sys.stderr)
    if measurements and report.table is not None:
        rows = write_measurements(report.table, measurements)
        print(f"measurements of {rows} images: {measurements}", file=sys.stderr)
    return report_problems(report.failed)


def predict_writers(args: argparse.Namespace, predictor: Predictor) -> tuple[list[OutputWriter], Reader]:
    """The writers of ``predict``'s outputs, the mask last, and the reader of its inputs.

    Raises:
        ConfigError: ``--pixel-spacing`` without a measurement table to scale.
    """
    from skinnet.batch.writers import DicomSegWriter, FindingsWriter, read_seg_source, standard_writers
    from skinnet.clinical.findings import ModelInfo
    from skinnet.data.io import read_image, read_source

    findings = bool(args.measurements) or args.uncertainty
    if args.pixel_spacing is not None and not findings:
        raise ConfigError("--pixel-spacing only scales the measurement table: add --measurements FILE.csv")
    *extras, mask = standard_writers(args.overlay, args.probability)
    if findings:
        extras.append(FindingsWriter(predictor, args.pixel_spacing, args.uncertainty))
    if args.dicom_seg:
        extras.append(DicomSegWriter(ModelInfo.of(predictor)))
    # a SEG references a DICOM image, so its run refuses other inputs; findings read a DICOM file's spacing
    reader = read_seg_source if args.dicom_seg else read_source if findings else read_image
    return [*extras, mask], reader


def dicomweb_run(args: argparse.Namespace) -> Any:
    """The DICOMweb inputs and ``--stow-to`` of a predict run (:class:`skinnet.node.dicomweb.DicomWebRun`)."""
    from skinnet.extras import require

    require("dicomweb_client", "node", "DICOMweb input and --stow-to")
    from skinnet.node.config import read_token
    from skinnet.node.dicomweb import DicomWebRun

    return DicomWebRun(args.inputs, args.stow_to, read_token(args.token_file))


def runtime_named(inference: object) -> str:
    """``"onnx int8"`` from a manifest's ``inference`` record (a segmenter's or an ensemble's describe())."""
    if not isinstance(inference, dict):
        return "?"
    members = inference.get("ensemble") or [inference]
    backends = {"TorchEngine": "torch", "OnnxModel": "onnx"}
    names = [f"{backends.get(str(m.get('engine')), m.get('engine'))} {m.get('precision')}" for m in members
             if isinstance(m, dict)]
    return ";".join(dict.fromkeys(names)) or "?"


def explain_recompute(out: Path, predictor: Any, writers: list[Any]) -> None:
    """Say why a folder an earlier run made with another backend or precision is predicted again."""
    from skinnet.batch.manifest import read_manifest, run_identity, run_key

    old = read_manifest(out)
    identity = run_identity(predictor, writers)
    if not old or identity is None or old.get("key") == run_key(identity):
        return
    before, now = runtime_named(old.get("inference")), runtime_named(identity["inference"])
    if before != now:
        print(f"note: {out} was predicted with {before}, this run uses {now}: its images are predicted again "
              f"(to resume it as it was made, pass {runtime_options(before)})", file=sys.stderr)


def runtime_options(runtime: str) -> str:
    """The options that ask for a runtime such as ``"torch float32"``."""
    backend, _, precision = runtime.partition(" ")
    if precision == "int8":
        return "--precision int8"
    if backend == "onnx":
        return "--backend onnx --precision float32"
    return "--backend torch"


def cmd_merge_shards(args: argparse.Namespace) -> int:
    from skinnet.batch.merge import merge_shard_tables

    for table in args.tables:
        print(f"{table}: {merge_shard_tables(table)} rows")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from skinnet.inference.onnx import export_onnx
    from skinnet.networks.files import load_model, model_path

    path = model_path(args.model)  # by default the shipped model
    calibration_options = [name for name, value in (("--calibration", args.calibration),
                                                    ("--calibration-images", args.calibration_images),
                                                    ("--calibration-seed", args.calibration_seed))
                           if value is not None]
    if calibration_options and not args.int8:
        raise ConfigError(f"{', '.join(calibration_options)}: only with --int8 (calibration sets the int8 copy's "
                          "ranges); add --int8, or leave it out for a float32 export")
    model, config = load_model(path)
    if not args.int8:
        print(export_onnx(model, config, args.onnx))
        return 0
    from skinnet.data.atomic import file_sha256
    from skinnet.data.samples import SAMPLE_IMAGES
    from skinnet.inference.onnx import scratch_folder
    from skinnet.inference.quantize import (
        AGREEMENT_WARNING,
        CALIBRATION_IMAGES,
        calibration_images,
        calibration_set,
        mask_agreement,
        quantize_onnx,
    )
    from skinnet.version import __version__

    inputs = args.calibration or [SAMPLE_IMAGES]
    seed, count = args.calibration_seed or 0, args.calibration_images or CALIBRATION_IMAGES
    # the bundled samples check the copy below, so they never calibrate it unless they are all there is
    exclude = sorted(SAMPLE_IMAGES.glob("*.jpg")) if args.calibration else []
    images, used, problems = calibration_set(inputs, count, seed, exclude)
    for problem in problems:
        print(f"skipped calibration image {problem}", file=sys.stderr)
    if not images:
        raise ConfigError(f"no usable calibration image among the {len(problems)} drawn from "
                          f"{', '.join(map(str, inputs))}: int8 calibration needs a few dozen typical images")
    out = Path(args.onnx)
    with scratch_folder(out.absolute().parent) as scratch:
        float32 = export_onnx(model, config, scratch / "float32.onnx")
        command = ["skinnet", "export", "--int8", "--onnx", str(args.onnx)]
        command += ["--model", str(args.model)] if args.model else []
        command += ["--calibration", *map(str, args.calibration)] if args.calibration else []
        command += ["--calibration-images", str(count), "--calibration-seed", str(seed)]
        count = quantize_onnx(float32, out, images, weights_sha256=file_sha256(path),
                              calibration={"seed": seed, "requested": count, "files": [file.name for file in used],
                                           "command": shlex.join(command), "skinnet": __version__})
        checked, _ = calibration_images([SAMPLE_IMAGES], count=8)
        agreement = mask_agreement(float32, out, checked)
    print(f"{args.onnx} (int8, calibrated on {count} images; masks agree with float32 at mean Dice "
          f"{agreement:.3f} on 8 bundled samples)")
    if agreement < AGREEMENT_WARNING:
        print(f"warning: {args.onnx}: its masks agree with float32's only at mean Dice {agreement:.3f} on the "
              "bundled samples (the shipped model's copy: 0.98): calibrate on more images typical of the inputs",
              file=sys.stderr)
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    predict = sub.add_parser("predict", help="segment images; writes <id>_segmentation.png")
    predict.add_argument("inputs", nargs="+", metavar="INPUT",
                         help="image files or folders, or DICOMweb study or series URLs "
                              "(http://pacs/dicom-web/studies/UID[/series/UID]: retrieved by WADO-RS, each "
                              "image's SEG and SR measurement report written beside its mask)")
    predict.add_argument("--out", required=True, help="output folder")
    predict.add_argument("--model", help="model file (.safetensors, .pt or .onnx); default: the shipped model")
    predict.add_argument("--run", help="cross-validation run folder: average its fold models (an ensemble)")
    predict.add_argument("--overlay", action="store_true", help="also write <id>_overlay.png")
    predict.add_argument("--probability", action="store_true", help="also write <id>_probability.png (0-255)")
    predict.add_argument("--tta", choices=["saved", "on", "off"], default="saved",
                         help="flip test-time augmentation (4x the compute); saved = the model's own choice")
    predict.add_argument("--postprocess", default="saved",
                         help="saved (the model's own choice), none, or a comma list of "
                              f"{','.join(POSTPROCESS_STEPS)}")
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
                         help="workers that each take a batch from file to outputs, so that decoding and writing "
                              "overlap with the network (default 2; 1: one image after another)")
    predict.add_argument("--executor", choices=["auto", "processes", "threads"], default="auto",
                         help="processes: the workers are processes, each with its own model, or on a GPU sharing "
                              "this process's (runs of fewer than 200 images, --strict, --measurements, "
                              "--uncertainty, DICOMweb inputs and --stow-to use threads); threads: worker "
                              "threads in this process; auto: processes (docs/results/speed.md measures both)")
    predict.add_argument("--jpeg-draft", action="store_true",
                         help="decode JPEGs only as large as the network input needs (Pillow draft: 2-4x less "
                              "decoding for large photographs; masks agree with full decoding at mean DC 0.998; "
                              "not with --overlay or clinical outputs)")
    predict.add_argument("--overwrite", action="store_true",
                         help="recompute every image (by default, images whose outputs a run of the same model "
                              "files and options finished are skipped)")
    predict.add_argument("--shard", metavar="K/N",
                         help="predict only shard K of N, chosen by a hash of each image ID (stable when files "
                              f"are added); its table is {Path(TABLE).stem}.shard-K-of-N.csv (see merge-shards)")
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
    predict.add_argument("--stow-to", metavar="URL",
                         help="store each image's DICOM SEG and SR measurement report at this DICOMweb service "
                              "by STOW-RS (e.g. http://pacs:8042/dicom-web; DICOM inputs only)")
    predict.add_argument("--token-file", metavar="FILE",
                         help="a file holding a bearer token for the DICOMweb service (default: "
                              "$SKINNET_DICOMWEB_TOKEN, if set)")
    predict.add_argument("--progress", choices=["auto", "on", "off"], default="auto",
                         help="progress bar: images/s, ETA, failed files (auto: on a terminal only)")
    predict.set_defaults(func=cmd_predict)

    merge = sub.add_parser("merge-shards", help="combine the per-shard tables of a sharded predict run")
    merge.add_argument("tables", nargs="+", metavar="TABLE",
                       help=f"the whole run's table to write, e.g. OUT/{TABLE} or the --measurements CSV: "
                            f"merges the OUT/{Path(TABLE).stem}.shard-K-of-N.csv beside it, checking that no "
                            "shard is missing and that all come from one run (one model and options)")
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
    export.add_argument("--calibration-seed", type=int, metavar="SEED",
                        help="with --int8: the seed of that draw (default 0); recorded in the file's metadata")
    export.set_defaults(func=cmd_export)
