"""One unit of work: a group of input files encoded, in order, into the group's own shards
`<source>/<split>-GGGGG-PPP.bin` of the data dir being built, plus `units/<source>/GGGGG.json`
with its counts, written last, so that a rerun can skip every group whose `.json` is there.

This is what the worker processes run. Groups are independent of each other and of the number of
workers, so the shards, and the data dir listing them, are the same for any `--workers`. A
document goes to the validation split when a hash of its text falls under the threshold: stable
across runs, machines and slicings, and exact duplicates share a split.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tinyllama_cli.data.prepare.datadir import (
    SPLITS,
    UNITS,
    ShardWriter,
    remove_group_shards,
)
from tinyllama_cli.data.prepare.decontaminate import (
    CONTAMINATED,
    EvalIndex,
    Hit,
    StreamedCheck,
    contaminated,
)
from tinyllama_cli.data.prepare.pool import Report, worker_report
from tinyllama_cli.data.prepare.slices import Unit
from tinyllama_cli.data.sources import (
    EMPTY_TEXT,
    EXCLUDED,
    InputFile,
    Reader,
    ReadOptions,
    Record,
)
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
    root: str  # the data dir being built (OUT.partial)
    tokenizer_path: str
    val_threshold: int  # a document is val when hash64(text) < this
    options: ReadOptions
    on_error: str
    fast: bool
    dtype: str
    shard_tokens: int
    index_path: str | None = None  # the decontamination index (`datadir.INDEX`)
    keep_smallest: int = 0  # how many of the smallest document hashes to record (`val_floor`)


# A worker process's encoders (one per tokenizer) and decontamination indexes, loaded once.
_ENCODERS: dict = {}
_INDEXES: dict[str, EvalIndex] = {}


def _encoder(path: str, fast: bool) -> DocumentEncoder:
    from tinyllama_cli.data.encoder import DocumentEncoder

    key = (path, fast)
    if key not in _ENCODERS:
        _ENCODERS[key] = DocumentEncoder(Path(path).read_bytes(), fast=fast)
    return _ENCODERS[key]


def _index(path: str | None) -> EvalIndex | None:
    if path is None:
        return None
    if path not in _INDEXES:
        _INDEXES[path] = EvalIndex.load(Path(path))
    return _INDEXES[path]


def doc_hash(text: str) -> int:
    """A 64-bit BLAKE2b hash of the UTF-8 text: what the split compares with its threshold."""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def is_val(text: str, threshold: int) -> bool:
    """The stable per-document split: a 64-bit hash of the UTF-8 text against a threshold."""
    return doc_hash(text) < threshold


def unit_stats_path(root: Path, u: Unit) -> Path:
    return root / UNITS / u.source / f"{u.index:05d}.json"


def process_unit(task: UnitTask, report: Report | None = None) -> dict:
    """Encode one group of input files into its shards; return its counts. Runs in a worker."""
    from tinyllama_cli.data.encoder import FastPathMismatch

    report = report or worker_report
    encoder = _encoder(task.tokenizer_path, task.fast)
    try:
        return _encode_group(task, encoder, report)
    except FastPathMismatch as exc:
        # Never expected for a model that passed `word_split_is_exact`; redo the group exactly.
        return _encode_group(
            task,
            _encoder(task.tokenizer_path, False),
            report,
            note=f"note: fell back to plain encoding ({exc})",
        )


class _SplitFiles:
    """The group's two splits, each written through a `ShardWriter`, with their counts."""

    def __init__(self, task: UnitTask):
        self.dtype = np.dtype(task.dtype)
        u = task.unit
        self.writers = {
            split: ShardWriter(
                Path(task.root), u.source, split, u.index, task.shard_tokens, self.dtype.itemsize
            )
            for split in SPLITS
        }
        self.documents = dict.fromkeys(SPLITS, 0)
        self.tokens = dict.fromkeys(SPLITS, 0)
        self.keep_smallest = task.keep_smallest
        # The group's documents of smallest hash, sorted: [hash, file, split, offset, tokens,
        # place] (offset in that split's stream, place in the group's input), so the val floor
        # can move them without encoding them again (`val_floor.move_to_val`).
        self.candidates: list[list] = []
        self.file_index = 0  # of the group's file being written
        self.seen = 0  # documents written

    def write_batch(
        self, texts: list[str], packed: np.ndarray, lengths: np.ndarray, threshold: int
    ) -> None:
        """A batch of documents (their ids packed), each to its split."""
        hashes = [doc_hash(t) for t in texts] if threshold or self.keep_smallest else []
        if self.keep_smallest:
            self._keep_candidates(hashes, lengths, threshold, self.tokens)
        self.write(_by_split(hashes, packed, lengths, threshold))

    def write_document(self, h: int, threshold: int, parts: Iterator[np.ndarray]) -> None:
        """One document of hash `h` given as consecutive parts of its `<s> ids </s>`, each
        written as it comes, to its split (what `write_batch` does for it whole)."""
        split = "val" if h < threshold else "train"
        before = dict(self.tokens)
        for part in parts:
            self.write({split: (part, 0)})
        self.documents[split] += 1
        if self.keep_smallest:
            n = self.tokens[split] - before[split]
            self._keep_candidates([h], np.array([n]), threshold, before)

    def _keep_candidates(
        self, hashes: list[int], lengths: np.ndarray, threshold: int, start: dict[str, int]
    ) -> None:
        in_val = [h < threshold for h in hashes]
        start = dict(start)
        places = []
        for i, (h, val, n) in enumerate(zip(hashes, in_val, lengths.tolist())):
            split = "val" if val else "train"
            places.append([h, self.file_index, split, start[split], n, self.seen + i])
            start[split] += n
        self.seen += len(hashes)
        self.candidates = heapq.nsmallest(self.keep_smallest, [*self.candidates, *places])

    def write(self, parts: dict[str, tuple[np.ndarray, int]]) -> None:
        for split, (part, docs) in parts.items():
            self.writers[split].write(part.astype(self.dtype))
            self.tokens[split] += len(part)
            self.documents[split] += docs

    def close(self) -> dict[str, list[dict]]:
        return {split: w.close() for split, w in self.writers.items()}

    def commit(self) -> None:
        for w in self.writers.values():
            w.commit()


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
            raise UserError(
                f"{where}: {record.reason} ({record.detail}); fix or remove it, "
                "or run with --on-error skip"
            )
        self.logged += 1
        if len(self.log) < MAX_LOG_LINES_PER_FILE:
            self.log.append(f"{where}: {record.reason}: {record.detail}".rstrip(": "))

    def add_contaminated(self, where: str, detail: str) -> None:
        """A document dropped by decontamination: asked for, so logged but never an error."""
        self.counts[CONTAMINATED] += 1
        self.logged += 1
        if len(self.log) < MAX_LOG_LINES_PER_FILE:
            self.log.append(f"{where}: {CONTAMINATED}: {detail}")

    def log_lines(self, path: str) -> list[str]:
        if self.logged > len(self.log):
            more = self.logged - len(self.log)
            self.log.append(f"{path}: ... {more} more skipped records not listed")
        return self.log


