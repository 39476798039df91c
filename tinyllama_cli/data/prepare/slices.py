"""Units of work and slices of a run: one unit per input file, a slice a contiguous byte-balanced
run of units, and the settings whose fingerprint names what a run's output depends on."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from tinyllama_cli.data.prepare.datadir import FORMAT_VERSION
from tinyllama_cli.data.prepare.options import PrepareOptions
from tinyllama_cli.data.sources import InputFile, Source


@dataclass(frozen=True)
class Unit:
    """One input file of a source: the unit of work, encoded by one worker at a time."""

    source: str
    index: int  # position of the file in its source
    file: InputFile
    size: int


def all_units(sources: list[Source]) -> list[Unit]:
    return [Unit(s.name, i, f, f.size) for s in sources for i, f in enumerate(s.files)]


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


def run_settings(sources: list[Source], o: PrepareOptions, tokenizer_key: dict) -> dict:
    """What the output depends on (not workers, on_error or the shard index)."""
    return {
        "format_version": FORMAT_VERSION,
        "sources": {s.name: s.spec for s in sources},
        "tokenizer": tokenizer_key,
        "val_fraction": o.val_fraction,
        "text_field": o.text_field,
        "exclude_meta": [f"{k}={v}" for k, v in o.exclude],
        "shard_tokens": o.shard_tokens,
        "num_shards": o.num_shards,
    }


def fingerprint(settings: dict) -> str:
    """A sha256 of the settings: equal for runs (and slices) that write the same data."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
