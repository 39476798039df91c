"""Shared fixtures. Tests build all their data themselves: no network, no downloads."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# Two cores: one intra-op thread per test keeps the (optionally parallel) suite fast and stable.
torch.set_num_threads(int(os.environ.get("TINYLLAMA_TEST_THREADS", "1")))


@pytest.fixture
def tiny_config():
    from tinyllama_cli.config import get_preset

    return get_preset("cpu-tiny")
