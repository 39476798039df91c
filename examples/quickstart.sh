#!/usr/bin/env bash
# The whole TinyLlama journey on a CPU, from nothing, in 7-10 minutes:
#
#   corpus -> trained tokenizer -> prepare-data -> pretrain (7:3 text:code mix) -> loss curves
#          -> eval with lm-eval, offline -> generate
#
# Usage: bash examples/quickstart.sh [OUT_DIR]      (default: ./quickstart; re-running replaces it)
#
# Set-up is included: a virtual environment in .venv with the CPU build of PyTorch and this
# package. Everything runs from local files; nothing is downloaded but Python packages.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-quickstart}
STEPS=${QUICKSTART_STEPS:-300}

step() { printf '\n\033[1;36m==> %s\033[0m\n' "$*"; }

step "Set-up: .venv with torch 2.13.0 (CPU) and tinyllama"
if [ ! -x .venv/bin/tinyllama ]; then
    python3 -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q torch==2.13.0
    .venv/bin/python -m pip install -q -e ".[dev]"
fi
# shellcheck disable=SC1091
. .venv/bin/activate
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
rm -rf "$OUT"
mkdir -p "$OUT"
T0=$SECONDS

step "1/6 A built-in corpus from the Python standard library (SlimPajama + Starcoderdata layouts)"
tinyllama sample-corpus --out "$OUT/corpus"

step "2/6 Train a 8192-piece Llama-style BPE tokenizer and tokenize both sources"
tinyllama prepare-data slimpajama="$OUT/corpus/slimpajama" starcoder="$OUT/corpus/starcoder" \
    --out "$OUT/data" --train-tokenizer --vocab-size 8192 \
    --exclude-meta redpajama_set_name=RedPajamaGithub --val-fraction 0.02 --workers 2

step "3/6 Pretrain the cpu-small preset (7M parameters) on the 7:3 mix for $STEPS steps"
tinyllama pretrain --config examples/cpu-small.yaml --data "$OUT/data" --out "$OUT/run" \
    --mix slimpajama=0.7,starcoder=0.3 --max-steps "$STEPS" --warmup-steps 30 \
    --eval-every 100 --save-every 100 --log-every 10

step "4/6 Loss, learning-rate and throughput curves"
tinyllama plot "$OUT/run" --out "$OUT/run/curves.png"

step "5/6 Evaluate with lm-eval, offline: held-out perplexity and two multiple-choice tasks"
tinyllama eval "$OUT/run" --tasks wikitext,hellaswag,arc_easy \
    --dataset wikitext="$OUT/corpus/eval/wikitext.jsonl" \
    --dataset hellaswag="$OUT/corpus/eval/hellaswag.jsonl" \
    --dataset arc_easy="$OUT/corpus/eval/arc_easy.jsonl" \
    --limit 200 --output "$OUT/run/eval.json"

step "6/6 Sample from the model"
tinyllama generate "$OUT/run" --prompt "def read_config(path):" --prompt "The module provides" \
    --max-new-tokens 60 --temperature 0.8 --top-k 50 --seed 0

step "Done in $((SECONDS - T0)) s (after set-up). Everything is in $OUT/:"
echo "  corpus/  data/  run/ (config.yaml, metrics.jsonl, checkpoints/, curves.png, eval.json)"
echo "Next: tinyllama resume $OUT/run --max-steps $((STEPS * 2))   # train longer (re-stretches the cosine)"
echo "      tinyllama convert $OUT/run --to hf --out $OUT/hf        # a Hugging Face model"
