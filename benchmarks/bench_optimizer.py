"""The AdamW step on a CPU: torch's default (a per-parameter loop), foreach, and fused.

    PYTHONPATH=. python benchmarks/bench_optimizer.py --repeats 7 [--json out.json]

One `torch.optim.AdamW` per implementation over the same `cpu-bench` parameters (~50M, fp32)
with the same random gradients, TinyLlama's settings (betas 0.9/0.95, weight decay 0.1), stepped
in interleaved order (for-loop, foreach, fused, for-loop, ...) so that a machine shared with
other jobs slows them alike. The first step of each (it allocates the moment buffers) is left
out. Reported: the median wall ms per step and each one's speed-up over the for-loop default.
`train/optim.py` picks the implementation this measures fastest; all three compute the same
update to fp32 rounding.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from tinyllama_cli.config import PRESETS
from tinyllama_cli.hardware import matmul_flags_shown
from tinyllama_cli.model import Llama

KINDS = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--preset", default="cpu-bench")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    torch.manual_seed(0)
    model = Llama(PRESETS[args.preset])
    params = list(model.parameters())
    for param in params:
        param.grad = torch.randn_like(param) * 1e-3
    optimizers = {
        k: torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, **kw)
        for k, kw in KINDS.items()
    }
    times: dict[str, list[float]] = {k: [] for k in KINDS}
    for _ in range(args.repeats + 1):
        for kind, opt in optimizers.items():
            start = time.perf_counter()
            opt.step()
            times[kind].append(time.perf_counter() - start)
    medians = {k: statistics.median(v[1:]) * 1e3 for k, v in times.items()}
    n = sum(p.numel() for p in params)
    print(
        f"{args.preset}: {n:,} parameters, {torch.get_num_threads()} threads, "
        f"CPU flags: {matmul_flags_shown()}; median of "
        f"{args.repeats} steps each\n"
    )
    print("| AdamW | ms per step | x for-loop |\n|---|---|---|")
    for kind, ms in medians.items():
        print(f"| {kind} | {ms:.1f} | {medians['for-loop'] / ms:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"preset": args.preset, "parameters": n, "ms_per_step": medians}, f, indent=1)


if __name__ == "__main__":
    main()
