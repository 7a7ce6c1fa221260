"""Choose the confidence score and its threshold on a cross-validation run's out-of-fold predictions.

Predicts every image of the run's split with the fold model that did not train on it, scores it (Dice
against the truth, and both confidence scores of skinnet.clinical.confidence), and reports per score the
Spearman correlation with DC, the AUROC for DC below the cut-off, and the threshold with the most poor
images caught within a false-alarm budget (skinnet.evaluation.confidence_oof). Writes
``OUT/confidence_oof.csv`` (one row per image), ``OUT/confidence_oof.json`` and ``OUT/confidence_oof.md``.
``--model M --write-model OUT.safetensors`` also copies the model file M with the recommended score and
threshold in its config, so that predict, serve and the API flag with them.

    python benchmarks/confidence_oof.py --run runs/pretrained --data ../shared/data/isic2017_train \\
        --out runs/pretrained/confidence [--tta on] [--cutoff 0.7] [--max-false-alarm 0.1] \\
        [--model skinnet/weights/skinnet_isic2017.safetensors --write-model OUT.safetensors]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from skinnet.data.atomic import write_json, write_text
from skinnet.data.tables import write_csv
from skinnet.evaluation.confidence_oof import (
    DC_CUTOFF,
    MAX_FALSE_ALARM,
    ROW_FIELDS,
    analyse,
    describe_models,
    markdown_table,
    score_run,
    store_confidence_choice,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="cross-validation run folder (splits.json, fold_K/)")
    parser.add_argument("--data", required=True, help="the data folder the run was trained on")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    parser.add_argument("--tta", choices=["saved", "on", "off"], default="saved",
                        help="flip TTA for the masks scored (saved: each fold model's choice)")
    parser.add_argument("--postprocess", default="saved",
                        help="saved, none, or a comma list of largest_component,fill_holes")
    parser.add_argument("--cutoff", type=float, default=DC_CUTOFF, help="DC below which an outline is poor")
    parser.add_argument("--max-false-alarm", type=float, default=MAX_FALSE_ALARM,
                        help="largest share of good outlines (DC >= cutoff) that the threshold may flag")
    parser.add_argument("--model", help="model file to copy with the recommended confidence settings")
    parser.add_argument("--write-model", help="where to write that copy (.safetensors)")
    args = parser.parse_args(argv)
    if bool(args.model) != bool(args.write_model):
        parser.error("--model and --write-model go together")

    tta = {"saved": None, "on": True, "off": False}[args.tta]
    postprocess = None if args.postprocess == "saved" else [s for s in args.postprocess.split(",") if s != "none"]
    rows, models = score_run(args.run, args.data, device=args.device, tta=tta, postprocess=postprocess,
                             progress=lambda line: print(line, file=sys.stderr))
    if not rows:
        print(f"{args.run}: no out-of-fold image could be scored (no fold_K/best.safetensors?)", file=sys.stderr)
        return 2
    result = analyse(rows, args.cutoff, args.max_false_alarm)
    result.update(run=str(args.run), data=str(args.data), tta=args.tta, postprocess=args.postprocess,
                  models=describe_models(models))
    out = Path(args.out)
    write_csv(out / "confidence_oof.csv", rows, ROW_FIELDS)
    write_json(out / "confidence_oof.json", result)
    table = markdown_table(result)
    write_text(out / "confidence_oof.md", table)
    print(table)
    recommended = result["recommended"]
    print(f"recommended: inference.confidence={recommended['method']} "
          f"inference.confidence_threshold={recommended['threshold']}")
    if args.write_model:
        path = store_confidence_choice(args.model, args.write_model, recommended["method"],
                                       recommended["threshold"])
        print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