def _by_split(
    hashes: list[int], packed: np.ndarray, lengths: np.ndarray, threshold: int
) -> dict[str, tuple[np.ndarray, int]]:
    """The batch's tokens and document count per split (each document's ids stay together)."""
    if not threshold:
        return {"train": (packed, len(lengths))}
    in_val = np.fromiter((h < threshold for h in hashes), dtype=bool, count=len(hashes))
    token_in_val = np.repeat(in_val, lengths)
    return {
        "train": (packed[~token_in_val], len(hashes) - int(in_val.sum())),
        "val": (packed[token_in_val], int(in_val.sum())),
    }


def _encode_group(
    task: UnitTask, encoder: DocumentEncoder, report: Report, note: str | None = None
) -> dict:
    u, root = task.unit, Path(task.root)
    remove_group_shards(root, u.source, u.index)
    out = _SplitFiles(task)
    try:
        files = []
        for i, f in enumerate(u.files):
            out.file_index = i
            files.append(_encode_file(task, f, encoder, out, report))
    finally:
        shards = out.close()
    log = [line for f in files for line in f.pop("log")]
    if note:
        log.append(f"{u.files[0].path}: {note}")
    stats = {
        "source": u.source,
        "index": u.index,
        "files": files,
        "documents": out.documents,
        "tokens": out.tokens,
        "skipped": dict(sorted(sum((Counter(f["skipped"]) for f in files), Counter()).items())),
        "log": log,
        "shards": shards,
        "val_threshold": task.val_threshold,
        "val_candidates": out.candidates,
        "contaminated_by": [sum(c) for c in zip(*(f.pop("contaminated_by") for f in files))],
    }
    out.commit()
    path = unit_stats_path(root, u)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, stats, indent=None)
    return stats


@dataclass
class _FileWork:
    """What encoding one input file works with: the task, the file's reader, the group's
    encoder and split files, the progress report, and the file's own skips and documents
    dropped per eval file."""

    task: UnitTask
    reader: Reader
    encoder: DocumentEncoder
    out: _SplitFiles
    report: Report
    skips: _Skips = field(default_factory=_Skips)
    dropped: list[int] = field(default_factory=list)

    @property
    def path(self) -> str:
        return self.reader.file.path


def _encode_file(
    task: UnitTask, f: InputFile, encoder: DocumentEncoder, out: _SplitFiles, report: Report
) -> dict:
    """One input file of the group into `out`; returns its own counts and log lines."""
    index = _index(task.index_path)
    w = _FileWork(task, Reader(f, task.options), encoder, out, report)
    w.dropped = [0] * len(index.files) if index else []
    documents, tokens = dict(out.documents), dict(out.tokens)
    size = f.size
    if f.kind == "txt" and encoder.fast:
        _stream_txt(w)
    else:
        _encode_records(w)
    return {
        "path": f.path,
        "size": size,
        "mtime_ns": f.stat()[1],
        "documents": {s: out.documents[s] - documents[s] for s in SPLITS},
        "tokens": {s: out.tokens[s] - tokens[s] for s in SPLITS},
        "skipped": dict(sorted(w.skips.counts.items())),
        "log": w.skips.log_lines(f.path),
        "contaminated_by": w.dropped,
    }


