"""`tinyllama pretrain` vs Hugging Face LlamaForCausalLM + a plain AdamW loop, side by side.

    PYTHONPATH=. python benchmarks/bench_pretrain.py --steps 6 --repeats 2 \\
        [--compile] [--json out.json]

Both sides train the `cpu-bench` preset (vocab 32000, 6 layers, d 512, seq 512, micro batch 8,
~50M parameters) on the same random tokens, each in its own subprocess (so peak RSS is per side),
in interleaved order (A B, B A, ...), with the same number of threads and the same allocator (the
one this script is started with: run it under LD_PRELOAD=libtcmalloc_minimal.so.4 to give both
sides tcmalloc). Reported: median tokens/s over steps after `--warmup` steps and over repeats,
MFU against a measured matmul peak, peak RSS, and tinyllama / transformers as a ratio.

Settings compared:
- "default": `tinyllama pretrain` at its default CPU precision (`--precision auto`: bf16 autocast
  where the CPU has AMX / AVX512-BF16, fp32 otherwise) vs transformers in fp32 (target: 2x).
- "fp32": both in fp32 (target: 1.2x).
- "bf16": both under bf16 autocast (only where the CPU has native bf16).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SEQ, MICRO, PRESET = 512, 8, "cpu-bench"
THREADS: int | None = None  # set in main() to torch.get_num_threads()


def make_data(root: Path, tokens: int, seed: int = 0, vocab: int = 32000) -> Path:
    """A one-source token data dir (the prepare-data format) of random ids, no val split."""
    data = root / "data"
    (data / "rand").mkdir(parents=True)
    ids = np.random.default_rng(seed).integers(3, vocab, tokens).astype(np.uint16)
    ids.tofile(data / "rand" / "train-00000.bin")
    manifest = {
        "format_version": 1,
        "dtype": "uint16",
        "tokenizer": {
            "file": "tokenizer.model",
            "sha256": "",
            "vocab_size": vocab,
            "bos_id": 1,
            "eos_id": 2,
        },
        "sources": {
            "rand": {
                "documents": {"train": 1, "val": 0},
                "tokens": {"train": tokens, "val": 0},
                "skipped": {},
                "shards": {
                    "train": [{"file": "rand/train-00000.bin", "tokens": tokens}],
                    "val": [],
                },
            }
        },
    }
    (data / "manifest.json").write_text(json.dumps(manifest))
    return data


_WRAP = (
    "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
    "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
    "file=sys.stderr); "
    "sys.exit(r.returncode)"
)


def run_child(cmd: list[str]) -> tuple[str, float]:
    """Run one side through a small wrapper whose only child it is, so RUSAGE_CHILDREN's peak RSS
    is that side's alone; return its stdout and peak RSS in MiB."""
    proc = subprocess.run(
        [sys.executable, "-c", _WRAP, *cmd], capture_output=True, text=True, check=False
    )
    if proc.returncode:
        raise RuntimeError(f"{cmd[:4]} failed:\n{proc.stderr[-3000:]}")
    rss_kb = int(proc.stderr.strip().splitlines()[-1].split()[-1])
    return proc.stdout, rss_kb / 1024


def tinyllama_side(
    data: Path, root: Path, steps: int, warmup: int, precision: str, compile: bool
) -> dict:
    out = root / f"run-{time.time_ns()}"
    cmd = [
        sys.executable,
        "-m",
        "tinyllama_cli",
        "pretrain",
        "--data",
        str(data),
        "--out",
        str(out),
        "--model",
        PRESET,
        "--seq-len",
        str(SEQ),
        "--micro-batch-size",
        str(MICRO),
        "--global-batch-size",
        str(MICRO),
        "--max-steps",
        str(steps),
        "--log-every",
        "1",
        "--save-every",
        "1000000",
        "--eval-every",
        "0",
        "--precision",
        precision,
        "--no-tensorboard",
        "--warmup-steps",
        "2",
        "--keep-last",
        "1",
        # The same threads as the transformers side, whatever the load-aware default would pick.
        "--num-threads",
        str(os.cpu_count() if THREADS is None else THREADS),
    ] + (["--compile"] if compile else [])
    _, rss = run_child(cmd)
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    rates = [r["tokens_per_sec"] for r in records if "tokens_per_sec" in r][warmup:]
    return {
        "tokens_per_sec": statistics.median(rates),
        "peak_rss_mib": rss,
        "loss": records[-1]["loss"],
    }


def hf_side(steps: int, warmup: int, precision: str) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--hf-worker",
        "--steps",
        str(steps),
        "--warmup",
        str(warmup),
        "--hf-precision",
        precision,
    ]
    out, rss = run_child(cmd)
    result = json.loads(out.strip().splitlines()[-1])
    return {**result, "peak_rss_mib": rss}


