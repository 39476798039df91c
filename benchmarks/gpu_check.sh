#!/usr/bin/env bash
# The CUDA path, checked on the machine it is for: one GPU (two when there are), a few steps of
# tinyllama-120m and tinyllama-1.1b in bf16, flash-attn (when installed) against SDPA, with and
# without --compile. Prints, per run: tokens/s, MFU, peak GPU memory against `tinyllama plan`'s
# estimate, and the loss difference between the two attention backends; then 2-GPU FSDP against
# 1 GPU when a second GPU is there. Everything it needs is made here (random token data, no
# network). Budget: ~5 minutes on an H100/H200 (compiles included).
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]        (default: /tmp/tinyllama-gpu-check)
#
# Set STEPS (default 12) and MODELS (default "tinyllama-120m tinyllama-1.1b") to change the size.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/tinyllama-gpu-check}
STEPS=${STEPS:-12}
MODELS=${MODELS:-"tinyllama-120m tinyllama-1.1b"}
PY=${PYTHON:-python}
mkdir -p "$OUT"

$PY - <<'EOF'
import torch, sys
if not torch.cuda.is_available():
    sys.exit("gpu_check: no CUDA device visible to torch; run this on a GPU machine")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}")
try:
    import flash_attn
    print(f"flash-attn {flash_attn.__version__}")
except ImportError:
    print("flash-attn: not installed (pip install 'tinyllama-cli[gpu]'); the flash rows are skipped")
EOF

# Random tokens in the prepare-data format: 2 sources, enough for STEPS x 1M-token steps.
$PY - "$OUT/data" <<'EOF'
import json, sys
from pathlib import Path
import numpy as np
data = Path(sys.argv[1])
if not (data / "manifest.json").exists():
    sources = {}
    for name, n in (("slimpajama", 48 << 20), ("starcoder", 24 << 20)):
        (data / name).mkdir(parents=True, exist_ok=True)
        np.random.default_rng(len(name)).integers(3, 32000, n, dtype=np.uint16).tofile(data / name / "train-00000.bin")
        sources[name] = {"documents": {"train": 1, "val": 0}, "tokens": {"train": n, "val": 0}, "skipped": {},
                         "shards": {"train": [{"file": f"{name}/train-00000.bin", "tokens": n}], "val": []}}
    (data / "manifest.json").write_text(json.dumps({"format_version": 1, "dtype": "uint16", "sources": sources,
        "tokenizer": {"file": "tokenizer.model", "sha256": "", "vocab_size": 32000, "bos_id": 1, "eos_id": 2}}))
EOF

FLASH=$($PY -c "import importlib.util as u; print('flash' if u.find_spec('flash_attn') else '')")
run() {  # run NAME MODEL ATTENTION COMPILE(0|1) DEVICES
    local name=$1 model=$2 attention=$3 compile=$4 devices=$5
    local micro=8; [ "$model" = tinyllama-1.1b ] && micro=4
    local flags=(--data "$OUT/data" --out "$OUT/$name" --overwrite --model "$model" --vocab-size 32000
                 --seq-len 2048 --micro-batch-size "$micro" --global-batch-size $((micro * 2))
                 --max-steps "$STEPS" --warmup-steps 2 --log-every 1 --save-every 100000 --eval-every 0
                 --precision bf16 --attention "$attention" --no-tensorboard --mix slimpajama=0.7,starcoder=0.3)
    [ "$compile" = 1 ] && flags+=(--compile)
    if [ "$devices" -gt 1 ]; then flags+=(--gpus "$devices"); else flags+=(--accelerator cuda); fi
    tinyllama pretrain "${flags[@]}" > "$OUT/$name.log" 2>&1 || { echo "$name FAILED:"; tail -20 "$OUT/$name.log"; return 1; }
}

for model in $MODELS; do
    for attention in sdpa $FLASH; do
        for compile in 0 1; do
            run "$model-$attention-c$compile" "$model" "$attention" "$compile" 1
        done
    done
done
NGPU=$($PY -c "import torch; print(torch.cuda.device_count())")
if [ "$NGPU" -ge 2 ]; then
    run "tinyllama-120m-${FLASH:-sdpa}-c0-fsdp2" tinyllama-120m "${FLASH:-sdpa}" 0 2
fi

$PY - "$OUT" "$STEPS" <<'EOF'
import json, statistics, subprocess, sys
from pathlib import Path
out, steps = Path(sys.argv[1]), int(sys.argv[2])

def records(run):
    return [json.loads(l) for l in (out / run / "metrics.jsonl").read_text().splitlines()]

def plan_gib(model, micro):
    p = subprocess.run(["tinyllama", "plan", "--model", model, "--gpus", "1", "--gpu", "h100", "--micro-batch",
                        str(micro), "--json"], capture_output=True, text=True, check=True)
    memory = json.loads(p.stdout).get("memory") or {}
    # The planner counts the CUDA context/NCCL overhead in; torch's peak does not see it.
    return (memory["total"] - memory["overhead"]) / 2**30 if memory else None

runs = sorted(p.name for p in out.iterdir() if (p / "metrics.jsonl").is_file())
print(f"\n{'run':<34}{'tok/s':>10}{'MFU':>8}{'peak GiB':>10}{'plan GiB':>10}  loss@{steps}"
      "   (plan: its estimate without the fixed CUDA/NCCL overhead)")
base = {}
for run in runs:
    r = records(run)
    steady = r[min(3, len(r) - 1):]  # after warm-up and compile
    tps = statistics.median(x["tokens_per_sec"] for x in steady)
    mfu = statistics.median(x["mfu"] for x in steady)
    peak = max((x.get("peak_mem_gib") or 0) for x in r)
    model = run.split("-")[0] + "-" + run.split("-")[1]
    est = plan_gib(model, 4 if "1.1b" in run else 8)
    print(f"{run:<34}{tps:>10,.0f}{100 * mfu:>7.1f}%{peak:>10.2f}{(est or float('nan')):>10.2f}  {r[-1]['loss']:.4f}")
    base.setdefault(run.rsplit("-", 2)[0], {})[run] = [x["loss"] for x in r]
print("\nloss difference between attention backends (max |flash - sdpa| over the steps, same compile):")
for model_runs in base.values():
    for run, losses in model_runs.items():
        if "-flash-" in run:
            other = run.replace("-flash-", "-sdpa-")
            if other in model_runs:
                diff = max(abs(a - b) for a, b in zip(losses, model_runs[other]))
                print(f"  {run} vs {other}: {diff:.2e}")
fsdp = [r for r in runs if r.endswith("fsdp2")]
for run in fsdp:
    single = run.replace("-fsdp2", "")
    if single in runs:
        a, b = records(run), records(single)
        print(f"\n2-GPU FSDP vs 1 GPU ({single}): max |loss diff| "
              f"{max(abs(x['loss'] - y['loss']) for x, y in zip(a, b)):.2e}")
EOF
