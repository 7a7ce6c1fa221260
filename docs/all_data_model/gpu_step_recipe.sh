#!/usr/bin/env bash
# Cross-validates the all-data recipe (configs/cpu.yaml with the LR cut at fixed epochs 19 and 27, where fold 0's
# plateau schedule cut it) on folds 1, 3 and 4, three processes on GPU 0; results to $OUT/step.tar.gz.
set -u
T0=$(date +%s)
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
DEADLINE=${DEADLINE:-230}
DATA=${DATA:-gpu_job/data}
read -r -a EXTRA <<< "${EXTRA:-}"
el() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD NO_ALBUMENTATIONS_UPDATE=1 PYTHONUNBUFFERED=1
export SKINNET_CACHE=${SKINNET_CACHE:-/tmp/skinnet_cache}
SK="python3 -m skinnet"
RUN=runs/cpu_step
STEP=(train.schedule=step "train.lr_milestones=[19,27]")
mkdir -p $RUN && cp gpu_job/cpu_run/splits.json $RUN/
$SK cv --config configs/cpu.yaml --data "$DATA" --out $RUN --prepare "${STEP[@]}" "${EXTRA[@]}" 2>&1 | tail -1
el "prepared"
pids=()
for k in ${FOLDS:-1 3 4}; do
  $SK cv --config configs/cpu.yaml --data "$DATA" --out $RUN --folds $k "${STEP[@]}" "${EXTRA[@]}" > $RUN/fold$k.out 2>&1 &
  pids+=($!)
done
while kill -0 "${pids[@]}" 2>/dev/null; do
  sleep 5
  if [ $(( $(date +%s) - T0 )) -gt "$DEADLINE" ]; then el "deadline: stopping"; pkill -f "skinnet cv"; break; fi
done
wait
el "epochs: $(for f in $RUN/fold_*/log.csv; do echo -n "$f=$(( $(wc -l < $f) - 1 )) "; done)"
for f in $RUN/fold_*/val_summary.json; do echo "$f $(tr -d '\n ' < "$f")"; done
tar czf "$OUT/step.tar.gz" --exclude='*.pt' --exclude='*.safetensors' --exclude=tensorboard --exclude=val_predictions $RUN
el done
