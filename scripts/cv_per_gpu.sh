#!/usr/bin/env bash
# Cross-validation with the folds fanned out over the GPUs of one machine, then pooled and reported.
#
#   scripts/cv_per_gpu.sh CONFIG DATA RUN_DIR [key=value ...]
#
#   GPUS="0 1 2 3"   GPU indices to use (default: every GPU that nvidia-smi lists); an index may repeat:
#                    GPUS="0 0 0 0" trains four folds at once on GPU 0, which pays where a small model leaves
#                    a large GPU mostly idle (e.g. configs/cpu.yaml on an H100)
#   FOLDS="0 1 2"    folds to train (default: every fold of the split)
#   TEST=DIR         also predict this labelled test folder with the fold ensemble in the report
#   SKINNET=...      the command to run (default: skinnet)
#
# Worker i (on GPU GPUS[i]) trains folds i, i+len(GPUS), ... one after another in its own process:
#   CUDA_VISIBLE_DEVICES=<gpu> skinnet cv --folds <its folds> --resume
# Logs go to RUN_DIR/logs/worker<i>_gpu<index>.log. After an interruption, run the same command again:
# finished folds are skipped and an unfinished one continues from its last.pt.
set -euo pipefail
if [ $# -lt 3 ]; then sed -n '2,16p' "$0"; exit 2; fi
config=$1 data=$2 run=$3
shift 3
read -r -a skinnet <<< "${SKINNET:-skinnet}"
read -r -a gpus <<< "${GPUS:-$(nvidia-smi --query-gpu=index --format=csv,noheader | tr '\n' ' ')}"

# 1. The split and the resize cache, once, so that the parallel folds do not all decode the images.
"${skinnet[@]}" cv --config "$config" --data "$data" --out "$run" --prepare "$@"
if [ -z "${FOLDS:-}" ]; then
  FOLDS=$("${PYTHON:-python3}" -c 'import json, sys; print(*range(len(json.load(open(sys.argv[1]))["folds"])))' \
          "$run/splits.json")
fi
read -r -a folds <<< "$FOLDS"

# 2. One process per GPU, each with its share of the folds.
mkdir -p "$run/logs"
pids=()
for i in "${!gpus[@]}"; do
  mine=()
  for j in "${!folds[@]}"; do
    if (( j % ${#gpus[@]} == i )); then mine+=("${folds[j]}"); fi
  done
  if (( ${#mine[@]} == 0 )); then continue; fi
  list=$(IFS=,; echo "${mine[*]}")
  log="$run/logs/worker${i}_gpu${gpus[i]}.log"
  echo "GPU ${gpus[i]}: folds $list (log: $log)"
  CUDA_VISIBLE_DEVICES=${gpus[i]} "${skinnet[@]}" cv --config "$config" --data "$data" --out "$run" \
    --folds "$list" --resume "$@" > "$log" 2>&1 &
  pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
if (( failed )); then
  echo "a fold failed: see $run/logs/; run this script again to resume" >&2
  exit 1
fi

# 3. Every fold is finished, so this only pools them (cv_summary.json, cv_metrics.csv); then Fig. 2 and Table I.
"${skinnet[@]}" cv --config "$config" --data "$data" --out "$run" "$@"
"${skinnet[@]}" report "$run" ${TEST:+--test "$TEST"}
