"""Slices of a run merged by merge-data give the unsliced output byte for byte."""

from __future__ import annotations

import json

import pytest

from tests.data.prepare.runs import cli, many_files, options, tree_bytes
from tinyllama_cli.data.prepare import merge_data, prepare_data
from tinyllama_cli.errors import UserError


def test_slices_merge_into_the_unsliced_output(tmp_path, tok_path):
    specs = many_files(tmp_path, 5)
    whole = tmp_path / "whole"
    prepare_data(specs, options(whole, tok_path, shard_tokens=900))
    slices = [tmp_path / f"slice{i}" for i in range(3)]
    for i, d in enumerate(slices):
        prepare_data(specs, options(d, tok_path, shard_tokens=900, shard_index=i, num_shards=3))
    manifests = [json.loads((d / "manifest.json").read_text())["sources"] for d in slices]
    assert sum(m["web"]["files"] for m in manifests) == 5
    assert sum(m["code"]["files"] for m in manifests) == 3
    assert all(m["web"]["files"] + m["code"]["files"] > 0 for m in manifests)
    with pytest.raises(UserError, match="exactly once"):
        merge_data(slices[:2], tmp_path / "merged")
    r = cli("merge-data", *map(str, reversed(slices)), "--out", str(tmp_path / "merged"))
    assert r.returncode == 0, r.stderr
    assert tree_bytes(tmp_path / "merged") == tree_bytes(whole)
    # The slices' shards are linked, not copied: the merge needs no second copy of the data.
    merged = json.loads((tmp_path / "merged" / "manifest.json").read_text())["sources"]
    shard = merged["web"]["shards"]["train"][0]["file"]
    assert (tmp_path / "merged" / shard).stat().st_ino == (slices[0] / shard).stat().st_ino
