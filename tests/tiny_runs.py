"""The suite's smallest real training run: cpu-tiny on the test token data, in seconds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinyllama_cli.config import TrainConfig

TINY_RUN: dict[str, Any] = {
    "model": "cpu-tiny",
    "seq_len": 16,
    "global_batch_size": 4,
    "micro_batch_size": 2,
    "warmup_steps": 1,
    "tensorboard": False,
    "num_threads": 1,
}


# The same shape as CLI flags, for tests that run the commands themselves.
SHAPE_FLAGS: list[str] = ["--seq-len", "16", "--micro-batch-size", "2", "--global-batch-size", "4"]
TINY_FLAGS: list[str] = ["--model", "cpu-tiny", *SHAPE_FLAGS, "--num-threads", "1"]


def tiny_run(data: str | Path, out: str | Path, **overrides: Any) -> TrainConfig:
    """A TrainConfig of `TINY_RUN` with `overrides` (max_steps, precision, save_every, ...)."""
    return TrainConfig.of(data=str(data), out=str(out), **{**TINY_RUN, **overrides})
