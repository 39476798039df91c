"""Does `pretrain --compile` pay for its compile time? Eager vs compiled, whole runs, side by side.

    PYTHONPATH=. python benchmarks/bench_compile.py --preset cpu-small --steps 60 --repeats 2 \\
        [--precision auto] [--json out.json]

Each side is one whole `tinyllama pretrain` process on the same random tokens (the prepare-data
format), in interleaved order (eager, compiled, compiled, eager, ...), with the same threads and
allocator. The first compiled run starts from an empty inductor cache (what a user's first run
pays); later ones share that cache (every run after it). Reported per side: wall time of the whole
process, seconds to the first logged step (start-up plus, compiled, the compile), and the median
tokens/s of the steps after `--warmup`; then the speed-up per step and the number of steps after
which the compiled run has made up its compile time (cold and warm cache). That break-even is what
decides whether `--compile` may be a default on this machine kind.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pretrain import make_data

from tinyllama_cli.hardware import matmul_flags_shown

# (seq_len, micro batch, vocab): cpu-small as examples/cpu-small.yaml trains it on the quickstart's
# 8192-piece tokenizer; cpu-bench as bench_pretrain.py.
SHAPES = {"cpu-small": (256, 8, 8192), "cpu-bench": (512, 8, 32000)}


def run_side(
    data: Path,
    root: Path,
    preset: str,
    steps: int,
    precision: str,
    compile: bool,
    cache: Path,
    threads: int,
) -> dict:
    """One whole pretrain process; its wall time and its metrics."""
    seq, micro, _ = SHAPES[preset]
    out = root / f"run-{time.time_ns()}"
    cmd = [sys.executable, "-m", "tinyllama_cli", "pretrain", "--data", str(data), "--out"]
    cmd += [str(out), "--model", preset, "--seq-len", str(seq), "--micro-batch-size", str(micro)]
    cmd += ["--global-batch-size", str(micro), "--max-steps", str(steps), "--log-every", "1"]
    cmd += ["--save-every", "1000000", "--eval-every", "0", "--precision", precision]
    cmd += ["--no-tensorboard", "--warmup-steps", "2", "--keep-last", "1", "--num-threads"]
    cmd += [str(threads)]  # fixed: the load-aware default could differ between the sides
    cmd += ["--compile"] if compile else []
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache)}
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"pretrain failed:\n{proc.stderr[-3000:]}")
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    steps_logged = [r for r in records if "tokens_per_sec" in r]
    return {"wall_s": wall, "records": steps_logged}


def summarise(runs: list[dict], warmup: int, tokens_per_step: int) -> dict:
    rates = [statistics.median(r["tokens_per_sec"] for r in x["records"][warmup:]) for x in runs]
    rate = statistics.median(rates)
    return {
        "wall_s": statistics.median(x["wall_s"] for x in runs),
        "first_step_s": statistics.median(x["records"][0]["elapsed_s"] for x in runs),
        "tokens_per_sec": rate,
        "step_s": tokens_per_step / rate,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="cpu-small", choices=sorted(SHAPES))
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--warmup", type=int, default=5, help="logged steps left out of the median")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--precision", default="auto")
    p.add_argument("--json", help="also write results here")
    args = p.parse_args()

    import torch

    seq, micro, vocab = SHAPES[args.preset]
    threads = torch.get_num_threads()
    flags = matmul_flags_shown()
    allocator = "tcmalloc" if "tcmalloc" in os.environ.get("LD_PRELOAD", "") else "glibc malloc"
    print(
        f"{args.preset} (seq {seq}, micro batch {micro}), precision {args.precision}, "
        f"{torch.get_num_threads()} threads, {allocator}, CPU flags: {flags}, torch "
        f"{torch.__version__}; {args.steps} steps per run, {args.repeats} repeats, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    eager, cold, warm = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cache = root / "inductor-cache"
        data = make_data(root, (args.steps + 2) * micro * (seq + 1) * 2, vocab=vocab)
        for r in range(args.repeats):
            for compiled in (False, True) if r % 2 == 0 else (True, False):
                side = eager if not compiled else (warm if cold else cold)
                label = {id(eager): "eager", id(cold): "compiled, cold cache"}.get(
                    id(side), "compiled, warm cache"
                )
                run = run_side(
                    data, root, args.preset, args.steps, args.precision, compiled, cache, threads
                )
                side.append(run)
                print(f"  repeat {r + 1}: {label} {run['wall_s']:.1f} s", flush=True)
    tokens_per_step = seq * micro
    e = summarise(eager, args.warmup, tokens_per_step)
    rows = {"eager": e, "compiled (cold cache)": summarise(cold, args.warmup, tokens_per_step)}
    if warm:
        rows["compiled (warm cache)"] = summarise(warm, args.warmup, tokens_per_step)
    print(
        f"\n| run | wall s ({args.steps} steps) | s to first step | one-off s | tok/s | "
        "x eager per step | break-even step |\n|---|---|---|---|---|---|---|"
    )
    for name, row in rows.items():
        row["speedup"] = row["tokens_per_sec"] / e["tokens_per_sec"]
        # The compiled run's one-off cost, from whole-process wall times (so recompiles for the
        # final validation count too): wall_c = wall_e + overhead - steps * saved_per_step.
        saved = e["step_s"] - row["step_s"]
        row["overhead_s"] = row["wall_s"] - e["wall_s"] + args.steps * saved
        row["break_even_step"] = row["overhead_s"] / saved if saved > 0 else None
        if name == "eager":
            be, overhead = "-", "-"
        else:
            be = f"{row['break_even_step']:.0f}" if saved > 0 else "never"
            overhead = f"{row['overhead_s']:.1f}"
        print(
            f"| {name} | {row['wall_s']:.1f} | {row['first_step_s']:.1f} | {overhead} | "
            f"{row['tokens_per_sec']:,.0f} | {row['speedup']:.2f} | {be} |"
        )
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
