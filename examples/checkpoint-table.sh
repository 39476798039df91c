#!/usr/bin/env bash
# Reproduce TinyLlama's intermediate-checkpoint table for a run: every checkpoint of RUN_DIR on
# the seven commonsense tasks (0-shot; acc_norm for hellaswag, obqa, arc_c, arc_e, piqa; acc for
# winogrande, boolq), the average, tokens seen per row, as a table, JSON, CSV and one PNG per task.
#
# Usage: bash examples/checkpoint-table.sh RUN_DIR [DATA_DIR]
#   DATA_DIR (optional, for clusters without network): local files in the hub schemas, named
#   hellaswag.jsonl, openbookqa.jsonl, winogrande.jsonl, arc_challenge.jsonl, arc_easy.jsonl,
#   boolq.jsonl, piqa.jsonl (or .parquet): the split each task scores (see docs/eval.md).
# Environment: TASKS (default tinyllama), BATCH_SIZE (default 32), LIMIT (samples per task), DEVICE.
set -euo pipefail
RUN_DIR=${1:?usage: bash examples/checkpoint-table.sh RUN_DIR [DATA_DIR]}
DATA_DIR=${2:-}

args=(--tasks "${TASKS:-tinyllama}" --num-fewshot 0 --all-checkpoints --batch-size "${BATCH_SIZE:-32}"
      --series-dir "$RUN_DIR/eval" --output "$RUN_DIR/eval/checkpoint-results.json" --overwrite)
[ -n "${LIMIT:-}" ] && args+=(--limit "$LIMIT")
[ -n "${DEVICE:-}" ] && args+=(--device "$DEVICE")
if [ -n "$DATA_DIR" ]; then
    for task in hellaswag openbookqa winogrande arc_challenge arc_easy boolq piqa; do
        for ext in jsonl parquet; do
            if [ -f "$DATA_DIR/$task.$ext" ]; then args+=(--dataset "$task=$DATA_DIR/$task.$ext"); break; fi
        done
    done
fi
tinyllama eval "$RUN_DIR" "${args[@]}"
