"""One unit of work: an input file encoded into `units/<source>/NNNNN.{train,val}.bin` plus a
`.json` of its counts, written last, so that a rerun can skip every unit whose `.json` is there.

This is what the worker processes run. Units are independent of each other and of the number of
workers, so the unit outputs, and the data dir assembled from them, are the same for any
`--workers`. A document goes to the validation split when a hash of its text falls under the
threshold: stable across runs, machines and slicings, and exact duplicates share a split.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tinyllama_cli.data.prepare.datadir import SPLITS
from tinyllama_cli.data.prepare.pool import Report, worker_report
from tinyllama_cli.data.prepare.slices import Unit
from tinyllama_cli.data.sources import EXCLUDED, Reader, ReadOptions, Record
from tinyllama_cli.errors import UserError
from tinyllama_cli.files import write_json

if TYPE_CHECKING:
    from tinyllama_cli.data.encoder import DocumentEncoder

BATCH_DOCS = 512
BATCH_CHARS = 4 << 20
MAX_LOG_LINES_PER_FILE = 10_000


@dataclass(frozen=True)
class UnitTask:
    unit: Unit
    unit_dir: str
    tokenizer_path: str
    val_threshold: int  # a document is val when hash64(text) < this
    options: ReadOptions
    on_error: str
    fast: bool
    dtype: str


# A worker process's encoders: one per tokenizer, built once.
_ENCODERS: dict = {}


def _encoder(path: str, fast: bool) -> DocumentEncoder:
    from tinyllama_cli.data.encoder import DocumentEncoder

    key = (path, fast)
    if key not in _ENCODERS:
        _ENCODERS[key] = DocumentEncoder(Path(path).read_bytes(), fast=fast)
    return _ENCODERS[key]


def is_val(text: str, threshold: int) -> bool:
    """The stable per-document split: a 64-bit hash of the UTF-8 text against a threshold."""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") < threshold


def process_unit(task: UnitTask, report: Report | None = None) -> dict:
    """Encode one input file into its unit outputs; return its counts. Runs in a worker."""
    from tinyllama_cli.data.encoder import FastPathMismatch

    report = report or worker_report
    encoder = _encoder(task.tokenizer_path, task.fast)
    try:
        return _encode_file(task, encoder, report)
    except FastPathMismatch as exc:
        # Never expected for a model that passed `word_split_is_exact`; redo the file exactly.
        plain = _encoder(task.tokenizer_path, False)
        stats = _encode_file(task, plain, report)
        stats["log"].append(f"{task.unit.file.path}: note: fell back to plain encoding ({exc})")
        return stats


class _SplitFiles:
    """The unit's two split files, written under `.tmp` names, with their counts."""

    def __init__(self, stem: str, dtype: np.dtype):
        self.stem, self.dtype = stem, dtype
        self.documents = dict.fromkeys(SPLITS, 0)
        self.tokens = dict.fromkeys(SPLITS, 0)
        self.files = {split: open(f"{stem}.{split}.bin.tmp", "wb")  # noqa: SIM115 - see close()
                      for split in SPLITS}

    def write(self, parts: dict[str, tuple[np.ndarray, int]]) -> None:
        for split, (part, docs) in parts.items():
            part.astype(self.dtype).tofile(self.files[split])
            self.tokens[split] += len(part)
            self.documents[split] += docs

    def close(self) -> None:
        for fh in self.files.values():
            fh.close()

    def rename(self) -> None:
        for split in SPLITS:
            os.replace(f"{self.stem}.{split}.bin.tmp", f"{self.stem}.{split}.bin")


@dataclass
class _Skips:
    """Records without text: counted by reason; the first MAX_LOG_LINES_PER_FILE are logged."""

    counts: Counter = field(default_factory=Counter)
    log: list[str] = field(default_factory=list)
    logged: int = 0

    def add(self, record: Record, path: str, on_error: str) -> None:
        self.counts[record.reason] += 1
        where = f"{path}:{record.line}"
        if record.reason == EXCLUDED:  # asked for: counted, not an error to log
            return
        if on_error == "fail":
            raise UserError(f"{where}: {record.reason} ({record.detail}); fix or remove it, "
                            "or run with --on-error skip")
        self.logged += 1
        if len(self.log) < MAX_LOG_LINES_PER_FILE:
            self.log.append(f"{where}: {record.reason}: {record.detail}".rstrip(": "))

    def log_lines(self, path: str) -> list[str]:
        if self.logged > len(self.log):
            more = self.logged - len(self.log)
            self.log.append(f"{path}: ... {more} more skipped records not listed")
        return self.log


def _by_split(texts: list[str], packed: np.ndarray, lengths: np.ndarray,
              threshold: int) -> dict[str, tuple[np.ndarray, int]]:
    """The batch's tokens and document count per split (each document's ids stay together)."""
    if not threshold:
        return {"train": (packed, len(texts))}
    in_val = np.fromiter((is_val(t, threshold) for t in texts), dtype=bool, count=len(texts))
    token_in_val = np.repeat(in_val, lengths)
    return {"train": (packed[~token_in_val], len(texts) - int(in_val.sum())),
            "val": (packed[token_in_val], int(in_val.sum()))}


def _encode_file(task: UnitTask, encoder: DocumentEncoder, report: Report) -> dict:
    u = task.unit
    stem = os.path.join(task.unit_dir, f"{u.index:05d}")
    skips = _Skips()
    reader = Reader(u.file, task.options)
    reported_bytes = 0
    texts: list[str] = []
    chars = 0

    def flush() -> None:
        nonlocal texts, chars, reported_bytes
        if not texts:
            return
        packed, lengths = encoder.encode_packed(texts)
        out.write(_by_split(texts, packed, lengths, task.val_threshold))
        report(len(texts), len(packed), reader.bytes_done - reported_bytes)
        reported_bytes = reader.bytes_done
        texts, chars = [], 0

    out = _SplitFiles(stem, np.dtype(task.dtype))
    try:
        for record in reader:
            if record.text is None:
                skips.add(record, u.file.path, task.on_error)
                continue
            texts.append(record.text)
            chars += len(record.text)
            if len(texts) >= BATCH_DOCS or chars >= BATCH_CHARS:
                flush()
        flush()
    finally:
        out.close()
    report(0, 0, u.size - reported_bytes)
    stats = {
        "source": u.source, "index": u.index, "path": u.file.path, "size": u.size,
        "mtime_ns": os.stat(u.file.path).st_mtime_ns,
        "documents": out.documents, "tokens": out.tokens,
        "skipped": dict(sorted(skips.counts.items())),
        "log": skips.log_lines(u.file.path),
    }
    out.rename()
    write_json(Path(f"{stem}.json"), stats, indent=None)
    return stats


def unit_done(unit_dir: Path, u: Unit) -> dict | None:
    """The saved counts of a unit finished by an earlier run, if its input is unchanged."""
    path = unit_dir / f"{u.index:05d}.json"
    if not path.is_file():
        return None
    stats = json.loads(path.read_text())
    st = os.stat(u.file.path)
    unchanged = (stats["path"], stats["size"], stats["mtime_ns"]) == (u.file.path, st.st_size,
                                                                       st.st_mtime_ns)
    return stats if unchanged else None
