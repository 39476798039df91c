"""The worker pool: the same bytes for 1 and 4 workers and between runs."""

from __future__ import annotations

import pytest

from tests.data.prepare.runs import many_files, options, tree_bytes
from tinyllama_cli.data.prepare import prepare_data


@pytest.mark.slow
def test_output_bytes_identical_for_1_and_4_workers_and_between_runs(tmp_path, tok_path):
    specs = many_files(tmp_path)
    trees = []
    for i, workers in enumerate((1, 4, 1)):
        out = tmp_path / f"out{i}"
        prepare_data(specs, options(out, tok_path, workers=workers, shard_tokens=1000))
        trees.append(tree_bytes(out))
    assert trees[0] == trees[1] == trees[2]
    assert len([k for k in trees[0] if k.endswith(".bin")]) > 4
