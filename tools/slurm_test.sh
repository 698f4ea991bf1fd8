#!/usr/bin/env bash
# Evaluation on a slurm cluster: tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [options]
# GPUS (default 8), GPUS_PER_NODE (8), CPUS_PER_TASK (5) and SRUN_ARGS tune the allocation.
set -euo pipefail
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
CHECKPOINT=$4
GPUS=${GPUS:-8}
srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"${GPUS_PER_NODE:-8}" \
    --ntasks="$GPUS" \
    --ntasks-per-node="${GPUS_PER_NODE:-8}" \
    --cpus-per-task="${CPUS_PER_TASK:-5}" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS:-} \
    python -u "$(dirname "$0")/test.py" "$CONFIG" "$CHECKPOINT" --launcher slurm "${@:5}"