def _encode_records(w: _FileWork) -> None:
    """The file's records, in batches of documents encoded whole; reports all its bytes."""
    task, reader, index = w.task, w.reader, _index(w.task.index_path)
    reported_bytes = 0
    texts: list[str] = []
    lines: list[int] = []
    chars = 0

    def flush() -> None:
        nonlocal texts, lines, chars, reported_bytes
        if index and texts:
            texts = _decontaminate(index, texts, lines, w.path, w.skips, w.dropped)
        if texts:
            packed, lengths = w.encoder.encode_packed(texts)
            w.out.write_batch(texts, packed, lengths, task.val_threshold)
            w.report(len(texts), len(packed), reader.bytes_done - reported_bytes)
            reported_bytes = reader.bytes_done
        texts, lines, chars = [], [], 0

    for record in reader:
        if record.text is None:
            w.skips.add(record, w.path, task.on_error)
            continue
        texts.append(record.text)
        lines.append(record.line)
        chars += len(record.text)
        if len(texts) >= BATCH_DOCS or chars >= BATCH_CHARS:
            flush()
    flush()
    w.report(0, 0, reader.file.size - reported_bytes)


def _stream_txt(w: _FileWork) -> None:
    """A .txt file (one document) in two passes over its pieces, holding neither the text nor
    its ids: the first finds what needs the whole text (valid UTF-8, not blank, the split's
    hash, decontamination), the second encodes piece by piece into the document's split. The
    output is byte for byte `_encode_records`'s (tested); reports all the file's bytes."""
    reader, encoder = w.reader, w.encoder
    h = _first_pass(w)
    if h is None:
        w.report(0, 0, reader.file.size)
        return
    reported = 0

    def parts() -> Iterator[np.ndarray]:
        nonlocal reported
        yield np.array([encoder.bos_id], dtype=np.int32)
        for i, piece in enumerate(reader.txt_pieces()):
            ids = encoder.encode_piece(piece, first=i == 0)
            w.report(0, len(ids) + (i == 0), reader.bytes_done - reported)
            reported = reader.bytes_done
            yield ids
        yield np.array([encoder.eos_id], dtype=np.int32)

    w.out.write_document(h, w.task.val_threshold, parts())
    w.report(1, 1, reader.file.size - reported)


def _first_pass(w: _FileWork) -> int | None:
    """The whole-text facts of a streamed .txt document: its `doc_hash`, or None when it is
    skipped (invalid UTF-8, blank, contaminated: counted and logged in `w.skips`)."""
    index = _index(w.task.index_path)
    digest = hashlib.blake2b(digest_size=8)  # `doc_hash`, fed piece by piece
    blank, check = True, StreamedCheck(index) if index else None
    for piece in w.reader.txt_pieces():
        w.report(0, 0, 0)  # a stopped run stops here too
        if isinstance(piece, Record):
            w.skips.add(piece, w.path, w.task.on_error)
            return None
        digest.update(piece.encode("utf-8", "surrogatepass"))
        blank = blank and not piece.strip()
        if check:
            check.add(piece)
    if blank:
        w.skips.add(Record(1, None, EMPTY_TEXT), w.path, w.task.on_error)
        return None
    if check and check.hit:
        _drop(index, check.hit, f"{w.path}:1", w.skips, w.dropped)
        return None
    return int.from_bytes(digest.digest(), "little")


def _decontaminate(
    index: EvalIndex,
    texts: list[str],
    lines: list[int],
    path: str,
    skips: _Skips,
    dropped: list[int],
) -> list[str]:
    """`texts` without the documents that share a span with an eval text; each dropped one is
    logged with a span and its eval files, and counted per eval file in `dropped`."""
    hits = contaminated(index, texts)
    for doc in sorted(hits):
        _drop(index, hits[doc], f"{path}:{lines[doc]}", skips, dropped)
    return [t for i, t in enumerate(texts) if i not in hits] if hits else texts


def _drop(index: EvalIndex, hit: Hit, where: str, skips: _Skips, dropped: list[int]) -> None:
    """Log and count one contaminated document (per eval file in `dropped`)."""
    names = [f["file"] for bit, f in enumerate(index.files) if hit.mask >> bit & 1]
    for bit in range(len(dropped)):
        dropped[bit] += hit.mask >> bit & 1
    skips.add_contaminated(where, f'shares "{hit.span}" with {", ".join(names)}')


def unit_done(root: Path, u: Unit, val_threshold: int | None = None) -> dict | None:
    """The saved counts of a group finished by an earlier run, if its inputs are unchanged (and
    it was split at `val_threshold`, when given)."""
    path = unit_stats_path(root, u)
    if not path.is_file():
        return None
    stats = json.loads(path.read_text())
    if val_threshold is not None and stats.get("val_threshold") != val_threshold:
        return None
    saved = [(f.get("path"), f.get("size"), f.get("mtime_ns")) for f in stats.get("files", [])]
    now = [(f.path, *f.stat()) for f in u.files]
    return stats if saved == now else None
