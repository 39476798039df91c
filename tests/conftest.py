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

# The training precision of every test that does not pin one. `--precision auto` would pick bf16
# on CPUs with AMX or AVX512-BF16 and fp32 elsewhere, so a suite run on "auto" would test different
# things on different machines. Tests whose numbers only hold in one precision (bit-exact 1-vs-N
# worker equality) pin it; the rest run in TINYLLAMA_TEST_PRECISION and are marked `precision`,
# so `.ci/run` re-runs exactly them with bf16 forced (emulated, slowly, where the CPU lacks it).
TEST_PRECISION = os.environ.get("TINYLLAMA_TEST_PRECISION", "fp32")
if TEST_PRECISION not in ("fp32", "bf16"):
    raise pytest.UsageError(f"TINYLLAMA_TEST_PRECISION={TEST_PRECISION!r}: use fp32 or bf16")


@pytest.fixture(scope="session")
def precision() -> str:
    """The training precision forced for this test run (fp32 unless TINYLLAMA_TEST_PRECISION)."""
    return TEST_PRECISION


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if "precision" in item.fixturenames:
            item.add_marker(pytest.mark.precision)


@pytest.fixture
def tiny_config():
    from tinyllama_cli.config import get_preset

    return get_preset("cpu-tiny")


@pytest.fixture(scope="session")
def token_data(tmp_path_factory):
    """One tokenizer and one two-source token data dir (the prepare-data format) per session."""
    from tests.train.tokendata import make_tokenizer, write_token_data

    root = tmp_path_factory.mktemp("tokens")
    tokenizer = make_tokenizer(root / "tok.model")
    return write_token_data(
        root / "data",
        tokenizer,
        {"web": {"train": 24000, "val": 700}, "code": {"train": 9000, "val": 300}},
    )


@pytest.fixture(scope="session")
def other_token_data(tmp_path_factory):
    """Same shape as token_data, other tokens: a different manifest fingerprint."""
    from tests.train.tokendata import make_tokenizer, write_token_data

    root = tmp_path_factory.mktemp("tokens2")
    tokenizer = make_tokenizer(root / "tok.model")
    return write_token_data(
        root / "data",
        tokenizer,
        {"web": {"train": 24000, "val": 700}, "code": {"train": 9000, "val": 300}},
        seed=5,
    )
