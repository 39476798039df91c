"""Groups of input files (the units of work) and slices of a run, from the file sizes alone."""

from __future__ import annotations

from dataclasses import dataclass

from tinyllama_cli.data.prepare.slices import all_units, group_bytes, slice_of
from tinyllama_cli.data.sources import Source


@dataclass(frozen=True)
class SizedFile:
    """Stands for an InputFile: grouping reads only the size."""

    path: str
    size: int


def source(name: str, sizes: list[int]) -> Source:
    return Source(name, name, [SizedFile(f"{name}/{i}", n) for i, n in enumerate(sizes)])


def test_files_join_a_group_until_it_is_full_and_a_large_file_is_a_group_alone():
    sources = [
        source("a", [300, 300, 300, 1000, 100, 100]),
        source("b", [200, 200]),
        source("c", [612_000]),
    ]
    assert group_bytes(614_500, 1 << 27) == 600  # 1024 groups' worth of the 614,500 bytes
    units = all_units(sources, shard_tokens=1 << 27)
    assert [(u.source, u.index, u.first, [f.size for f in u.files], u.size) for u in units] == [
        ("a", 0, 0, [300, 300], 600),
        ("a", 1, 2, [300], 300),
        ("a", 2, 3, [1000], 1000),
        ("a", 3, 4, [100, 100], 200),
        ("b", 0, 0, [200, 200], 400),
        ("c", 0, 0, [612_000], 612_000),
    ]
    assert units == all_units(sources, shard_tokens=1 << 27)
    assert group_bytes(614_500, 100) == 200  # --shard-tokens caps a group at 2 bytes a token


def test_tinyllamas_corpus_makes_thousands_of_groups_of_256_mb():
    """59,166 SlimPajama chunks of ~15 MB at the default --shard-tokens 2^27: groups of 17
    chunks (255 MB of input), ~1.3 shards each; a small corpus gets ~1024 groups instead."""
    slim = source("slimpajama", [15_000_000] * 59_166)
    assert group_bytes(59_166 * 15_000_000, 1 << 27) == 2 << 27
    units = all_units([slim], 1 << 27)
    assert {len(u.files) for u in units[:-1]} == {17} and len(units) == 3481
    small = source("web", [1_000_000] * 3000)  # 3 GB: groups of 2 files
    assert len(all_units([small], 1 << 27)) == 1500


def test_slices_are_whole_groups_and_concatenate_to_the_run():
    units = all_units([source("a", [5, 1, 1, 1, 9, 2, 2, 2, 2]), source("b", [4, 4])], 2)
    slices = [slice_of(units, i, 3) for i in range(3)]
    assert [u for s in slices for u in s] == units and all(slices)
