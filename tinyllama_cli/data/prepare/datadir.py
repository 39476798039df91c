"""What a data dir holds, as prepare-data and merge-data write it: the file names, the shard
writer, the per-source manifest entries and the manifest itself.

A split's stream is its shards concatenated: shards hold exactly `shard_tokens` tokens (the last
one fewer), so a document may straddle two shards. `data/dataset.py` is the reader.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TOKENIZER = "tokenizer.model"
LOG = "prepare-data.log"
FILES = "files.jsonl"
SPLITS = ("train", "val")
COPY_TOKENS = 1 << 24


def work_dir(out: Path) -> Path:
    """`OUT.partial`: where a data dir is built, renamed to OUT only when complete."""
    return out.with_name(out.name + ".partial")


class ShardWriter:
    """Writes one token stream as `<prefix>-NNNNN.bin` files of exactly `shard_tokens` tokens
    (the last one partial), from byte chunks appended in order."""

    def __init__(self, root: Path, rel_prefix: str, shard_tokens: int, itemsize: int):
        self.root, self.rel_prefix = root, rel_prefix
        self.shard_bytes = shard_tokens * itemsize
        self.itemsize = itemsize
        self.shards: list[dict] = []
        self._fh = None
        self._filled = 0

    def _open(self) -> None:
        rel = f"{self.rel_prefix}-{len(self.shards):05d}.bin"
        (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.root / rel, "wb")  # noqa: SIM115 - closed by close()
        self.shards.append({"file": rel, "tokens": 0})
        self._filled = 0

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while len(view):
            if self._fh is None or self._filled == self.shard_bytes:
                self._close_current()
                self._open()
            n = min(len(view), self.shard_bytes - self._filled)
            self._fh.write(view[:n])
            self._filled += n
            self.shards[-1]["tokens"] += n // self.itemsize
            view = view[n:]

    def copy_file(self, path: Path) -> None:
        with open(path, "rb") as fh:
            while chunk := fh.read(COPY_TOKENS * self.itemsize):
                self.write(chunk)

    def _close_current(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def close(self) -> list[dict]:
        self._close_current()
        return self.shards


def write_split(root: Path, source: str, split: str, shard_tokens: int, itemsize: int,
                parts: Iterable[Path]) -> list[dict]:
    """The files `parts` concatenated, in order, into the shards of `source`'s `split` under
    `root`; returns their manifest entries (file, tokens)."""
    writer = ShardWriter(root, f"{source}/{split}", shard_tokens, itemsize)
    for path in parts:
        writer.copy_file(path)
    return writer.close()


def new_source_entry(spec: str) -> dict:
    return {"spec": spec, "files": 0, "documents": dict.fromkeys(SPLITS, 0),
            "tokens": dict.fromkeys(SPLITS, 0), "skipped": {}, "shards": {s: [] for s in SPLITS}}


def add_counts(entry: dict, stats: dict) -> None:
    """Add the counts of one input file (or of a slice's whole source) to a source entry."""
    entry["files"] += stats.get("files", 1)
    for split in SPLITS:
        entry["documents"][split] += stats["documents"][split]
        entry["tokens"][split] += stats["tokens"][split]
    skipped = Counter(entry["skipped"])
    skipped.update(stats["skipped"])
    entry["skipped"] = dict(sorted(skipped.items()))


def build_manifest(tok_info: dict, dtype: str, settings: dict, sources: dict) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "created_by": "tinyllama prepare-data",
        "tokenizer": tok_info,
        "dtype": dtype,
        "settings": {k: v for k, v in settings.items() if k not in ("tokenizer", "num_shards")},
        "sources": sources,
    }


def manifest_warnings(manifest: dict) -> list[str]:
    """What a user should fix before training on this data: sources without validation data
    (a small source at --val-fraction 0.001 gets none, and its val_loss is then missing)."""
    fraction = manifest.get("settings", {}).get("val_fraction")
    empty = [name for name, s in manifest["sources"].items() if not s["documents"]["val"]]
    if not empty or not fraction:
        return []
    return [(f"source(s) {', '.join(empty)} got 0 validation documents at --val-fraction "
             f"{fraction:g}; their val_loss will be missing: raise --val-fraction (the split is "
             "a hash of each document)")]
