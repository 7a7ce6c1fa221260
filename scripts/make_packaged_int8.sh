#!/usr/bin/env bash
# Regenerate skinnet/weights/skinnet_isic2017.int8.onnx: the shipped model's int8 copy in the package, which
# `skinnet predict` runs by default on a CPU (and with --precision int8) without quantising anything.
#
#   scripts/make_packaged_int8.sh [TRAIN_DATA]     (default ../shared/data/isic2017_train; run from the repo)
#
# Calibrated on 64 images of the model's own training set, drawn with seed 0 by `skinnet export` itself; the
# 40 bundled sample images are skipped by that draw (they are what tests/inference/test_quantize.py checks the
# copy against float32 on). The file records the command, the seed, the 64 file names and the SHA-256 of
# skinnet/weights/skinnet_isic2017.safetensors in its metadata; a test fails until this is run again after
# the shipped model changes.
set -euo pipefail
data=${1:-../shared/data/isic2017_train}
read -r -a skinnet <<< "${SKINNET:-skinnet}"
"${skinnet[@]}" export --int8 --onnx skinnet/weights/skinnet_isic2017.int8.onnx \
    --calibration "$data/images" --calibration-images 64 --calibration-seed 0
