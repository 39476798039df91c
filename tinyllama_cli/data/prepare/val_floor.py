"""The floor of validation documents per source (`--val-min-docs`).

A document is val when a 64-bit hash of its text is under a threshold: `--val-fraction x 2**64`
for every source, which gives a small source no val document at all (1,200 documents at 0.001
expect 1.2). So every group also records the smallest hashes of its documents (at most the floor
of them), and once all groups are encoded the threshold of a source with fewer val documents than
the floor is raised to just above its floor-th smallest hash: exactly the floor's documents (the
same ones whatever the order or `--workers`), and its groups are encoded again with it. A source
holds out at most a tenth of its documents (`MAX_VAL_SHARE`): one too small for the floor gets
that and a warning (`datadir.manifest_warnings`).

Only a source whose groups all lie in this run (slice) can be floored: a slice sees part of a
larger source. Sources that large (over a slice's share of the input) have thousands of val
documents at the default fraction, so in practice the floor is met there by the hash alone.
"""

from __future__ import annotations

import heapq

from tinyllama_cli.data.prepare.datadir import MAX_VAL_SHARE
from tinyllama_cli.data.prepare.slices import Unit


def smallest(kept: list[int], hashes: list[int], k: int) -> list[int]:
    """The `k` smallest of `kept` (sorted) and `hashes`, sorted."""
    return heapq.nsmallest(k, [*kept, *hashes]) if k else []


def floor_of(documents: int, min_docs: int) -> int:
    """The val documents a source of `documents` gets at least: the floor, or a tenth."""
    return min(min_docs, documents // MAX_VAL_SHARE)


def floored_thresholds(all_units: list[Unit], units: list[Unit], stats: list[dict],
                       threshold: int, min_docs: int) -> dict[str, int]:
    """The raised threshold of every source of this run that gets fewer val documents than its
    floor at `threshold` (sources split across slices are left out)."""
    if not threshold or not min_docs:
        return {}
    in_run = {(u.source, u.index) for u in units}
    whole = {u.source for u in all_units} - {u.source for u in all_units
                                            if (u.source, u.index) not in in_run}
    raised = {}
    for source in sorted(whole):
        groups = [st for u, st in zip(units, stats) if u.source == source]
        documents = sum(sum(st["documents"].values()) for st in groups)
        k = floor_of(documents, min_docs)
        hashes = heapq.nsmallest(k, (h for st in groups for h in st["smallest_hashes"]))
        below = sum(1 for h in hashes if h < threshold)
        if k and below < k:
            raised[source] = hashes[k - 1] + 1
    return raised
