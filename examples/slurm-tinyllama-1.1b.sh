#!/bin/bash
# TinyLlama 1.1B on 2 nodes x 8 GPUs under SLURM, as a chain of time-limited jobs.
# Submit once; each job trains until the time limit approaches, saves, and requeues itself.
#SBATCH --job-name=tinyllama
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64
#SBATCH --time=24:00:00
#SBATCH --signal=TERM@600            # SIGTERM to the job step 10 minutes before the limit: save, stop
#SBATCH --requeue
set -euo pipefail
RUN=runs/tinyllama-1.1b
HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
if [ -f "$RUN/config.yaml" ]; then CMD=(resume "$RUN"); else
  CMD=(pretrain --config examples/tinyllama-1.1b.yaml --data /data/tokens --out "$RUN"); fi
# One `tinyllama` per node; each spawns 8 workers through torch.distributed.run's rendezvous.
srun --kill-on-bad-exit=1 bash -c "tinyllama ${CMD[*]} --nodes 2 --devices 8 --node-rank \$SLURM_NODEID \
    --rdzv-endpoint $HEAD:29500"
# Not finished yet (stopped by the signal)? Queue the next job of the chain.
grep -q "\"step\": 1430512" "$RUN/metrics.jsonl" || scontrol requeue "$SLURM_JOB_ID"
