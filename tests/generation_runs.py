"""Run dirs for the generation tests: a synthetic sentence corpus and a model saved as a run."""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch.distributed.checkpoint as dcp

from tinyllama_cli.model import Llama


def corpus(n: int = 400) -> list[str]:
    """Short sentences of a few fixed words: a tiny model learns clear-cut greedy choices."""
    rng = random.Random(0)
    subjects = [
        "the quick fox",
        "a cat",
        "seven green birds",
        "my old dog",
        "the river",
        "a small robot",
    ]
    verbs = ["jumps over", "sings to", "runs past", "sleeps near", "looks at", "counts"]
    objects = [
        "the lazy dog.",
        "the old river.",
        "a red house.",
        "twelve stones.",
        "the moon.",
        "a tall tree.",
    ]
    return [f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)}" for _ in range(n)]


def write_run_dir(model: Llama, tokenizer: Path, out: Path, step: int = 0) -> Path:
    """`out` as a run dir the loaders read: one DCP checkpoint with state.json, tokenizer.model."""
    checkpoint = out / "checkpoints" / f"step-{step:08d}"
    checkpoint.mkdir(parents=True)
    dcp.save({"model": model.state_dict()}, checkpoint_id=str(checkpoint))
    (checkpoint / "state.json").write_text(
        json.dumps({"step": step, "model_config": model.config.to_dict()})
    )
    (out / "tokenizer.model").write_bytes(Path(tokenizer).read_bytes())
    return out
