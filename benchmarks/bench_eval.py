"""Native lm-eval adapter vs lm-eval's own Hugging Face backend: samples/s, same model, same tasks.

    PYTHONPATH=$PWD python benchmarks/bench_eval.py --preset cpu-bench --rows 16 --repeats 5 \\
        --threads 1

Builds a random model of the preset (saved as a native run dir), a tokenizer trained on synthetic
English-like text, and local data files for TinyLlama's seven tasks in their hub schemas; then
runs `tinyllama_cli.eval.evaluate(..., backend=native|hf)` alternately (the order flips
every repeat), both in the same process, dtype and allocator. samples/s counts lm-eval
documents per second of `simple_evaluate` (request building, scoring, metrics), excluding
model loading and the HF conversion. `--warmup` untimed rounds come first: the first pass over
new tensor shapes pays one-off kernel set-up on CPU, which a real eval (thousands of documents)
amortises. Prints a table (medians of the repeats) and the ratio;
`--json` for machines.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinyllama_cli.config import dump_yaml, get_preset
from tinyllama_cli.eval import TINYLLAMA_TASKS, evaluate
from tinyllama_cli.model import Llama
from tinyllama_cli.tokenizer import train_tokenizer

WORDS = [
    "the",
    "of",
    "and",
    "to",
    "a",
    "in",
    "is",
    "was",
    "for",
    "on",
    "that",
    "with",
    "as",
    "by",
    "it",
    "he",
    "at",
    "from",
    "his",
    "an",
    "were",
    "are",
    "which",
    "this",
    "be",
    "or",
    "had",
    "not",
    "but",
    "first",
    "one",
    "their",
    "its",
    "new",
    "after",
    "who",
    "they",
    "have",
    "her",
    "she",
    "two",
    "been",
    "other",
    "when",
    "there",
    "all",
    "during",
    "into",
    "school",
    "time",
    "may",
    "years",
    "more",
    "most",
    "only",
    "over",
    "city",
    "some",
    "world",
    "would",
    "where",
    "later",
    "up",
    "such",
    "used",
    "many",
    "can",
    "state",
    "about",
    "national",
    "out",
    "known",
    "university",
    "united",
    "then",
    "made",
    "water",
    "sun",
    "moon",
    "light",
    "plant",
    "grows",
    "river",
    "stone",
    "tree",
    "warm",
    "cold",
    "kitchen",
    "man",
    "woman",
    "dog",
    "cat",
    "ball",
    "book",
    "door",
    "onion",
    "knife",
    "bowl",
    "table",
    "chair",
    "runs",
    "cuts",
    "opens",
    "closes",
    "reads",
]


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def task_rows(rng: random.Random, n: int) -> dict[str, list[dict]]:
    labels = ["A", "B", "C", "D"]

    def mc(stem: str, i: int) -> dict:
        return {
            "id": f"q{i}",
            stem: sentence(rng, 14).capitalize() + "?",
            "choices": {
                "text": [sentence(rng, rng.randint(2, 6)) for _ in labels],
                "label": labels,
            },
            "answerKey": labels[i % 4],
        }

    return {
        "hellaswag": [
            {
                "ind": i,
                "activity_label": "Cooking",
                "ctx_a": sentence(rng, 30) + ".",
                "ctx_b": "the man",
                "ctx": "",
                "endings": [sentence(rng, rng.randint(10, 20)) + "." for _ in labels],
                "source_id": "s",
                "split": "val",
                "split_type": "indomain",
                "label": str(i % 4),
            }
            for i in range(n)
        ],
        "openbookqa": [mc("question_stem", i) for i in range(n)],
        "winogrande": [
            {
                "sentence": f"{sentence(rng, 8)} _ {sentence(rng, 8)}.",
                "option1": rng.choice(WORDS),
                "option2": rng.choice(WORDS),
                "answer": str(1 + i % 2),
            }
            for i in range(n)
        ],
        "arc_challenge": [mc("question", i) for i in range(n)],
        "arc_easy": [mc("question", i) for i in range(n)],
        "boolq": [
            {
                "question": sentence(rng, 8),
                "passage": sentence(rng, 90) + ".",
                "idx": i,
                "label": i % 2,
            }
            for i in range(n)
        ],
        "piqa": [
            {
                "goal": sentence(rng, 10),
                "sol1": sentence(rng, 16),
                "sol2": sentence(rng, 16),
                "label": i % 2,
            }
            for i in range(n)
        ],
    }


def build(root: Path, preset: str, rows: int, vocab: int) -> tuple[Path, list[str]]:
    import torch.distributed.checkpoint as dcp

    rng = random.Random(0)
    tokenizer = train_tokenizer(
        [sentence(rng, 40) + "." for _ in range(4000)], vocab, root / "tok.model"
    )
    config = get_preset(preset)
    run = root / "run"
    ckpt = run / "checkpoints" / "step-00000000"
    ckpt.mkdir(parents=True)
    dump_yaml({"model": config.to_dict()}, run / "config.yaml")
    (run / "tokenizer.model").write_bytes(tokenizer.path.read_bytes())
    torch.manual_seed(0)
    dcp.save({"model": Llama(config).state_dict()}, checkpoint_id=str(ckpt))
    (ckpt / "state.json").write_text(
        json.dumps({"step": 0, "tokens_seen": 0, "model_config": config.to_dict()})
    )
    datasets = []
    for task, items in task_rows(random.Random(1), rows).items():
        path = root / f"{task}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in items))
        datasets.append(f"{task}={path}")
    return run, datasets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu-bench")
    parser.add_argument("--rows", type=int, default=12, help="documents per task")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed runs of each backend first (kernel caches)"
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--device", default=None)
    parser.add_argument(
        "--vocab", type=int, default=700, help="tokenizer vocabulary (the model keeps the preset's)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (default: torch's)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp:
        run, datasets = build(Path(tmp), args.preset, args.rows, args.vocab)
        rates: dict[str, list[float]] = {"native": [], "hf": []}
        scores: dict[str, dict] = {}
        samples = 0
        for repeat in range(-args.warmup, args.repeats):
            order = ("native", "hf") if repeat % 2 == 0 else ("hf", "native")
            for backend in order:
                result = evaluate(
                    run,
                    ",".join(TINYLLAMA_TASKS),
                    backend=backend,
                    datasets=datasets,
                    batch_size=args.batch_size,
                    dtype=args.dtype,
                    device=args.device,
                    bootstrap_iters=0,
                    baseline=False,
                )
                if repeat >= 0:
                    rates[backend].append(result.samples_per_sec)
                scores[backend] = {t: round(v, 6) for t, (_, v) in result.scores.items()}
                samples = result.num_samples
    med = {b: statistics.median(r) for b, r in rates.items()}
    paired = statistics.median(
        n / h for n, h in zip(rates["native"], rates["hf"])
    )  # robust to load drift
    report = {
        "preset": args.preset,
        "rows_per_task": args.rows,
        "samples": samples,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "batch_size": args.batch_size,
        "dtype": args.dtype,
        "threads": torch.get_num_threads(),
        "samples_per_sec": med,
        "all_samples_per_sec": rates,
        "ratio_native_over_hf": med["native"] / med["hf"],
        "median_paired_ratio": paired,
        "same_scores": scores["native"] == scores["hf"],
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"preset {args.preset}, {samples} documents over 7 tasks, batch {args.batch_size}, "
        f"{args.dtype}, "
        f"{torch.get_num_threads()} threads, {args.warmup} warmup + {args.repeats} interleaved "
        "repeats (medians)"
    )
    print(f"{'backend':<10}{'samples/s':>12}   runs")
    for backend in ("native", "hf"):
        print(
            f"{backend:<10}{med[backend]:>12.2f}   " + ", ".join(f"{r:.2f}" for r in rates[backend])
        )
    print(
        f"native / hf = {report['ratio_native_over_hf']:.2f}x (median of per-repeat ratios "
        f"{paired:.2f}x); "
        f"identical table scores: {report['same_scores']}"
    )


if __name__ == "__main__":
    main()
