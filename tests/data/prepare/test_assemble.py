"""Assembly writes only the listing files: every shard is where its group's worker wrote it
(nothing copied), and the trainer reads the shards of unequal size as one stream per split."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.data.prepare.runs import many_files, options, read_split
from tinyllama_cli.data.dataset import PretrainData, TokenStream
from tinyllama_cli.data.prepare import prepare_data


class ShardsAtAssembly:
    """A progress sink that records every shard file (inode, size) when assembly begins."""

    def __init__(self, work: Path):
        self.work = work
        self.seen: dict[str, tuple[int, int]] = {}

    def start(self, *a) -> None: ...
    def advance(self, *a) -> None: ...

    def stage(self, text: str) -> None:
        if text == "writing shards":
            self.seen = {
                str(p.relative_to(self.work)): (p.stat().st_ino, p.stat().st_size)
                for p in self.work.rglob("*.bin")
            }


def test_assembly_copies_nothing_the_shards_are_the_workers_files(tmp_path, tok_path):
    specs = many_files(tmp_path, 6)
    out = tmp_path / "data"
    sink = ShardsAtAssembly(tmp_path / "data.partial")
    result = prepare_data(specs, options(out, tok_path, shard_tokens=400, workers=2), sink)
    listed = [
        s["file"]
        for e in result.manifest["sources"].values()
        for split in ("train", "val")
        for s in e["shards"][split]
    ]
    final = {f: ((out / f).stat().st_ino, (out / f).stat().st_size) for f in listed}
    assert len(final) > 9 and sink.seen == final  # the same files: renamed, never rewritten
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.bin")) == sorted(listed)


def test_the_trainer_reads_shards_of_unequal_size_as_one_stream(tmp_path, tok_path):
    specs = many_files(tmp_path, 6)
    out = tmp_path / "data"
    prepare_data(specs, options(out, tok_path, shard_tokens=300))
    data = PretrainData(out, seq_len=16, seed=0)
    sizes = {s["tokens"] for s in data.manifest.sources["web"]["shards"]["train"]}
    assert len(sizes) > 2  # full parts of 300 and each group's shorter last one
    for name in data.names:
        whole = read_split(out, data.manifest.raw, name, "train").astype(np.int64)
        stream = TokenStream(data.manifest, name, "train")
        assert stream.n_tokens == len(whole)
        for start in range(0, len(whole) - 40, 37):  # windows across shard ends included
            assert np.array_equal(stream.read(start, 40), whole[start : start + 40])
    for k in range(8):
        assert data.sample(k).shape == (17,)
