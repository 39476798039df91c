"""The output head and loss of one micro batch (forward + backward) on a CPU: tinyllama's fused
linear cross-entropy with its reused buffers, the same with fresh buffers, and the plain loss.

    PYTHONPATH=. python benchmarks/bench_loss.py --precision fp32 --repeats 7 [--json out.json]

Three ways to get the loss of `h @ W.T` and the gradients of h and W, on the same random hidden
states (micro batch x block size of the preset) and the preset's output head:

- "plain": what transformers' LlamaForCausalLM does: the whole logits matrix from the head (under
  autocast at bf16), upcast to fp32, `F.cross_entropy`, autograd for the backward.
- "fused, fresh buffers": `model.linear_cross_entropy` with its large temporaries allocated anew
  on every call (the loss before it kept them).
- "fused, reused buffers": `model.linear_cross_entropy` as the trainer runs it.

Interleaved (plain, fresh, reused, plain, ...), the first call of each left out; reported: the
median ms per call, the minor page faults per call (getrusage: glibc serves blocks over 32 MiB
with a fresh mmap, so each such tensor is faulted in page by page when first written), and
ratios. bf16 only means something on a CPU with native bf16 (the script prints the flags).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from tinyllama_cli import model as model_module
from tinyllama_cli.config import PRESETS
from tinyllama_cli.hardware import matmul_flags_shown


def plain_loss(h: torch.Tensor, w: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    logits = h @ w.t()
    return F.cross_entropy(logits.float().view(-1, w.size(0)), targets.view(-1))


def fused_loss(h: torch.Tensor, w: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return model_module.linear_cross_entropy(h, w, targets)


def fresh_buffers(role, shape, dtype, device):
    """`model._scratch_buffer` without the reuse: a fresh allocation per call."""
    return torch.empty(shape, dtype=dtype, device=device)


def timed_call(
    loss_fn: Callable, h: torch.Tensor, w: torch.Tensor, targets: torch.Tensor, bf16: bool
) -> tuple[float, int]:
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = loss_fn(h, w, targets)
    loss.backward()
    elapsed = time.perf_counter() - start
    h.grad = w.grad = None
    return elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--preset", default="cpu-bench")
    p.add_argument("--micro-batch", type=int, default=8)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    config = PRESETS[args.preset]
    torch.manual_seed(0)
    shape = (args.micro_batch, config.block_size, config.n_embd)
    h = torch.randn(shape, requires_grad=True)
    w = (torch.randn(config.vocab_size, config.n_embd) * 0.02).requires_grad_()
    targets = torch.randint(0, config.vocab_size, shape[:2])
    bf16 = args.precision == "bf16"
    reused = model_module._scratch_buffer
    kinds = {
        "plain": (plain_loss, reused),
        "fused, fresh buffers": (fused_loss, fresh_buffers),
        "fused, reused buffers": (fused_loss, reused),
    }
    times: dict[str, list[float]] = {k: [] for k in kinds}
    faults: dict[str, list[int]] = {k: [] for k in kinds}
    for _ in range(args.repeats + 1):
        for kind, (loss_fn, buffers) in kinds.items():
            model_module._scratch_buffer = buffers
            try:
                elapsed, n_faults = timed_call(loss_fn, h, w, targets, bf16)
            finally:
                model_module._scratch_buffer = reused
            times[kind].append(elapsed)
            faults[kind].append(n_faults)
    ms = {k: statistics.median(v[1:]) * 1e3 for k, v in times.items()}
    minflt = {k: int(statistics.median(v[1:])) for k, v in faults.items()}
    print(
        f"{args.preset} head ({config.vocab_size:,} x {config.n_embd}), micro batch "
        f"{args.micro_batch} x {config.block_size}, {args.precision}, "
        f"{torch.get_num_threads()} threads, CPU flags: "
        f"{matmul_flags_shown()}; median of {args.repeats}\n"
    )
    print("| loss | ms per call | minor page faults | x plain | x fresh |\n|---|---|---|---|---|")
    for kind in kinds:
        print(
            f"| {kind} | {ms[kind]:.1f} | {minflt[kind]:,} | {ms['plain'] / ms[kind]:.2f} | "
            f"{ms['fused, fresh buffers'] / ms[kind]:.2f} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"preset": args.preset, "precision": args.precision, "ms": ms, "faults": minflt},
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
