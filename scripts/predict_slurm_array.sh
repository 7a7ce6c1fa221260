#!/usr/bin/env bash
# One shard of an archive prediction per SLURM array task (see docs/how-to/archive_prediction.md).
#
#   export IMAGES=/data/isic_archive OUT=/data/isic_archive_masks      # OUT on a file system every node sees
#   job=$(sbatch --parsable --array=1-16 scripts/predict_slurm_array.sh)
#   sbatch --dependency=afterany:$job --wrap "skinnet merge-shards $OUT/predictions.csv"
#
# The array's size is the number of shards: task K of an array of N tasks predicts --shard K/N, the images
# whose ID hashes to K (stable when files are added). A task that hits its time limit or is preempted is
# resubmitted as it is (sbatch --array=7 ...): it skips the images it finished. A task whose run met bad
# files exits 1 after listing them, hence afterany: the merge then runs and the table marks them failed.
#   PREDICT_OPTIONS="--model best.safetensors --batch-size 32"   more options for skinnet predict
#   WORKERS=4    worker threads per task (decoding and writing beside the network; default 4)
#   SKINNET=...  the command to run (default: skinnet)
#SBATCH --job-name=skinnet-predict
#SBATCH --array=1-16
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=16G
#SBATCH --time=04:00:00
#SBATCH --output=skinnet-predict-%A_%a.out
set -euo pipefail
read -r -a skinnet <<< "${SKINNET:-skinnet}"
read -r -a options <<< "${PREDICT_OPTIONS:-}"
shard=$((SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN + 1))/$SLURM_ARRAY_TASK_COUNT
"${skinnet[@]}" predict "$IMAGES" --out "$OUT" --shard "$shard" --workers "${WORKERS:-4}" "${options[@]}"
