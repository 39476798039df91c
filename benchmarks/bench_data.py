"""The data path's cost per training step at TinyLlama's shapes, in the loop and prefetched.

    PYTHONPATH=$PWD python benchmarks/bench_data.py [--steps 20] [--json out.json]

One worker's share of a step at the recipe's batch (global 1024 sequences of 2048 tokens on 16
GPUs: 64 windows of 2049 tokens per worker per step, in 8 micro batches of 8), read from a
two-source data dir of many shards (random tokens, 2^20 tokens per shard, the page cache warm):

- sample: the mixture and the window permutation for the step's 64 sample indices;
- read: the 64 windows through `OpenShards` (os.pread);
- copy: stacking them into the (8, 2048) input/target tensors (`PretrainData.batch` is all
  three: reported as `step total`);
- then the same steps through `data.prefetch.Prefetcher` while the loop "computes" for the time
  a GPU step takes (a sleep, which like CUDA kernels holds no GIL): the loop's wait for data.

The GPU step times are those of the recipe's throughput, 24k tokens/s/GPU for 1.1B (131,072
tokens per worker per step: 5.46 s) and, for 120M at the same 56% MFU on an A100, 211k tokens/s
(0.62 s). The 120M and 1.1B shapes read the same windows (the data path does not depend on the
model), so they differ only in the step time the data competes with.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

SEQ, MICRO, PER_WORKER = 2048, 8, 64
STEP_SECONDS = {"tinyllama-120m": 0.62, "tinyllama-1.1b": 5.46}


def make_data(root: Path, shards_per_source: int = 48, shard_tokens: int = 1 << 20) -> Path:
    data = root / "data"
    sources = {}
    rng = np.random.default_rng(0)
    for name in ("slimpajama", "starcoder"):
        (data / name).mkdir(parents=True)
        entries = []
        for i in range(shards_per_source):
            rel = f"{name}/train-{i:05d}.bin"
            rng.integers(3, 32000, shard_tokens, dtype=np.uint16).tofile(data / rel)
            entries.append({"file": rel, "tokens": shard_tokens})
        total = shards_per_source * shard_tokens
        sources[name] = {
            "documents": {"train": 1, "val": 0},
            "tokens": {"train": total, "val": 0},
            "skipped": {},
            "shards": {"train": entries, "val": []},
        }
    manifest = {
        "format_version": 1,
        "dtype": "uint16",
        "sources": sources,
        "tokenizer": {
            "file": "tokenizer.model",
            "sha256": "",
            "vocab_size": 32000,
            "bos_id": 1,
            "eos_id": 2,
        },
    }
    (data / "manifest.json").write_text(json.dumps(manifest))
    return data


def per_step(data, step: int) -> dict[str, float]:
    from tinyllama_cli.data.mixture import feistel_permutation, window_key

    first = step * 1024  # worker 0 of 16
    t0 = time.perf_counter()
    picks = []
    for k in range(first, first + PER_WORKER):
        s, j = data.mixture.locate(k)
        epoch, pos = divmod(j, data.windows[s])
        picks.append(
            (
                s,
                int(
                    feistel_permutation(
                        pos, data.windows[s], window_key(data.seed, data.names[s], epoch)
                    )[0]
                ),
            )
        )
    t1 = time.perf_counter()
    windows = [data.streams[s].read(w * SEQ, SEQ + 1) for s, w in picks]
    t2 = time.perf_counter()
    for m in range(0, PER_WORKER, MICRO):
        np.stack(windows[m : m + MICRO])
    t3 = time.perf_counter()
    for m in range(0, PER_WORKER, MICRO):
        data.batch(first + m, MICRO)
    t4 = time.perf_counter()
    return {"sample": t1 - t0, "read": t2 - t1, "copy": t3 - t2, "step total": t4 - t3}


def prefetched_wait(data, steps: int, compute_s: float) -> float:
    from tinyllama_cli.data.prefetch import Prefetcher, StepSlice

    prefetch = Prefetcher(data, StepSlice(1024, MICRO, 0, 16), start=100, end=100 + steps)
    waits = []
    try:
        for step in range(100, 100 + steps):
            t = time.perf_counter()
            prefetch.get(step)
            waits.append(time.perf_counter() - t)
            time.sleep(compute_s)
    finally:
        prefetch.close()
    return statistics.median(waits[1:])  # the first get waits for the thread's start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from tinyllama_cli.data.dataset import PretrainData

    with tempfile.TemporaryDirectory() as tmp:
        root = make_data(Path(tmp))
        data = PretrainData(root, SEQ, seed=1337, mix="slimpajama=0.7,starcoder=0.3")
        per_step(data, 0)  # warm the page cache and the mixture blocks
        costs = [per_step(data, s) for s in range(1, args.steps + 1)]
        median = {k: statistics.median(c[k] for c in costs) for k in costs[0]}
        rows = []
        for preset, step_s in STEP_SECONDS.items():
            compute = min(step_s, 0.2)  # a shorter sleep measures the same wait, in less time
            wait = prefetched_wait(data, args.steps, compute)
            rows.append(
                {
                    "shape": preset,
                    "gpu_step_s": step_s,
                    **median,
                    "prefetched_wait": wait,
                    "share_in_loop": median["step total"] / step_s,
                    "share_prefetched": wait / step_s,
                }
            )
    print(
        f"per worker per step: {PER_WORKER} windows of {SEQ + 1} tokens (median of {args.steps} "
        "steps), ms"
    )
    print(
        f"{'shape':<16}{'sample':>8}{'read':>8}{'copy':>8}{'total':>8}{'prefetched wait':>17}"
        f"{'% of step, loop':>17}{'prefetched':>12}"
    )
    for r in rows:
        print(
            f"{r['shape']:<16}{1e3 * r['sample']:>8.2f}{1e3 * r['read']:>8.2f}"
            f"{1e3 * r['copy']:>8.2f}"
            f"{1e3 * r['step total']:>8.2f}{1e3 * r['prefetched_wait']:>17.3f}"
            f"{100 * r['share_in_loop']:>16.2f}%{100 * r['share_prefetched']:>11.4f}%"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
