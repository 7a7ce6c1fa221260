#!/usr/bin/env bash
# Issue 14's GPU checks, one unattended job: float16 autocast and batches against float32 one image at a time
# (tests/inference/test_gpu_batches.py), end-to-end archive prediction on the GPU, sequential against
# batched and pipelined (benchmarks/archive_prediction.py --device cuda), and which stage of it fails to run in
# parallel on that machine's cores (benchmarks/prediction_stages.py --device cuda).
#
#   scripts/gpu_archive_checks.sh
#
#   IMAGES=200      1024x768 JPEGs the benchmark predicts per run
#   REPEATS=2       timed repeats (after one warm-up round)
#   BATCH=32        images per forward pass in the pipelined rows
#   OUT=DIR         also copy the logs there: gpu_tests.log, gpu_benchmark.md, gpu_stages.md
#   WHEELS=.whl     wheels to install first where packages are missing (e.g. albumentations)
#   PYTHON=python3
# Exits non-zero if the tests fail or the benchmark does not finish.
set -uo pipefail
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then sed -n '2,15p' "$0"; exit 0; fi
cd "$(dirname "$0")/.." || exit 2
PYTHON=${PYTHON:-python3}
. scripts/device_env.sh || exit 2  # wheels the device lacks; PYTHONPATH
logs=${OUT:-runs/gpu_archive_checks}
mkdir -p "$logs"
nvidia-smi -L 2>/dev/null | tee "$logs/gpu_tests.log"
timeout 240 "$PYTHON" -m pytest -q -p no:cacheprovider tests/inference/test_gpu_batches.py 2>&1 | tee -a "$logs/gpu_tests.log"
tests=${PIPESTATUS[0]}
timeout 300 "$PYTHON" benchmarks/archive_prediction.py --device cuda --backend torch --images "${IMAGES:-200}" \
  --repeats "${REPEATS:-2}" --batch-size "${BATCH:-32}" 2>&1 | tee "$logs/gpu_benchmark.md"
bench=${PIPESTATUS[0]}
timeout 200 "$PYTHON" benchmarks/prediction_stages.py --device cuda --backend torch --images 64 \
  --threads "$(nproc)" 2>&1 | tee "$logs/gpu_stages.md"
stages=${PIPESTATUS[0]}
echo "tests exit $tests, benchmark exit $bench, stages exit $stages"
[ "$tests" -eq 0 ] && [ "$bench" -eq 0 ] && [ "$stages" -eq 0 ]
