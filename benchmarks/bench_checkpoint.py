"""How long a checkpoint holds up the training loop: a synchronous save against --async-save.

    PYTHONPATH=$PWD python benchmarks/bench_checkpoint.py [--model tinyllama-120m] [--repeats 3]

One worker on the CPU, the model and its AdamW state in fp32 (what a checkpoint holds: 12 bytes
per parameter), saved with `train.checkpoint.save` and with `train.checkpoint.AsyncCheckpointer`
into the same temporary directory, interleaved, `--repeats` times each:

- sync: the loop waits for the whole save (DCP write, fsync, state.json, rename);
- async, blocked: the loop waits only while DCP stages a copy in host memory;
- async, in background: from the save call until the checkpoint is published (the loop is free
  during it; on a GPU the step runs on the device meanwhile, here on the host it shares the
  cores with the writer thread).

Medians; the CPU flags and the file system are printed with the figures. On a cluster the file
system is usually a network one, slower than this local disk, which makes the difference larger.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch


def build(preset: str) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """The preset's model with AdamW state (one step taken, so both moments exist)."""
    from tinyllama_cli.config import get_preset
    from tinyllama_cli.model import Llama

    model = Llama(get_preset(preset))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    return model, optimizer


def timed_saves(model, optimizer, root: Path, repeats: int) -> dict[str, list[float]]:
    from tinyllama_cli.train import checkpoint
    from tinyllama_cli.train.distributed import World

    world = World(0, 1, 0, torch.device("cpu"), None)
    background = checkpoint.AsyncCheckpointer(root, world, keep_last=1, report=lambda _: None)
    times: dict[str, list[float]] = {"sync": [], "async blocked": [], "async in background": []}
    for i in range(repeats):
        start = time.perf_counter()
        checkpoint.save(root, model, optimizer, {"step": 2 * i + 1}, world, keep_last=1)
        times["sync"].append(time.perf_counter() - start)
        start = time.perf_counter()
        background.save(model, optimizer, {"step": 2 * i + 2})
        times["async blocked"].append(time.perf_counter() - start)
        background.wait()
        times["async in background"].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tinyllama-120m")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--dir", type=Path, default=None, help="where to save (default: a temp dir)"
    )
    args = parser.parse_args()
    from tinyllama_cli.hardware import cpu_flags

    model, optimizer = build(args.model)
    params = sum(p.numel() for p in model.parameters())
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        times = timed_saves(model, optimizer, Path(tmp), args.repeats)
    flags = sorted(f for f in cpu_flags() if f.startswith(("amx", "avx512_bf16", "avx512f")))
    print(
        f"{args.model}: {params:,} parameters, {12 * params / 2**30:.2f} GiB per checkpoint "
        f"(fp32 weights + AdamW moments); CPU flags: {' '.join(flags) or 'none of amx/avx512'}; "
        f"{torch.get_num_threads()} threads; median of {args.repeats}; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    sync = statistics.median(times["sync"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<22}{median:>8.2f} s   ({median / sync:.2f}x sync)")


if __name__ == "__main__":
    main()
