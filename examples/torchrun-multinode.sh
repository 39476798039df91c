#!/bin/bash
# TinyLlama 1.1B on 2 machines x 8 GPUs without a scheduler: run this script on EACH machine.
#
#   # on the first machine (its address must be reachable from the second one):
#   NODE_RANK=0 HEAD=10.0.0.1 bash examples/torchrun-multinode.sh
#   # on the second machine:
#   NODE_RANK=1 HEAD=10.0.0.1 bash examples/torchrun-multinode.sh
#
# `tinyllama pretrain --gpus 8 --nodes 2` starts torch.distributed.run (torchrun) on this machine
# with a c10d rendezvous at HEAD:PORT; the 16 workers find each other there. Node rank 0 creates
# the run directory, the others wait for it, so RUN (and DATA) must be on a filesystem both
# machines share. Ctrl-C or SIGTERM is forwarded once to the workers: they finish the step, save a
# checkpoint and stop; run the same script again with `resume` (below) to continue.
set -euo pipefail

NODE_RANK=${NODE_RANK:?set NODE_RANK=0 on the first machine and 1 on the second}
HEAD=${HEAD:?set HEAD to the address of the NODE_RANK=0 machine}
PORT=${PORT:-29500}
NODES=${NODES:-2}
GPUS=${GPUS:-8}
RUN=${RUN:-runs/tinyllama-1.1b}
DATA=${DATA:-/data/tinyllama-tokens}
CONFIG=${CONFIG:-examples/tinyllama-1.1b.yaml}

DIST=(--gpus "$GPUS" --nodes "$NODES" --node-rank "$NODE_RANK" --rdzv-endpoint "$HEAD:$PORT")
if [ -f "$RUN/config.yaml" ]; then
  # A run exists: continue it from its newest complete checkpoint (any world size works).
  exec tinyllama resume "$RUN" "${DIST[@]}" "$@"
fi
exec tinyllama pretrain --config "$CONFIG" --data "$DATA" --out "$RUN" "${DIST[@]}" "$@"

# The same with torchrun started by hand (each worker runs the training loop directly):
#   torchrun --nnodes 2 --nproc-per-node 8 --node-rank "$NODE_RANK" \
#       --rdzv-backend c10d --rdzv-endpoint "$HEAD:$PORT" --rdzv-id tinyllama-1.1b \
#       -m tinyllama_cli pretrain --config "$CONFIG" --data "$DATA" --out "$RUN" \
#       --devices 8 --nodes 2 --accelerator cuda
