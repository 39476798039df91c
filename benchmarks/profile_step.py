"""Where the time of one `tinyllama pretrain` step goes on a CPU, per op (torch.profiler).

    PYTHONPATH=. python benchmarks/profile_step.py --precision bf16 --steps 3 \\
        [--preset cpu-bench|cpu-small] [--compile] [--timing-only] [--json out.json]

Builds the `cpu-bench` model (vocab 32000, 6 layers, d 512, seq 512, micro batch 8; or
`cpu-small` at the quickstart's shape: vocab 8192, seq 256, micro batch 8), the
trainer's optimizer (`train.optim.build_optimizer`) and the trainer's step (forward under bf16
autocast, backward, gradient clipping, AdamW), runs `--warmup` steps untimed, then profiles
`--steps` steps. Each aten op's self CPU time is put in one bucket (matmul, attention, norm,
RoPE, SwiGLU, loss, dtype casts, optimizer, allocation/copies, other) by its name and by the
step phase it ran in (`record_function` scopes around forward, backward and the optimizer),
so the table says what share of the step each kind of work takes. Prints the bucket table and
the top ops; `ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16` makes an AMX CPU behave as one with
AVX512-BF16 only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import time
from collections import defaultdict
from contextlib import nullcontext

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from tinyllama_cli.config import PRESETS, Optimizer, Schedule
from tinyllama_cli.hardware import matmul_flags_shown
from tinyllama_cli.model import Llama
from tinyllama_cli.train.distributed import clip_grad_norm
from tinyllama_cli.train.optim import build_optimizer

# (seq_len, micro batch, vocab) per preset: cpu-bench as bench_pretrain.py, cpu-small as
# examples/cpu-small.yaml trains it on the quickstart's 8192-piece tokenizer.
SHAPES = {"cpu-bench": (512, 8, 32000), "cpu-small": (256, 8, 8192)}

# (bucket, substrings of aten op names); the first match wins, so order matters.
BUCKETS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("matmul", ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear", "mkldnn")),
    ("attention", ("attention", "sdpa", "flash")),
    ("norm", ("rms_norm", "rsqrt", "aten::pow", "aten::mean")),
    ("swiglu", ("silu",)),
    (
        "loss",
        ("log_softmax", "logsumexp", "softmax", "nll", "cross_entropy", "exp", "gather", "scatter"),
    ),
    ("casts", ("aten::to", "_to_copy", "aten::type_as")),
    (
        "optimizer",
        (
            "_foreach",
            "adam",
            "lerp",
            "addcmul",
            "addcdiv",
            "aten::sqrt",
            "aten::norm",
            "linalg_vector_norm",
            "clamp",
        ),
    ),
    ("alloc/copy", ("empty", "copy_", "contiguous", "clone", "zero_", "fill_", "zeros", "cat")),
    (
        "rope/elementwise",
        (
            "aten::mul",
            "aten::add",
            "aten::sub",
            "aten::neg",
            "aten::div",
            "aten::slice",
            "aten::narrow",
            "aten::sum",
        ),
    ),
)


def bucket_of(name: str, phase: str, in_cast: bool) -> str:
    """The kind of work an op is: anything under a dtype conversion is a cast (autocast's copies
    show up as aten::copy_ below aten::_to_copy); elementwise ops inside the optimizer's scope
    count as optimizer time; otherwise by its name."""
    if in_cast:
        return "casts"
    if phase == "optimizer" and not any(k in name for k in BUCKETS[0][1]):
        return "optimizer"
    for bucket, keys in BUCKETS:
        if any(k in name for k in keys):
            return bucket
    return "other"


def build(preset: str, compile: bool) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    cfg = dataclasses.replace(PRESETS[preset], vocab_size=SHAPES[preset][2])
    torch.manual_seed(0)
    model = Llama(cfg)
    model.init_weights()
    if compile:
        for i, block in enumerate(list(model.layers)):
            model.layers.register_module(str(i), torch.compile(block))
    optimizer = build_optimizer(model, Optimizer(), Schedule(), torch.device("cpu"))
    return model, optimizer


def build_with_batch(
    args: argparse.Namespace,
) -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.Tensor, torch.Tensor]:
    """The model, its optimizer and one fixed micro batch of random tokens and targets."""
    model, optimizer = build(args.preset, args.compile)
    seq, micro, vocab = SHAPES[args.preset]
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(3, vocab, (micro, seq), generator=gen)
    y = torch.randint(3, vocab, (micro, seq), generator=gen)
    return model, optimizer, x, y


def step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    precision: str,
) -> None:
    """The trainer's step (`train.loop.Trainer.train_step`) with one micro batch, in scopes."""
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    with record_function("phase:forward"), autocast:
        loss = model(x, y)
    with record_function("phase:backward"):
        loss.backward()
    with record_function("phase:optimizer"):
        clip_grad_norm([p for p in model.parameters()], 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def scope_of(event) -> tuple[str, bool]:
    """The outermost `phase:` scope an event ran in ('' if none), and whether it ran inside a
    dtype conversion (aten::_to_copy)."""
    parent, phase, in_cast = event.cpu_parent, "", False
    while parent is not None:
        if parent.name.startswith("phase:"):
            phase = parent.name.split(":", 1)[1]
        in_cast = in_cast or parent.name == "aten::_to_copy"
        parent = parent.cpu_parent
    return phase, in_cast


def profile_steps(args: argparse.Namespace) -> dict:
    model, optimizer, x, y = build_with_batch(args)
    for _ in range(args.warmup):
        step(model, optimizer, x, y, args.precision)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            with record_function("step"):
                step(model, optimizer, x, y, args.precision)
    events = prof.events()
    steps_us = sum(e.cpu_time_total for e in events if e.name == "step")
    buckets: dict[str, float] = defaultdict(float)
    phases: dict[str, float] = defaultdict(float)
    ops: dict[str, float] = defaultdict(float)
    for e in events:
        if (
            not e.name.startswith("aten::")
            and not e.name.startswith("Torch-Compiled")
            and "mkldnn" not in e.name
        ):
            continue
        self_us = e.self_cpu_time_total
        ph, in_cast = scope_of(e)
        buckets[bucket_of(e.name, ph, in_cast)] += self_us
        phases[ph or "other"] += self_us
        ops[e.name] += self_us
    n = args.steps
    return {
        "precision": args.precision,
        "compile": args.compile,
        "steps": n,
        "threads": torch.get_num_threads(),
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", ""),
        "step_ms": steps_us / n / 1e3,
        "buckets_ms": {k: v / n / 1e3 for k, v in sorted(buckets.items(), key=lambda kv: -kv[1])},
        "phases_ms": {k: v / n / 1e3 for k, v in sorted(phases.items(), key=lambda kv: -kv[1])},
        "top_ops_ms": {
            k: v / n / 1e3 for k, v in sorted(ops.items(), key=lambda kv: -kv[1])[: args.top]
        },
    }


def time_steps(args: argparse.Namespace) -> dict:
    """The same steps without the profiler: wall ms per step (median after `--warmup`), and the
    process's minor page faults and peak RSS, for A/B runs of settings outside the code (an
    allocator's environment variables, thread counts) in separate processes."""
    model, optimizer, x, y = build_with_batch(args)
    times = []
    for _ in range(args.warmup + args.steps):
        start = time.perf_counter()
        step(model, optimizer, x, y, args.precision)
        times.append(time.perf_counter() - start)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "precision": args.precision,
        "compile": args.compile,
        "threads": torch.get_num_threads(),
        "step_ms": 1e3 * statistics.median(times[args.warmup :]),
        "all_steps_ms": [round(1e3 * t) for t in times],
        "minor_page_faults": usage.ru_minflt,
        "peak_rss_mib": usage.ru_maxrss / 1024,
    }


