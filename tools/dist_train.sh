#!/usr/bin/env bash
# Distributed training with torchrun: tools/dist_train.sh CONFIG GPUS [train.py options]
# Several machines: set NNODES, NODE_RANK, MASTER_ADDR and PORT on each; PYTHON picks the
# interpreter (default: python). Without CUDA the processes train on CPUs over gloo.
set -euo pipefail
CONFIG=$1
GPUS=$2
"${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --master_port="${PORT:-29500}" \
    --nproc_per_node="$GPUS" \
    "$(dirname "$0")/train.py" "$CONFIG" --launcher pytorch "${@:3}"
