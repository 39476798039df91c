"""Fixtures for the convert tests: a tokenizer trained here and run dirs written here."""

from __future__ import annotations

import json
import random
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from tinyllama_cli.config import ModelConfig, dump_yaml
from tinyllama_cli.model import Llama

# vocab 320 > the tokenizer's 300 pieces: exercises GGUF's [PAD] rows and HF's larger embedding.
CONVERT_CONFIG = ModelConfig(
    name="convert-test",
    vocab_size=320,
    n_layer=2,
    n_embd=64,
    n_head=4,
    n_kv_head=2,
    intermediate_size=160,
    block_size=64,
)
WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "tiny",
    "llamas",
    "read",
    "python",
    "code",
    "and",
    "numbers",
    "like",
    "1234",
    "or",
    "56",
    "in",
    "JSON",
    "files;",
    "naïve",
    "café",
    "déjà",
    "vu",
]


@pytest.fixture(scope="session")
def convert_tokenizer(tmp_path_factory) -> Path:
    from tinyllama_cli.tokenizer import train_tokenizer

    rng = random.Random(0)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 40))) for _ in range(400)]
    path = tmp_path_factory.mktemp("tok") / "tokenizer.model"
    train_tokenizer(texts, 300, path)
    return path


def write_run_dir(
    root: Path, config: ModelConfig, tokenizer: Path | None, seed: int = 0, step: int = 7
) -> Llama:
    """A run dir as pretrain writes it (DCP {"model": ...} + state.json + config.yaml)."""
    import torch.distributed.checkpoint as dcp

    torch.manual_seed(seed)
    model = Llama(config).eval()
    checkpoint = root / "checkpoints" / f"step-{step:08d}"
    checkpoint.mkdir(parents=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*single process.*")
        dcp.save({"model": model.state_dict()}, checkpoint_id=str(checkpoint), no_dist=True)
    (checkpoint / "state.json").write_text(
        json.dumps({"step": step, "tokens_seen": 0, "model_config": config.to_dict()})
    )
    dump_yaml({"model": config.to_dict()}, root / "config.yaml")
    if tokenizer is not None:
        shutil.copyfile(tokenizer, root / "tokenizer.model")
    return model


@pytest.fixture
def run_dir(tmp_path, convert_tokenizer) -> tuple[Path, Llama]:
    root = tmp_path / "run"
    return root, write_run_dir(root, CONVERT_CONFIG, convert_tokenizer)
