#!/usr/bin/env bash
# One-shot job for the lent GPU (run from the repo root):
#   SkinNet folds 1-4 of configs/cpu.yaml into runs/cpu (fold 0 was trained on the CPU and travels in
#   gpu_job/cpu_run), U-Net folds 0-4 of the same config and split into runs/compare/unet, all at once on
#   GPU 0 through scripts/cv_per_gpu.sh; then a CUDA predict with the shipped model. Results go to $OUT.
set -u
T0=$(date +%s)
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
DEADLINE=${DEADLINE:-500}   # seconds after the start at which any training still running is stopped
DATA=${DATA:-gpu_job/data}
CPU_RUN=${CPU_RUN:-gpu_job/cpu_run}
CONFIG=${CONFIG:-configs/cpu.yaml}
read -r -a EXTRA <<< "${EXTRA:-}"
el() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD NO_ALBUMENTATIONS_UPDATE=1 PYTHONUNBUFFERED=1
export SKINNET_CACHE=${SKINNET_CACHE:-/tmp/skinnet_cache}
nvidia-smi -L 2>/dev/null
python3 -c "import sys, torch, albumentations; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" || exit 1
SK="python3 -m skinnet"
mkdir -p runs/cpu runs/compare/unet
cp -r "$CPU_RUN"/. runs/cpu/
cp runs/cpu/splits.json runs/compare/unet/
$SK cv --config "$CONFIG" --data "$DATA" --out runs/cpu --prepare "${EXTRA[@]}" || exit 1
el "cache and split ready"
SKINNET="$SK" GPUS="${GPUS_SKINNET:-0 0 0 0}" FOLDS="1 2 3 4" \
  bash scripts/cv_per_gpu.sh "$CONFIG" "$DATA" runs/cpu "${EXTRA[@]}" > runs/cpu/cv_per_gpu.log 2>&1 &
p1=$!
SKINNET="nice -n 5 $SK" GPUS="${GPUS_UNET:-0 0 0 0 0}" FOLDS="0 1 2 3 4" \
  bash scripts/cv_per_gpu.sh "$CONFIG" "$DATA" runs/compare/unet model.name=unet "${EXTRA[@]}" \
  > runs/compare/unet/cv_per_gpu.log 2>&1 &
p2=$!
running() { kill -0 $p1 2>/dev/null || kill -0 $p2 2>/dev/null; }
while running; do
  sleep 5
  if [ $(( $(date +%s) - T0 )) -gt "$DEADLINE" ]; then el "deadline: stopping training"; pkill -f "skinnet cv"; break; fi
  if (( ($(date +%s) - T0) % 30 < 5 )); then
    el "epochs:" $(for f in runs/cpu/fold_*/log.csv runs/compare/unet/fold_*/log.csv; do
      [ -f "$f" ] && echo -n "${f#runs/}=$(( $(wc -l < "$f") - 1 )) " | sed 's|/log.csv||'; done) \
      "gpu:" $(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null)
  fi
done
wait $p1; r1=$?; wait $p2; r2=$?
el "skinnet cv_per_gpu rc=$r1, unet cv_per_gpu rc=$r2"
tail -n 3 runs/cpu/cv_per_gpu.log runs/compare/unet/cv_per_gpu.log
for f in runs/cpu/fold_*/val_summary.json runs/compare/unet/fold_*/val_summary.json; do echo "$f $(tr -d '\n ' < "$f")"; done
img=$(ls "$DATA"/images/*.jpg | head -1)
$SK predict "$img" --out /tmp/cuda_predict --tta on --device cuda && el "CUDA predict with the shipped model: ok"
python3 - "$OUT" <<'PY'
import sys
from pathlib import Path
from skinnet.networks.files import load_model, save_weights
for k in range(1, 5):
    path = Path(f"runs/cpu/fold_{k}/best.safetensors")
    if path.exists():
        model, config = load_model(path)
        save_weights(Path(sys.argv[1]) / f"fold_{k}.safetensors", model, config, half=True)
PY
tar czf "$OUT/results.tar.gz" --exclude='*.pt' --exclude='best.safetensors' --exclude=tensorboard runs/cpu runs/compare/unet
ls -la "$OUT"; el "done"
