"""CPU figures that must not move with the machine's load: the MFU peak and the thread default.

    PYTHONPATH=$PWD python benchmarks/bench_cpu_load.py [--repeats 3] [--json out.json]

Two questions, each answered on a quiet machine and with one and two other processes burning a
core each (`python -c "while True: pass"`, the "hogs"), in one run:

1. The CPU peak behind the trainer's MFU. Before: the best of three 768^3 matmuls timed on the
   wall clock with all threads (what a busy machine slows down, so MFU read 150%). Now:
   `hardware.cpu_peak_flops`, one core's best rate in that thread's CPU time x threads. Reported:
   min / median / max over --repeats fresh processes per load, at fp32 and bf16.
2. Threads of `tinyllama generate` and `tinyllama eval`: PyTorch's default (one per core,
   `--threads N` with N = cores), one thread, and the new default (the idle cores,
   `hardware.default_cpu_threads`). Generation: greedy, 8 prompts batched and 1 prompt, 64 new
   tokens on a cpu-small-shaped model (random weights; speed does not depend on them). Eval:
   hellaswag-style multiple choice from `tinyllama sample-corpus`, 60 documents. Medians of
   --repeats interleaved runs; the ratio column is new default / PyTorch's default.

Everything runs through the `tinyllama` CLI in subprocesses, so the thread choice happens
exactly as for a user. Prints the CPU's model name and bf16 flags first.
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
from contextlib import contextmanager
from pathlib import Path

LOADS = {"quiet": 0, "1 hog": 1, "2 hogs": 2}

_OLD_PEAK = """
import math, time, torch
n = 768
for dtype in (torch.float32, torch.bfloat16):
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = math.inf
    for _ in range(3):
        t = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t)
    print(2 * n**3 / best)
"""
_NEW_PEAK = """
import torch
from tinyllama_cli.hardware import cpu_peak_flops
for precision in ("fp32", "bf16"):
    print(cpu_peak_flops(precision, torch.get_num_threads()))
"""


def cpu_description() -> str:
    model, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == "unknown CPU":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    bf16 = [f for f in ("amx_bf16", "avx512_bf16", "avx512f", "avx2") if f in flags]
    shown = " ".join(bf16) or "none of amx_bf16/avx512_bf16/avx512f/avx2"
    return f"{model}, {os.cpu_count()} CPUs, flags: {shown}"


@contextmanager
def hogs(n: int):
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    time.sleep(0.5 if n else 0)
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def python(code: str, env: dict | None = None) -> list[float]:
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    )
    return [float(x) for x in out.stdout.split()]


def tinyllama(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "tinyllama_cli", *args, "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout)


def make_model(root: Path) -> tuple[Path, Path]:
    """A cpu-small-shaped native model dir with a tokenizer trained on the built-in corpus,
    and the corpus's hellaswag file."""
    import torch

    from tinyllama_cli.config import get_preset
    from tinyllama_cli.formats.native import save_native
    from tinyllama_cli.model import Llama
    from tinyllama_cli.tokenizer import Tokenizer, train_tokenizer

    subprocess.run(
        [
            sys.executable,
            "-m",
            "tinyllama_cli",
            "sample-corpus",
            "--out",
            str(root / "corpus"),
            "--tokens-target",
            "300000",
        ],
        check=True,
        capture_output=True,
    )
    import zstandard

    texts = []
    for f in sorted((root / "corpus" / "slimpajama").rglob("*.zst")):
        for line in (
            zstandard.ZstdDecompressor().stream_reader(f.open("rb")).read().decode().splitlines()
        ):
            texts.append(json.loads(line)["text"])
    train_tokenizer(texts, 4096, root / "tok.model", num_threads=2)
    torch.manual_seed(0)
    model = Llama(get_preset("cpu-small").replace(vocab_size=4096))
    save_native(model, root / "model", Tokenizer(root / "tok.model"))
    return root / "model", root / "corpus" / "eval" / "hellaswag.jsonl"


