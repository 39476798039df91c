"""The floor of validation documents per source (`--val-min-docs`).

A document is val when a 64-bit hash of its text is under a threshold: `--val-fraction x 2**64`
for every source, which gives a small source no val document at all (1,200 documents at 0.001
expect 1.2). So the floor is shared out over the source's groups of input files (the groups are
a function of the file sizes, the same in every slice): each of its G groups holds at least
ceil(floor / G) val documents, at most a tenth of its own documents (`MAX_VAL_SHARE`). Every
group records the smallest hashes of its documents; once all are encoded, a group short of its
share gets its threshold raised to just above its share-th smallest hash, the same documents
whatever `--workers` or `--num-shards`, and is encoded again. Each group's choice depends on
that group alone, so slices merge into the unsliced output. A large source has one val document
to find per group, which the hash gives anyway (a group is ~256 MB of input), so the floor costs
a second pass only for small sources. A source too small for the floor gets a warning
(`datadir.manifest_warnings`).
"""

from __future__ import annotations

import heapq
from collections import Counter

from tinyllama_cli.data.prepare.datadir import MAX_VAL_SHARE
from tinyllama_cli.data.prepare.slices import Unit


def smallest(kept: list[int], hashes: list[int], k: int) -> list[int]:
    """The `k` smallest of `kept` (sorted) and `hashes`, sorted."""
    return heapq.nsmallest(k, [*kept, *hashes]) if k else []


def group_share(min_docs: int, groups: int) -> int:
    """The val documents each of a source's `groups` groups holds at least (before the cap)."""
    return -(-min_docs // groups) if groups else 0


def raised_thresholds(all_groups: list[Unit], units: list[Unit], stats: list[dict],
                      threshold: int, min_docs: int) -> dict[tuple[str, int], int]:
    """The raised threshold of every group of this run short of its share at `threshold`, by
    (source, group index)."""
    if not threshold or not min_docs:
        return {}
    groups = Counter(u.source for u in all_groups)
    raised = {}
    for u, st in zip(units, stats):
        documents = sum(st["documents"].values())
        k = min(group_share(min_docs, groups[u.source]), documents // MAX_VAL_SHARE)
        hashes = st["smallest_hashes"][:k]
        if k and sum(1 for h in hashes if h < threshold) < k:
            raised[(u.source, u.index)] = hashes[k - 1] + 1
    return raised
