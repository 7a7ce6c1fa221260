#!/usr/bin/env bash
# One cross-validation fold per SLURM array task, each on its own GPU (see docs/how-to/multi_gpu.md).
#
#   export CONFIG=configs/isic2017_paper.yaml DATA=/data/isic2017 RUN=runs/paper
#   skinnet cv --config "$CONFIG" --data "$DATA" --out "$RUN" --prepare     # split + resize cache, once
#   job=$(sbatch --parsable scripts/cv_slurm_array.sh)
#   sbatch --dependency=afterok:$job --wrap "skinnet cv --config $CONFIG --data $DATA --out $RUN && skinnet report $RUN"
#
# A task that hits its time limit can be resubmitted as it is: --resume continues the fold from last.pt,
# and a finished fold is skipped. Adjust the array to the split's folds (0-4 for train.n_folds: 5).
#SBATCH --job-name=skinnet-cv
#SBATCH --array=0-4
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=32G
#SBATCH --time=12:00:00
#SBATCH --output=skinnet-cv-%A_%a.out
set -euo pipefail
skinnet cv --config "$CONFIG" --data "$DATA" --out "$RUN" --folds "$SLURM_ARRAY_TASK_ID" --resume
