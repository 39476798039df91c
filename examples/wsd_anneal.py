"""What an anneal branch buys, on the built-in corpus: cosine vs WSD vs WSD + `tinyllama anneal`.

Three ways to spend the same BUDGET optimizer steps of `cpu-small` on the same data order:

    cosine   --lr-schedule cosine --max-steps BUDGET (the recipe: the length fixed in advance)
    wsd      --lr-schedule wsd planned for 5 x BUDGET (the run that "keeps going"), stopped at
             BUDGET: its lr is still at the peak
    branch   `tinyllama anneal wsd --from-step S --decay-steps BUDGET - S`: the WSD run's
             checkpoint S decayed to --min-lr, ending at BUDGET too

Each scores hellaswag and arc_easy (the corpus's held-out eval files) inside training
(`--eval-tasks`), and this script prints the last validation loss and scores of each as a
Markdown table, and draws all three with `tinyllama plot` (docs/images/wsd-anneal.png).

    python examples/wsd_anneal.py [--out DIR] [--budget 240] [--branch-at 200] [--png PATH]

cpu-small at a global batch of 8 x 256 tokens: a few minutes of CPU per run; nothing is
downloaded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMON = [
    "--config",
    str(ROOT / "examples" / "cpu-small.yaml"),
    "--mix",
    "slimpajama=0.7,starcoder=0.3",
    "--global-batch-size",
    "8",
    "--warmup-steps",
    "20",
    "--log-every",
    "10",
    "--eval-every",
    "40",
    "--save-every",
    "40",
    "--keep-last",
    "0",
    "--precision",
    "fp32",
    "--no-tensorboard",
]


def tinyllama(*args: str) -> None:
    """One CLI command, echoed as run (the docs show these lines)."""
    print("$ tinyllama " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "tinyllama_cli", *args], check=True)


def last(run: Path, key: str) -> tuple[int, float] | None:
    """(step, value) of the last record of `run` that has `key`."""
    found = None
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if key in record:
            found = (record["step"], record[key])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="wsd-anneal", help="Work directory (replaced).")
    parser.add_argument("--budget", type=int, default=200, help="Steps every run ends at.")
    parser.add_argument("--branch-at", type=int, default=160, help="The branch's checkpoint.")
    parser.add_argument("--png", default=str(ROOT / "docs" / "images" / "wsd-anneal.png"))
    args = parser.parse_args()
    out, budget, at = Path(args.out), args.budget, args.branch_at
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.processor()}")
    started = time.perf_counter()
    tinyllama("sample-corpus", "--out", str(out / "corpus"))
    tinyllama(
        "prepare-data",
        f"slimpajama={out / 'corpus' / 'slimpajama'}",
        f"starcoder={out / 'corpus' / 'starcoder'}",
        "--out",
        str(out / "data"),
        "--train-tokenizer",
        "--vocab-size",
        "8192",
        "--exclude-meta",
        "redpajama_set_name=RedPajamaGithub",
        "--val-fraction",
        "0.02",
        "--workers",
        "2",
    )
    evals = [
        "--eval-tasks",
        "hellaswag,arc_easy",
        "--eval-limit",
        "200",
        "--eval-dataset",
        (
            f"hellaswag={out / 'corpus' / 'eval' / 'hellaswag.jsonl'},"
            f"arc_easy={out / 'corpus' / 'eval' / 'arc_easy.jsonl'}"
        ),
    ]
    data = ["--data", str(out / "data")]
    tinyllama(
        "pretrain", *COMMON, *data, *evals, "--out", str(out / "cosine"), "--max-steps", str(budget)
    )
    tinyllama(
        "pretrain",
        *COMMON,
        *data,
        *evals,
        "--out",
        str(out / "wsd"),
        "--lr-schedule",
        "wsd",
        "--max-steps",
        str(5 * budget),
        "--stop-at-step",
        str(budget),
    )
    tinyllama(
        "anneal",
        str(out / "wsd"),
        "--from-step",
        str(at),
        "--decay-steps",
        str(budget - at),
        "--out",
        str(out / "branch"),
    )
    tinyllama(
        "plot",
        str(out / "cosine"),
        str(out / "wsd"),
        str(out / "branch"),
        "--out",
        args.png,
        "--overwrite",
    )
    keys = ["val_loss", "eval/hellaswag/acc_norm", "eval/arc_easy/acc_norm"]
    print(f"\n| run (step {budget}) | lr at the end | " + " | ".join(keys) + " |")
    print("|---|---|" + "---|" * len(keys))
    for name in ("cosine", "wsd", "branch"):
        run = out / name
        cells = [
            f"{v:.4f} (step {s})" for s, v in (last(run, k) or (0, float("nan")) for k in keys)
        ]
        print(f"| {name} | {last(run, 'lr')[1]:.2e} | " + " | ".join(cells) + " |")
    print(f"\n{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