def peak_rows(repeats: int) -> list[dict]:
    rows = []
    for load, n in LOADS.items():
        old, new = [], []
        with hogs(n):
            for _ in range(repeats):
                old.append(python(_OLD_PEAK))
                new.append(python(_NEW_PEAK))
        for i, precision in enumerate(("fp32", "bf16")):
            for method, values in (
                ("wall clock, all threads (before)", old),
                ("CPU time x threads (now)", new),
            ):
                v = sorted(x[i] for x in values)
                rows.append(
                    {
                        "load": load,
                        "precision": precision,
                        "method": method,
                        "min": v[0],
                        "median": statistics.median(v),
                        "max": v[-1],
                    }
                )
    return rows


def speed_rows(model: Path, hellaswag: Path, repeats: int) -> list[dict]:
    prompts = model.parent / "prompts.txt"
    prompts.write_text(
        "\n".join(
            f"The {w} module provides"
            for w in ("os", "sys", "json", "re", "math", "time", "csv", "ast")
        )
        + "\n"
    )
    cores = os.cpu_count() or 1
    settings = {
        "torch default": ["--threads", str(cores)],
        "1 thread": ["--threads", "1"],
        "new default": [],
    }
    jobs = {
        "generate batch 8": lambda extra: tinyllama(
            "generate",
            str(model),
            "--prompt-file",
            str(prompts),
            "--temperature",
            "0",
            "--max-new-tokens",
            "64",
            *extra,
        )["stats"]["tokens_per_sec"],
        "generate batch 1": lambda extra: tinyllama(
            "generate",
            str(model),
            "--prompt",
            "The os module provides",
            "--temperature",
            "0",
            "--max-new-tokens",
            "64",
            *extra,
        )["stats"]["tokens_per_sec"],
        "eval hellaswag": lambda extra: tinyllama(
            "eval",
            str(model),
            "--tasks",
            "hellaswag",
            "--dataset",
            f"hellaswag={hellaswag}",
            "--limit",
            "60",
            "--batch-size",
            "16",
            *extra,
        )["samples_per_sec"],
    }
    rows = []
    for load, n in LOADS.items():
        with hogs(n):
            for job, run in jobs.items():
                seen: dict[str, list[float]] = {s: [] for s in settings}
                for _ in range(repeats):
                    for setting, extra in settings.items():  # interleaved
                        seen[setting].append(run(extra))
                med = {s: statistics.median(v) for s, v in seen.items()}
                rows.append(
                    {
                        "load": load,
                        "job": job,
                        **med,
                        "new / torch default": med["new default"] / med["torch default"],
                    }
                )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    print(cpu_description(), flush=True)
    peaks = peak_rows(args.repeats)
    print(
        f"\n{'load':<8} {'prec':<5} {'method':<34} {'min':>9} {'median':>9} {'max':>9}  (GFLOP/s)"
    )
    for r in peaks:
        print(
            f"{r['load']:<8} {r['precision']:<5} {r['method']:<34} {r['min'] / 1e9:>9.0f} "
            f"{r['median'] / 1e9:>9.0f} {r['max'] / 1e9:>9.0f}"
        )
    with tempfile.TemporaryDirectory() as tmp:
        model, hellaswag = make_model(Path(tmp))
        speeds = speed_rows(model, hellaswag, args.repeats)
    print(
        f"\n{'load':<8} {'job':<18} {'torch default':>14} {'1 thread':>10} {'new default':>12} "
        f"{'new/torch':>10}"
    )
    for r in speeds:
        print(
            f"{r['load']:<8} {r['job']:<18} {r['torch default']:>14.1f} {r['1 thread']:>10.1f} "
            f"{r['new default']:>12.1f} {r['new / torch default']:>9.2f}x"
        )
    print("(generate: new tokens/s; eval: samples/s)")
    if args.json:
        args.json.write_text(
            json.dumps({"cpu": cpu_description(), "peaks": peaks, "speeds": speeds}, indent=2)
        )


if __name__ == "__main__":
    main()
