"""The floor of validation documents per source (`--val-min-docs`).

A document is val when a 64-bit hash of its text is under a threshold: `--val-fraction x 2**64`
for every source, which gives a small source no val document at all (1,200 documents at 0.001
expect 1.2). So the floor is shared out over the source's groups of input files (the groups are
a function of the file sizes, the same in every slice): each of its G groups holds at least
ceil(floor / G) val documents, at most a tenth of its own documents (`MAX_VAL_SHARE`). Every
group records its documents of smallest hash and where their tokens went; once all are encoded,
a group short of its share gets its threshold raised to just above its share-th smallest hash
(the same documents whatever `--workers` or `--num-shards`), and those documents' tokens are
moved from its train shards to its val shards by a copy, in input order, as if the group had been
encoded at that threshold; nothing is tokenized twice. Each group's choice depends on that group
alone, so slices merge into the unsliced output. A large source has one val document to find
per group, which the hash gives anyway (a group is ~256 MB of input), so the copy is only ever
made of a small source's groups. A source too small for the floor gets a warning
(`datadir.manifest_warnings`).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from tinyllama_cli.data.prepare.datadir import MAX_VAL_SHARE, SPLITS, ShardWriter
from tinyllama_cli.data.prepare.slices import Unit
from tinyllama_cli.files import write_json


def group_share(min_docs: int, groups: int) -> int:
    """The val documents each of a source's `groups` groups holds at least (before the cap)."""
    return -(-min_docs // groups) if groups else 0


def raised_thresholds(
    all_groups: list[Unit], units: list[Unit], stats: list[dict], threshold: int, min_docs: int
) -> dict[tuple[str, int], int]:
    """The raised threshold of every group of this run short of its share at `threshold`, by
    (source, group index)."""
    if not threshold or not min_docs:
        return {}
    groups = Counter(u.source for u in all_groups)
    raised = {}
    for u, st in zip(units, stats):
        documents = sum(st["documents"].values())
        k = min(group_share(min_docs, groups[u.source]), documents // MAX_VAL_SHARE)
        hashes = [c[0] for c in st["val_candidates"][:k]]
        if k and sum(1 for h in hashes if h < threshold) < k:
            raised[(u.source, u.index)] = hashes[k - 1] + 1
    return raised


def move_to_val(
    root: Path,
    u: Unit,
    stats: dict,
    threshold: int,
    dtype: str,
    shard_tokens: int,
    stats_path: Path,
) -> dict | None:
    """Rewrite group `u`'s shards as if split at `threshold`: its candidates under it go to val
    (in input order), the rest of train stays in order. Returns the new counts (also saved to
    `stats_path`), or None when the shards on disk are not the ones `stats` lists (a rewrite
    cut short): the caller then encodes the group again."""
    itemsize = np.dtype(dtype).itemsize
    streams = {split: _stream(root, stats["shards"][split], dtype) for split in SPLITS}
    if any(stream is None for stream in streams.values()):
        return None
    val = sorted((c for c in stats["val_candidates"] if c[0] < threshold), key=lambda c: c[5])
    moved = sorted((c[3], c[4]) for c in val if c[2] == "train")
    writers = {
        split: ShardWriter(root, u.source, split, u.index, shard_tokens, itemsize)
        for split in SPLITS
    }
    start = 0
    for offset, n in moved:
        writers["train"].write(streams["train"][start:offset])
        start = offset + n
    writers["train"].write(streams["train"][start:])
    for c in val:
        writers["val"].write(streams[c[2]][c[3] : c[3] + c[4]])
    shards = {split: w.close() for split, w in writers.items()}
    del streams
    stats_path.unlink()  # a rewrite cut short from here on leaves the group to encode again
    for split, w in writers.items():
        for old in stats["shards"][split][len(shards[split]) :]:
            (root / old["file"]).unlink()
        w.commit()
    new = _moved_counts(stats, val, shards, threshold)
    write_json(stats_path, new, indent=None)
    return new


def _stream(root: Path, shards: list[dict], dtype: str) -> np.ndarray | None:
    """One split's tokens from its shard files (read once), or None if a file is not as listed."""
    parts = []
    for shard in shards:
        path = root / shard["file"]
        if not path.is_file() or path.stat().st_size != shard["tokens"] * np.dtype(dtype).itemsize:
            return None
        parts.append(np.fromfile(path, dtype=dtype))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def _moved_counts(stats: dict, val: list[list], shards: dict, threshold: int) -> dict:
    """The group's counts once the `val` candidates are its val documents."""
    new = {
        **stats,
        "shards": shards,
        "val_threshold": threshold,
        "files": [
            dict(f, documents=dict(f["documents"]), tokens=dict(f["tokens"]))
            for f in stats["files"]
        ],
    }
    new["documents"], new["tokens"] = dict(stats["documents"]), dict(stats["tokens"])
    for c in val:
        if c[2] == "train":
            for counts in (new, new["files"][c[1]]):
                counts["documents"]["train"] -= 1
                counts["documents"]["val"] += 1
                counts["tokens"]["train"] -= c[4]
                counts["tokens"]["val"] += c[4]
    return new
