"""Units of work and slices of a run: a unit is a group of consecutive input files of one source,
a slice a contiguous byte-balanced run of units, and the settings whose fingerprint names what a
run's output depends on.

Groups are made from the file sizes alone, the same in every slice: files join a group until it
would pass `group_bytes` (a file larger than that is a group of its own). A group's documents go
to its own shards, so the group size sets the shard count: about `GROUPS_PER_RUN` groups, fewer
for a corpus so large that groups reach `GROUP_BYTES_PER_TOKEN x --shard-tokens` bytes of input
(TinyLlama's: 59k SlimPajama chunks of ~15 MB in groups of 256 MB, ~1.3 shards each). Enough
groups keep every worker busy; a cap keeps shards near --shard-tokens.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from tinyllama_cli.data.prepare.datadir import FORMAT_VERSION
from tinyllama_cli.data.prepare.options import PrepareOptions
from tinyllama_cli.data.sources import InputFile, Source

GROUPS_PER_RUN = 1024
GROUP_BYTES_PER_TOKEN = 2  # compressed text is about a byte a token: groups give 1-2 shards


@dataclass(frozen=True)
class Unit:
    """A group of consecutive input files of one source: the unit of work, encoded by one worker
    in one pass into the group's own shards."""

    source: str
    index: int  # position of the group in its source
    first: int  # position of its first file in the source
    files: tuple[InputFile, ...]
    size: int  # input bytes


def group_bytes(total_bytes: int, shard_tokens: int) -> int:
    """Input bytes at which a group is full (see the module docstring)."""
    return max(1, min(total_bytes // GROUPS_PER_RUN, GROUP_BYTES_PER_TOKEN * shard_tokens))


def all_units(sources: list[Source], shard_tokens: int) -> list[Unit]:
    """Every source's files in groups (a pure function of the file list and sizes)."""
    sizes = [[f.size for f in s.files] for s in sources]
    target = group_bytes(sum(map(sum, sizes)), shard_tokens)
    return [u for s, file_sizes in zip(sources, sizes) for u in _groups(s, file_sizes, target)]


def _groups(s: Source, sizes: list[int], target: int) -> list[Unit]:
    units: list[Unit] = []
    start, filled = 0, 0
    for i, size in enumerate(sizes):
        if i > start and filled + size > target:
            units.append(Unit(s.name, len(units), start, tuple(s.files[start:i]), filled))
            start, filled = i, 0
        filled += size
    if sizes:
        units.append(Unit(s.name, len(units), start, tuple(s.files[start:]), filled))
    return units


def slice_of(units: list[Unit], index: int, count: int) -> list[Unit]:
    """A contiguous run of units balanced by bytes: unit u goes to the slice its midpoint
    falls in, so concatenating slices 0..count-1 restores the global order."""
    if count == 1:
        return units
    total = max(sum(u.size for u in units), 1)
    chosen, before = [], 0
    for u in units:
        if min(count - 1, (2 * before + u.size) * count // (2 * total)) == index:
            chosen.append(u)
        before += u.size
    return chosen


def run_settings(
    sources: list[Source],
    o: PrepareOptions,
    tokenizer_key: dict,
    decontamination: dict | None = None,
) -> dict:
    """What the output depends on (not workers, on_error or the shard index); `decontamination`
    (the eval files and span length) only when asked for, so other runs' fingerprints stay."""
    settings = {
        "format_version": FORMAT_VERSION,
        "sources": {s.name: s.spec for s in sources},
        "tokenizer": tokenizer_key,
        "val_fraction": o.val_fraction,
        "val_min_docs": o.val_min_docs,
        "text_field": o.text_field,
        "exclude_meta": [f"{k}={v}" for k, v in o.exclude],
        "shard_tokens": o.shard_tokens,
        "num_shards": o.num_shards,
    }
    if decontamination:
        settings["decontamination"] = decontamination
    return settings


def fingerprint(settings: dict) -> str:
    """A sha256 of the settings: equal for runs (and slices) that write the same data."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