def hf_worker(steps: int, warmup: int, precision: str) -> None:
    """transformers' LlamaForCausalLM, the same config, a plain AdamW loop (the peer)."""
    import contextlib

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tinyllama_cli.config import get_preset
    from tinyllama_cli.formats.hf import hf_config_dict

    cfg = get_preset(PRESET)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**hf_config_dict(cfg))).train()
    opt = torch.optim.AdamW(model.parameters(), lr=4e-4, betas=(0.9, 0.95), weight_decay=0.1)
    rng = np.random.default_rng(0)
    rates = []
    for _ in range(steps):
        x = torch.from_numpy(rng.integers(3, 32000, (MICRO, SEQ + 1)))
        t = time.perf_counter()
        ctx = (
            torch.autocast("cpu", dtype=torch.bfloat16)
            if precision == "bf16"
            else contextlib.nullcontext()
        )
        with ctx:
            loss = model(input_ids=x[:, :-1], labels=x[:, :-1]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        rates.append(MICRO * SEQ / (time.perf_counter() - t))
    print(json.dumps({"tokens_per_sec": statistics.median(rates[warmup:]), "loss": float(loss)}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2, help="steps left out of the median")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--compile", action="store_true", help="tinyllama side with --compile")
    p.add_argument(
        "--settings", default="auto", help="comma list of default,fp32,bf16 (auto: what applies)"
    )
    p.add_argument("--json", help="also write results here")
    p.add_argument("--hf-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--hf-precision", default="fp32", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.hf_worker:
        hf_worker(args.steps, args.warmup, args.hf_precision)
        return

    import torch

    from tinyllama_cli.config import get_preset
    from tinyllama_cli.hardware import cpu_peak_flops
    from tinyllama_cli.train.distributed import has_native_bf16_cpu

    global THREADS
    THREADS = torch.get_num_threads()
    bf16 = has_native_bf16_cpu()
    settings = (
        args.settings.split(",")
        if args.settings != "auto"
        else (["default", "fp32", "bf16"] if bf16 else ["fp32"])
    )
    # (tinyllama precision, transformers precision) per setting; "default" == fp32 without bf16
    # hardware.
    pairs = {"default": ("auto", "fp32"), "fp32": ("fp32", "fp32"), "bf16": ("bf16", "bf16")}
    flops = get_preset(PRESET).flops_per_token(SEQ)
    # The trainer's own peak (one core's matmul rate in CPU time x threads), so both MFU columns
    # are against what `tinyllama pretrain` logs.
    peaks = {p: cpu_peak_flops(p, torch.get_num_threads()) for p in ("fp32", "bf16")}
    allocator = "tcmalloc" if "tcmalloc" in os.environ.get("LD_PRELOAD", "") else "glibc malloc"
    print(
        f"cpu-bench (vocab 32000, seq {SEQ}, micro batch {MICRO}), {torch.get_num_threads()} "
        "threads, "
        f"{allocator}, native bf16: {bf16}, steps {args.steps} (median of the last "
        f"{args.steps - args.warmup}), "
        f"repeats {args.repeats}, tinyllama compile: {args.compile}"
    )
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = make_data(root, (args.steps + 2) * MICRO * (SEQ + 1) * 2)
        for setting in settings:
            ours_p, theirs_p = pairs[setting]
            ours, theirs = [], []
            for r in range(args.repeats):
                order = [0, 1] if r % 2 == 0 else [1, 0]  # interleaved: A B, B A, ...
                for side in order:
                    if side == 0:
                        ours.append(
                            tinyllama_side(
                                data, root, args.steps, args.warmup, ours_p, args.compile
                            )
                        )
                    else:
                        theirs.append(hf_side(args.steps, args.warmup, theirs_p))
            eff = "bf16" if (ours_p == "bf16" or (ours_p == "auto" and bf16)) else "fp32"
            row = {
                "setting": setting,
                "tinyllama_precision": eff,
                "transformers_precision": theirs_p,
                "tinyllama_tok_s": statistics.median(o["tokens_per_sec"] for o in ours),
                "transformers_tok_s": statistics.median(t["tokens_per_sec"] for t in theirs),
                "tinyllama_peak_rss_mib": max(o["peak_rss_mib"] for o in ours),
                "transformers_peak_rss_mib": max(t["peak_rss_mib"] for t in theirs),
            }
            row["ratio"] = row["tinyllama_tok_s"] / row["transformers_tok_s"]
            row["tinyllama_mfu"] = row["tinyllama_tok_s"] * flops / peaks[eff]
            row["transformers_mfu"] = row["transformers_tok_s"] * flops / peaks[theirs_p]
            results.append(row)
    print(
        f"\n{'setting':<8} {'precision (ours/theirs)':<24} {'tinyllama tok/s':>16} "
        f"{'transformers tok/s':>19} "
        f"{'ratio':>6} {'MFU ours':>9} {'MFU theirs':>11} {'RSS ours':>9} {'RSS theirs':>11}"
    )
    for r in results:
        print(
            f"{r['setting']:<8} {r['tinyllama_precision'] + '/' + r['transformers_precision']:<24} "
            f"{r['tinyllama_tok_s']:>16,.0f} {r['transformers_tok_s']:>19,.0f} {r['ratio']:>5.2f}x "
            f"{100 * r['tinyllama_mfu']:>8.1f}% {100 * r['transformers_mfu']:>10.1f}% "
            f"{r['tinyllama_peak_rss_mib']:>7,.0f}Mi {r['transformers_peak_rss_mib']:>9,.0f}Mi"
        )
    print(
        f"MFU = {flops / 1e6:.1f} MFLOP/token x tok/s / measured matmul peak "
        f"(fp32 {peaks['fp32'] / 1e9:.0f}, bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s)"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"results": results, "peaks": peaks, "allocator": allocator}, indent=1)
        )


if __name__ == "__main__":
    main()
