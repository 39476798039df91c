"""A small trained tokenizer and one corpus in every input format, shared by the prepare tests."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import sentencepiece as spm

from tests.data.prepare_corpus import build_all_formats, make_text
from tinyllama_cli.tokenizer import train_tokenizer


@pytest.fixture(scope="session")
def tok_path(tmp_path_factory) -> Path:
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("tok") / "tok.model"
    train_tokenizer([make_text(rng, 80) for _ in range(300)], 320, path, num_threads=1)
    return path


@pytest.fixture(scope="session")
def sp(tok_path) -> spm.SentencePieceProcessor:
    return spm.SentencePieceProcessor(model_file=str(tok_path))


@pytest.fixture(scope="session")
def formats(tmp_path_factory):
    return build_all_formats(tmp_path_factory.mktemp("corpus"))
