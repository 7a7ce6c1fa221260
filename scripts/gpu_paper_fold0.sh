#!/usr/bin/env bash
# Issue 10, one unattended GPU job: the paper's configuration at 256 px on fold 0, SkinNet against U-Net
# (and SkinNet without dilation if time allows), sized to a time budget; then the results tables.
#
#   scripts/gpu_paper_fold0.sh [options of scripts/paper_fold0.py (see its --help)] [key=value ...]
#
#   DATA=gpu_job/data       the 2000 ISIC 2017 training pairs (a copy of ../shared/data/isic2017_train)
#   RUN=runs/paper_fold0    run folder (must not hold an earlier run of this job)
#   BUDGET=540              seconds for the whole job; the epochs are sized to fit it
#   SPLIT=FILE              split file (default: the seeded split, the same as runs/cpu/splits.json)
#   OUT=DIR                 also pack the results there: results.md, results.json, job.log and
#                           paper_fold0_results.tar.gz (logs, per-image CSVs, curves; never the weights)
#   EARLIER=DIR             results of an earlier run on the same split (docs/paper_fold0): its networks join
#                           the Wilcoxon tests. The no-dilation row alone, as the earlier run's 29 epochs:
#                           EARLIER=docs/paper_fold0 BUDGET=360 scripts/gpu_paper_fold0.sh --networks nodilation \
#                             train.epochs=29
#   WHEELS=.whl             wheels to install first where packages are missing (e.g. albumentations)
#   PYTHON=python3
# Paths are relative to the repository root. Exits 1 if a network made no validation predictions.
set -uo pipefail
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then sed -n '2,19p' "$0"; exit 0; fi
cd "$(dirname "$0")/.." || exit 2
PYTHON=${PYTHON:-python3}
DATA=${DATA:-gpu_job/data}
RUN=${RUN:-runs/paper_fold0}
RESULTS=$RUN/results
. scripts/device_env.sh || exit 2  # wheels the device lacks; PYTHONPATH
export SKINNET_CACHE=${SKINNET_CACHE:-/tmp/skinnet_cache}
mkdir -p "$RUN"
log=$RUN/job.log
{
  nvidia-smi -L 2>/dev/null
  "$PYTHON" -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda',
                torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
  "$PYTHON" scripts/paper_fold0.py --data "$DATA" --run "$RUN" --budget "${BUDGET:-540}" \
    ${SPLIT:+--split "$SPLIT"} "$@"
  trained=$?
  if [ -f "$RUN/job.json" ]; then  # the results also of a job with a failed network
    "$PYTHON" scripts/paper_fold0_results.py --run "$RUN" --out-dir "$RESULTS" ${EARLIER:+--earlier "$EARLIER"} \
      || exit 3
  fi
  exit "$trained"
} 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  cp "$log" "$OUT/job.log"
  if [ -d "$RESULTS" ]; then
    cp "$RESULTS/results.md" "$RESULTS/results.json" "$OUT/" 2>/dev/null
    tar czf "$OUT/paper_fold0_results.tar.gz" -C "$RUN" results
  fi
fi
exit "$status"
