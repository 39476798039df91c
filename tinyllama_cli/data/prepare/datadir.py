"""What a data dir holds, as prepare-data and merge-data write it: the file names, the shard
writer, the per-source manifest entries and the manifest itself.

A split's stream is its shards concatenated, in the manifest's order. The shards of one group of
input files are named `<source>/<split>-GGGGG-PPP.bin` (group, part): each group's worker writes
them in place, so no later step copies tokens. A part holds at most `shard_tokens` tokens, and all
but a group's last exactly that many, so shards differ in size and a document may straddle two.
`data/dataset.py` is the reader.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TOKENIZER = "tokenizer.model"
LOG = "prepare-data.log"
FILES = "files.jsonl"
UNITS = "units"  # in OUT.partial: the counts of every finished group, a .json each
INDEX = "decontamination.npz"  # in OUT.partial: the eval-side index the workers load
SPLITS = ("train", "val")
MAX_VAL_SHARE = 10  # a source holds out at most 1/MAX_VAL_SHARE of its documents (`val_floor`)
TMP = ".tmp"
# Names a source may not take: the data dir's own files and the work dir's.
RESERVED = frozenset({MANIFEST, TOKENIZER, LOG, FILES, UNITS, INDEX, "settings.json"})
SHARD = re.compile(r"(?P<split>[a-z]+)-(?P<group>\d{5,})-(?P<part>\d{3,})\.bin")


def check_source_names(names: list[str]) -> None:
    """A source's folder must not take the place of the data dir's own files."""
    from tinyllama_cli.errors import UserError

    for name in names:
        if name in RESERVED:
            raise UserError(
                f"source name {name!r} is taken by the data dir's own files; give the "
                "source another name with NAME=PATH"
            )


def work_dir(out: Path) -> Path:
    """`OUT.partial`: where a data dir is built, renamed to OUT only when complete."""
    return out.with_name(out.name + ".partial")


def shard_file(source: str, split: str, group: int, part: int) -> str:
    """The data dir's relative name of one shard: part `part` of group `group`'s `split`."""
    return f"{source}/{split}-{group:05d}-{part:03d}.bin"


class ShardWriter:
    """Writes the token stream of one group's split as its parts of at most `shard_tokens`
    tokens, from byte chunks appended in order, under temporary names until `commit`."""

    def __init__(
        self, root: Path, source: str, split: str, group: int, shard_tokens: int, itemsize: int
    ):
        self.root, self.source, self.split, self.group = root, source, split, group
        self.shard_bytes = shard_tokens * itemsize
        self.itemsize = itemsize
        self.shards: list[dict] = []
        self._fh = None
        self._filled = 0

    def _open(self) -> None:
        rel = shard_file(self.source, self.split, self.group, len(self.shards))
        (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.root / (rel + TMP), "wb")  # noqa: SIM115 - closed by close()
        self.shards.append({"file": rel, "tokens": 0})
        self._filled = 0

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data).cast("B")
        while len(view):
            if self._fh is None or self._filled == self.shard_bytes:
                self._close_current()
                self._open()
            n = min(len(view), self.shard_bytes - self._filled)
            self._fh.write(view[:n])
            self._filled += n
            self.shards[-1]["tokens"] += n // self.itemsize
            view = view[n:]

    def _close_current(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def close(self) -> list[dict]:
        self._close_current()
        return self.shards

    def commit(self) -> None:
        """Give the closed parts their final names."""
        for shard in self.shards:
            os.replace(self.root / (shard["file"] + TMP), self.root / shard["file"])


def remove_group_shards(root: Path, source: str, group: int) -> None:
    """Delete what an earlier, unfinished or changed run left of one group's shards."""
    folder = root / source
    if folder.is_dir():
        for path in folder.glob(f"*-{group:05d}-*.bin*"):
            path.unlink()


def remove_unlisted_shards(root: Path, sources: dict) -> None:
    """Delete shard files under `root` that the manifest entries `sources` do not list: those of
    groups an earlier run had before its inputs changed."""
    listed = {
        s["file"] for entry in sources.values() for split in SPLITS for s in entry["shards"][split]
    }
    for name in sources:
        folder = root / name
        for path in folder.iterdir() if folder.is_dir() else ():
            if f"{name}/{path.name}" not in listed and (
                SHARD.fullmatch(path.name) or path.name.endswith(TMP)
            ):
                path.unlink()


def new_source_entry(spec: str) -> dict:
    return {
        "spec": spec,
        "files": 0,
        "documents": dict.fromkeys(SPLITS, 0),
        "tokens": dict.fromkeys(SPLITS, 0),
        "skipped": {},
        "shards": {s: [] for s in SPLITS},
    }


def add_counts(entry: dict, stats: dict) -> None:
    """Add the counts of one group of input files (or of a slice's whole source) to a source
    entry."""
    files = stats.get("files", 1)
    entry["files"] += files if isinstance(files, int) else len(files)
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
    (their val_loss is then missing), or held below the floor `--val-min-docs` because they are
    too small for it (a source holds out at most a tenth of its documents: `val_floor`)."""
    settings = manifest.get("settings", {})
    fraction, floor = settings.get("val_fraction"), settings.get("val_min_docs", 0)
    if not fraction:
        return []
    val = {name: s["documents"]["val"] for name, s in manifest["sources"].items()}
    empty = [name for name, n in val.items() if not n]
    small = [
        f"{name} ({val[name]} of {sum(s['documents'].values())})"
        for name, s in manifest["sources"].items()
        if 0 < val[name] < floor and val[name] <= sum(s["documents"].values()) // MAX_VAL_SHARE
    ]
    warnings = []
    if empty:
        warnings.append(
            f"source(s) {', '.join(empty)} got 0 validation documents at "
            f"--val-fraction {fraction:g}; their val_loss will be missing: raise "
            "--val-fraction (the split is a hash of each document) or add documents "
            f"(the floor --val-min-docs takes at most 1/{MAX_VAL_SHARE} of a source)"
        )
    if small:
        warnings.append(
            f"source(s) {', '.join(small)} are too small for --val-min-docs {floor}: "
            f"a source holds out at most 1/{MAX_VAL_SHARE} of its documents; their "
            "val_loss will be noisy"
        )
    return warnings
