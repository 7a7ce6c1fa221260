#!/usr/bin/env bash
# Issues 14 and 25's GPU checks, one unattended job: float16 autocast and batches against float32 one image at a
# time (tests/inference/test_gpu_batches.py); end-to-end archive prediction on the GPU with worker processes
# (the network in the main process, masks made on the GPU or the CPU, JPEG drafts), its ceiling (the network
# alone on prepared batches) and the masks' Dice against float32 CPU masks (benchmarks/archive_prediction.py
# --rows processes); the same against one image at a time and worker threads, on fewer images (--rows all);
# and which stage fails to run in parallel on that machine's cores (benchmarks/prediction_stages.py).
#
#   scripts/gpu_archive_checks.sh
#
#   IMAGES=2000      1024x768 JPEGs the process rows predict per run
#   BASE_IMAGES=320  JPEGs of the table with the sequential and thread rows (17 images/s there in issue 14;
#                    0 leaves it out)
#   REPEATS=2        timed repeats (after one warm-up round)
#   BATCH=32         images per forward pass
#   WORKERS=$(nproc) worker processes (and threads) of the batched rows
#   COMPARE=64       images whose masks are compared with float32 CPU masks
#   STAGE_IMAGES=64  images of the stage timings
#   DEVICE=cuda      (cpu: the toy-scale check of this script, tests/scripts/test_gpu_archive_checks.py)
#   MODEL=FILE       model file (default: the shipped model)
#   OUT=DIR          also copy the logs there: gpu_tests.log, gpu_benchmark.md, gpu_benchmark_base.md,
#                    gpu_stages.md
#   WHEELS=.whl      wheels to install first where packages are missing (e.g. albumentations)
#   PYTHON=python3
# Exits non-zero if the tests fail or a benchmark does not finish.
set -uo pipefail
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then sed -n '2,25p' "$0"; exit 0; fi
cd "$(dirname "$0")/.." || exit 2
PYTHON=${PYTHON:-python3}
. scripts/device_env.sh || exit 2  # wheels the device lacks; PYTHONPATH
logs=${OUT:-runs/gpu_archive_checks}
mkdir -p "$logs"
device=${DEVICE:-cuda}
model=()
[ -n "${MODEL:-}" ] && model=(--model "$MODEL")
common=(--device "$device" --backend torch --batch-size "${BATCH:-32}" --workers "${WORKERS:-$(nproc)}" "${model[@]}")
nvidia-smi -L 2>/dev/null | tee "$logs/gpu_tests.log"
timeout 240 "$PYTHON" -m pytest -q -p no:cacheprovider tests/inference/test_gpu_batches.py 2>&1 | tee -a "$logs/gpu_tests.log"
tests=${PIPESTATUS[0]}
timeout 300 "$PYTHON" benchmarks/archive_prediction.py "${common[@]}" --rows processes --draft \
  --images "${IMAGES:-2000}" --repeats "${REPEATS:-2}" --compare-cpu "${COMPARE:-64}" 2>&1 | tee "$logs/gpu_benchmark.md"
bench=${PIPESTATUS[0]}
base=0
if [ "${BASE_IMAGES:-320}" -gt 0 ]; then
  timeout 240 "$PYTHON" benchmarks/archive_prediction.py "${common[@]}" --rows all --images "${BASE_IMAGES:-320}" \
    --repeats 1 2>&1 | tee "$logs/gpu_benchmark_base.md"
  base=${PIPESTATUS[0]}
fi
timeout 200 "$PYTHON" benchmarks/prediction_stages.py --device "$device" --backend torch --images "${STAGE_IMAGES:-64}" \
  --threads "$(nproc)" "${model[@]}" 2>&1 | tee "$logs/gpu_stages.md"
stages=${PIPESTATUS[0]}
echo "tests exit $tests, benchmark exit $bench, base benchmark exit $base, stages exit $stages"
[ "$tests" -eq 0 ] && [ "$bench" -eq 0 ] && [ "$base" -eq 0 ] && [ "$stages" -eq 0 ]
