"""Fixtures of the training tests: one tokenizer and one two-source token data dir per session."""

from __future__ import annotations

import pytest

from tests.train.tokendata import make_tokenizer, write_token_data


@pytest.fixture(scope="session")
def token_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tokens")
    tokenizer = make_tokenizer(root / "tok.model")
    return write_token_data(root / "data", tokenizer, {"web": {"train": 24000, "val": 700},
                                                       "code": {"train": 9000, "val": 300}})


@pytest.fixture(scope="session")
def other_token_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tokens2")
    tokenizer = make_tokenizer(root / "tok.model")
    return write_token_data(root / "data", tokenizer, {"web": {"train": 24000, "val": 700},
                                                       "code": {"train": 9000, "val": 300}}, seed=5)