def print_report(r: dict) -> None:
    total = r["step_ms"]
    print(
        f"precision {r['precision']}, compile {r['compile']}, threads {r['threads']}, "
        f"ONEDNN_MAX_CPU_ISA={r['onednn_max_cpu_isa'] or '(unset)'}: {total:.1f} ms per step "
        f"(mean of {r['steps']} profiled steps; the profiler adds overhead)"
    )
    for title, key in (("bucket", "buckets_ms"), ("phase", "phases_ms"), ("op", "top_ops_ms")):
        print(f"\n| {title} | ms per step | share of step |\n|---|---|---|")
        for name, ms in r[key].items():
            print(f"| {name} | {ms:.1f} | {100 * ms / total:.1f}% |")


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--preset", choices=sorted(SHAPES), default="cpu-bench")
    p.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--top", type=int, default=15, help="how many ops to list")
    p.add_argument("--compile", action="store_true", help="torch.compile each block (as --compile)")
    p.add_argument(
        "--timing-only", action="store_true", help="no profiler: median wall ms per step only"
    )
    p.add_argument("--json", help="also write the report here")
    args = p.parse_args()
    print(f"CPU flags: {matmul_flags_shown()}")
    if args.timing_only:
        report = time_steps(args)
        print(
            f"precision {report['precision']}, compile {report['compile']}, threads "
            f"{report['threads']}: {report['step_ms']:.0f} ms per step (median of {args.steps} "
            f"after {args.warmup}; all {report['all_steps_ms']}), "
            f"{report['minor_page_faults']:,} minor page faults, "
            f"peak RSS {report['peak_rss_mib']:,.0f} MiB"
        )
    else:
        report = profile_steps(args)
        print_report(report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
