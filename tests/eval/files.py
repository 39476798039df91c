"""The files the eval tests read, made here: a tokenizer's vocabulary of words, task rows in each
of the seven TinyLlama tasks' hub schemas, native checkpoints as pretrain writes them (DCP +
state.json), and token data dirs in prepare-data's format (the unigram baseline's input)."""

from __future__ import annotations

import json
import random

import numpy as np
import torch.distributed.checkpoint as dcp

WORDS = [
    "the",
    "a",
    "man",
    "woman",
    "dog",
    "cat",
    "cooks",
    "cuts",
    "onions",
    "flies",
    "away",
    "sings",
    "song",
    "runs",
    "fast",
    "question",
    "answer",
    "science",
    "water",
    "sun",
    "moon",
    "is",
    "are",
    "was",
    "what",
    "which",
    "because",
    "rain",
    "cloud",
    "plant",
    "grows",
    "light",
    "heat",
    "yes",
    "no",
    "true",
    "false",
    "ball",
    "kicks",
    "reads",
    "book",
    "opens",
    "door",
    "cold",
    "warm",
    "river",
    "stone",
    "tree",
]


def sentence(rng: random.Random, n: int = 6) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def task_rows(rng: random.Random, n: int = 3) -> dict[str, list[dict]]:
    """A few rows of each task in its hub dataset's own schema."""
    labels = ["A", "B", "C", "D"]

    def mc(stem_key: str, i: int) -> dict:
        return {
            "id": f"q{i}",
            stem_key: sentence(rng) + "?",
            "choices": {"text": [sentence(rng, 2) for _ in labels], "label": labels},
            "answerKey": labels[i % 4],
        }

    return {
        "hellaswag": [
            {
                "ind": i,
                "activity_label": "Cooking",
                "ctx_a": sentence(rng) + ".",
                "ctx_b": "the man",
                "ctx": "",
                "endings": [sentence(rng, 3) + "." for _ in range(4)],
                "source_id": "s",
                "split": "val",
                "split_type": "indomain",
                "label": str(i % 4),
            }
            for i in range(n)
        ],
        "arc_easy": [mc("question", i) for i in range(n)],
        "arc_challenge": [mc("question", i) for i in range(n)],
        "openbookqa": [mc("question_stem", i) for i in range(n)],
        "piqa": [
            {
                "goal": sentence(rng),
                "sol1": sentence(rng, 4),
                "sol2": sentence(rng, 4),
                "label": i % 2,
            }
            for i in range(n)
        ],
        "boolq": [
            {
                "question": sentence(rng),
                "passage": sentence(rng, 12) + ".",
                "idx": i,
                "label": i % 2,
            }
            for i in range(n)
        ],
        "winogrande": [
            {
                "sentence": f"the {rng.choice(WORDS)} _ {sentence(rng, 3)}.",
                "option1": rng.choice(WORDS),
                "option2": rng.choice(WORDS),
                "answer": str(1 + i % 2),
            }
            for i in range(n)
        ],
    }


def write_checkpoint(run_dir, model, step, tokens_seen):
    path = run_dir / "checkpoints" / f"step-{step:08d}"
    path.mkdir(parents=True)
    dcp.save({"model": model.state_dict()}, checkpoint_id=str(path))
    (path / "state.json").write_text(
        json.dumps(
            {
                "step": step,
                "tokens_seen": tokens_seen,
                "samples_seen": step,
                "model_config": model.config.to_dict(),
            }
        )
    )


def dataset_args(env, tasks):
    return [f"{t}={env['files'][t]}" for t in tasks]


def per_sample(result):
    """{task: [(doc_id, [loglikelihood per choice])]} from lm-eval's logged samples."""
    out = {}
    for task, samples in result.results["samples"].items():
        out[task] = sorted((s["doc_id"], [float(r[0][0]) for r in s["resps"]]) for s in samples)
    return out


SEVEN = ["hellaswag", "openbookqa", "winogrande", "arc_challenge", "arc_easy", "boolq", "piqa"]

# Three multiple-choice documents with 2, 3 and 4 choices: chance = (1/2 + 1/3 + 1/4) / 3 = 13/36.
MC_DOCS = [
    {"q": "the man cooks", "choices": ["no", "yes no"], "label": 0},
    {"q": "a dog runs", "choices": ["yes", "cat", "no"], "label": 0},
    {"q": "rain", "choices": ["cold", "warm", "no", "stone"], "label": 0},
]


def write_data_dir(out, tokenizer, sources: dict[str, list[list[int]]]):
    """A token data dir in prepare-data's format: {source: [train shard token lists]}."""
    import hashlib

    out.mkdir(parents=True)
    entries = {}
    for name, shards in sources.items():
        (out / name).mkdir()
        listed = []
        for i, tokens in enumerate(shards):
            rel = f"{name}/train-{i:05d}.bin"
            np.asarray(tokens, dtype=np.uint16).tofile(out / rel)
            listed.append({"file": rel, "tokens": len(tokens)})
        entries[name] = {
            "documents": {"train": 1, "val": 0},
            "skipped": {},
            "tokens": {"train": sum(len(t) for t in shards), "val": 0},
            "shards": {"train": listed, "val": []},
        }
    manifest = {
        "format_version": 1,
        "dtype": "uint16",
        "sources": entries,
        "tokenizer": {
            "file": "tokenizer.model",
            "vocab_size": tokenizer.vocab_size,
            "sha256": hashlib.sha256(tokenizer.path.read_bytes()).hexdigest(),
        },
    }
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out
