"""prepare-data: sources -> tokenizer -> packed token shards + manifest.json.

How a run goes, and why:

1. Everything that can be checked is checked first (inputs exist, the tokenizer loads, the output
   is free, flags make sense), so a mistake exits 2 before anything is written.
2. Work happens in `OUT.partial/`, renamed to `OUT` only when complete: an interrupted run leaves
   no half-written data dir, and a rerun with the same settings resumes there.
3. The unit of work is one input file. A worker reads it, encodes its documents in batches and
   writes `units/<source>/NNNNN.{train,val}.bin` plus a `.json` with its counts, renamed into
   place last. A rerun skips every file whose `.json` is there (and whose size and mtime still
   match). Files are independent, so any number of workers gives the same unit outputs.
4. Assembly concatenates the unit outputs of each source in input-file order into fixed-size
   shards (`--shard-tokens`; documents may straddle two shards; the last one is partial). The
   bytes are therefore a pure function of the inputs and settings, whatever `--workers` is.
5. `--num-shards K --shard-index I` takes a contiguous, byte-balanced slice of the input files
   (in the global order), so `merge_data` recreates exactly the unsliced run by concatenation.

Every document becomes `<s> ids </s>`; nothing is dropped or padded. A document goes to the
validation split when a hash of its text falls under `--val-fraction`, so the choice is stable
across runs, machines and slicings, and exact duplicates always land in the same split.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from tinyllama_cli.data.sources import (
    EXCLUDED,
    InputFile,
    Reader,
    ReadOptions,
    Source,
    read_records,
    resolve_sources,
)
from tinyllama_cli.errors import UserError
from tinyllama_cli.files import check_new_dir, publish, write_json
from tinyllama_cli.files import copy as copy_file

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TOKENIZER = "tokenizer.model"
LOG = "prepare-data.log"
FILES = "files.jsonl"
SPLITS = ("train", "val")
BATCH_DOCS = 512
BATCH_CHARS = 4 << 20
MAX_LOG_LINES_PER_FILE = 10_000
COPY_TOKENS = 1 << 24


@dataclass
class PrepareOptions:
    """Settings of one prepare-data run (the CLI flags)."""

    out: Path
    tokenizer: Path | None = None
    train_tokenizer: bool = False
    vocab_size: int | None = None
    tokenizer_sample_mb: float = 64.0
    workers: int = 1
    val_fraction: float = 0.001
    text_field: str | None = None
    exclude: tuple[tuple[str, str], ...] = ()
    on_error: str = "skip"
    shard_tokens: int = 1 << 27
    shard_index: int = 0
    num_shards: int = 1
    overwrite: bool = False
    fast_encode: bool = True


class ProgressSink(Protocol):
    """What `prepare_data` reports to (the CLI's rich progress bar implements it)."""

    def start(self, total_bytes: int, done_bytes: int, files: int, resumed: int) -> None: ...
    def advance(self, documents: int, tokens: int, nbytes: int) -> None: ...
    def stage(self, text: str) -> None: ...


@dataclass
class PrepareResult:
    out: Path
    manifest: dict
    files_processed: int
    files_resumed: int
    elapsed_s: float
    tokens_per_s: float = 0.0
    log_lines: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def warnings(self) -> list[str]:
        return manifest_warnings(self.manifest)


def manifest_warnings(manifest: dict) -> list[str]:
    """What a user should fix before training on this data: sources without validation data
    (a small source at --val-fraction 0.001 gets none, and its val_loss is then missing)."""
    fraction = manifest.get("settings", {}).get("val_fraction")
    empty = [name for name, s in manifest["sources"].items() if not s["documents"]["val"]]
    if not empty or not fraction:
        return []
    return [(f"source(s) {', '.join(empty)} got 0 validation documents at --val-fraction {fraction:g}; "
            "their val_loss will be missing: raise --val-fraction (the split is a hash of each document)")]


# --- checks before anything is written --------------------------------------------------------


def _check_options(o: PrepareOptions) -> None:
    if o.on_error not in ("skip", "fail"):
        raise UserError(f"--on-error must be skip or fail, not {o.on_error!r}")
    if o.workers < 1:
        raise UserError("--workers must be at least 1")
    if not 0.0 <= o.val_fraction < 1.0:
        raise UserError(f"--val-fraction must be in [0, 1), not {o.val_fraction}")
    if o.shard_tokens < 1:
        raise UserError("--shard-tokens must be positive")
    if o.num_shards < 1 or not 0 <= o.shard_index < o.num_shards:
        raise UserError(f"--shard-index must be in [0, {o.num_shards}) and --num-shards at least 1")
    if o.train_tokenizer == (o.tokenizer is not None):
        raise UserError("pass exactly one of --tokenizer FILE.model or --train-tokenizer --vocab-size N")
    if o.train_tokenizer and (o.vocab_size is None or o.vocab_size < 260):
        raise UserError("--train-tokenizer needs --vocab-size N with N >= 260 (256 byte pieces + specials)")
    if o.tokenizer_sample_mb <= 0:
        raise UserError("--tokenizer-sample-mb must be positive")


def _load_tokenizer(path: Path):
    from tinyllama_cli.tokenizer import Tokenizer

    tok = Tokenizer(path)
    if tok.bos_id < 0 or tok.eos_id < 0:
        raise UserError(f"{path} has no <s>/</s> pieces; use a Llama-style tokenizer or --train-tokenizer")
    return tok


def dtype_for(vocab_size: int) -> str:
    return "uint16" if vocab_size <= 65535 else "uint32"


# --- slicing and fingerprints -------------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
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


def _settings(sources: list[Source], o: PrepareOptions, tokenizer_key: dict) -> dict:
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


def _fingerprint(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


# --- the per-file worker ------------------------------------------------------------------------


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


_ENCODERS: dict = {}
_QUEUE = None
_STOP = None


class _Stopped(Exception):
    """Raised in a worker when the main process has asked everyone to stop (another failed)."""


def _init_worker(queue, stop) -> None:
    global _QUEUE, _STOP
    _QUEUE, _STOP = queue, stop


def _encoder(path: str, fast: bool):
    from tinyllama_cli.data.encoder import DocumentEncoder

    key = (path, fast)
    if key not in _ENCODERS:
        _ENCODERS[key] = DocumentEncoder(Path(path).read_bytes(), fast=fast)
    return _ENCODERS[key]


def is_val(text: str, threshold: int) -> bool:
    """The stable per-document split: a 64-bit hash of the UTF-8 text against a threshold."""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") < threshold


def process_unit(task: UnitTask, report=None) -> dict:
    """Encode one input file into its unit outputs; return its counts. Runs in a worker."""
    from tinyllama_cli.data.encoder import FastPathMismatch

    report = report or _queue_report
    encoder = _encoder(task.tokenizer_path, task.fast)
    try:
        return _encode_file(task, encoder, report)
    except FastPathMismatch as exc:
        # Never expected for a model that passed `word_split_is_exact`; redo the file exactly.
        plain = _encoder(task.tokenizer_path, False)
        stats = _encode_file(task, plain, report)
        stats["log"].append(f"{task.unit.file.path}: note: fell back to plain encoding ({exc})")
        return stats


def _queue_report(documents: int, tokens: int, nbytes: int) -> None:
    if _STOP is not None and _STOP.is_set():
        raise _Stopped
    if _QUEUE is not None:
        _QUEUE.put((documents, tokens, nbytes))


def _encode_file(task: UnitTask, encoder, report) -> dict:
    u = task.unit
    stem = os.path.join(task.unit_dir, f"{u.index:05d}")
    dtype = np.dtype(task.dtype)
    documents = dict.fromkeys(SPLITS, 0)
    tokens = dict.fromkeys(SPLITS, 0)
    skipped: Counter = Counter()
    log: list[str] = []
    logged = 0
    reader = Reader(u.file, task.options)
    reported_bytes = 0
    texts: list[str] = []
    chars = 0
    threshold = task.val_threshold

    def flush() -> None:
        nonlocal texts, chars, reported_bytes
        if not texts:
            return
        packed, lengths = encoder.encode_packed(texts)
        parts = {"train": (packed, len(texts))}
        if threshold:
            in_val = np.fromiter((is_val(t, threshold) for t in texts), dtype=bool, count=len(texts))
            token_in_val = np.repeat(in_val, lengths)
            parts = {"train": (packed[~token_in_val], len(texts) - int(in_val.sum())),
                     "val": (packed[token_in_val], int(in_val.sum()))}
        for split, (part, docs) in parts.items():
            part.astype(dtype).tofile(files[split])
            tokens[split] += len(part)
            documents[split] += docs
        report(len(texts), len(packed), reader.bytes_done - reported_bytes)
        reported_bytes = reader.bytes_done
        texts, chars = [], 0

    files = {split: open(f"{stem}.{split}.bin.tmp", "wb") for split in SPLITS}  # noqa: SIM115
    try:
        for record in reader:
            if record.text is None:
                skipped[record.reason] += 1
                where = f"{u.file.path}:{record.line}"
                if record.reason == EXCLUDED:  # asked for: counted, not an error to log
                    continue
                if task.on_error == "fail":
                    raise UserError(f"{where}: {record.reason} ({record.detail}); fix or remove it, "
                                    "or run with --on-error skip")
                logged += 1
                if len(log) < MAX_LOG_LINES_PER_FILE:
                    log.append(f"{where}: {record.reason}: {record.detail}".rstrip(": "))
                continue
            texts.append(record.text)
            chars += len(record.text)
            if len(texts) >= BATCH_DOCS or chars >= BATCH_CHARS:
                flush()
        flush()
    finally:
        for fh in files.values():
            fh.close()
    report(0, 0, u.size - reported_bytes)
    if logged > len(log):
        log.append(f"{u.file.path}: ... {logged - len(log)} more skipped records not listed")
    stats = {
        "source": u.source, "index": u.index, "path": u.file.path, "size": u.size,
        "mtime_ns": os.stat(u.file.path).st_mtime_ns,
        "documents": documents, "tokens": tokens, "skipped": dict(sorted(skipped.items())),
        "log": log,
    }
    for split in SPLITS:
        os.replace(f"{stem}.{split}.bin.tmp", f"{stem}.{split}.bin")
    write_json(Path(f"{stem}.json"), stats, indent=None)
    return stats


# --- running the units --------------------------------------------------------------------------


def _unit_done(unit_dir: Path, u: Unit) -> dict | None:
    """The saved counts of a unit finished by an earlier run, if its input is unchanged."""
    path = unit_dir / f"{u.index:05d}.json"
    if not path.is_file():
        return None
    stats = json.loads(path.read_text())
    st = os.stat(u.file.path)
    if stats["path"] != u.file.path or stats["size"] != st.st_size or stats["mtime_ns"] != st.st_mtime_ns:
        return None
    return stats


def _run_units(tasks: list[UnitTask], workers: int, progress: ProgressSink | None) -> list[dict]:
    report = progress.advance if progress else (lambda *a: None)
    if workers == 1 or len(tasks) <= 1:
        return [process_unit(t, report) for t in tasks]
    import multiprocessing as mp
    import queue as queue_mod
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = mp.get_context("spawn")  # no fork: the parent may hold threads (rich's refresher)
    q, stop = ctx.Queue(), ctx.Event()
    results: dict[int, dict] = {}
    with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=ctx, initializer=_init_worker,
                             initargs=(q, stop)) as pool:
        # Largest files first keeps the workers busy to the end; the order of outputs is fixed later.
        order = sorted(range(len(tasks)), key=lambda i: -tasks[i].unit.size)
        futures = {pool.submit(process_unit, tasks[i]): i for i in order}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                _drain(q, report, queue_mod)
                for f in done:
                    results[futures[f]] = f.result()
        except BaseException:
            stop.set()  # running workers give up at their next batch instead of finishing files
            for f in pending:
                f.cancel()
            raise
    _drain(q, report, queue_mod)  # after the workers exited, so their last reports have arrived
    return [results[i] for i in range(len(tasks))]


def _drain(q, report, queue_mod) -> None:
    while True:
        try:
            report(*q.get_nowait())
        except queue_mod.Empty:
            return


# --- tokenizer training -------------------------------------------------------------------------


def tokenizer_sample(sources: list[Source], options: ReadOptions, budget_chars: int,
                     piece_chars: int = 4096) -> list[str]:
    """A bounded, deterministic sample for tokenizer training: an equal share of characters from
    the start of every input file (of every slice), cut into pieces SentencePiece accepts."""
    files = [f for s in sources for f in s.files]
    if not files:
        return []
    share = max(budget_chars // len(files), piece_chars)
    sample: list[str] = []
    for f in files:
        taken = 0
        for record in read_records(f, options):
            if record.text is None:
                continue
            text = record.text[: share - taken]
            sample += [text[i:i + piece_chars] for i in range(0, len(text), piece_chars)]
            taken += len(text)
            if taken >= share:
                break
    return sample


def _train_tokenizer(sources, read_options, o: PrepareOptions, path: Path):
    from tinyllama_cli.tokenizer import train_tokenizer

    sample = tokenizer_sample(sources, read_options, int(o.tokenizer_sample_mb * 1e6))
    if not sample:
        raise UserError("no documents to train a tokenizer on; check the inputs or pass --tokenizer")
    return train_tokenizer(sample, o.vocab_size, path, num_threads=max(1, o.workers))


# --- assembly -----------------------------------------------------------------------------------


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


def _new_source_entry(spec: str) -> dict:
    return {"spec": spec, "files": 0, "documents": dict.fromkeys(SPLITS, 0),
            "tokens": dict.fromkeys(SPLITS, 0), "skipped": {}, "shards": {s: [] for s in SPLITS}}


def _add_counts(entry: dict, stats: dict) -> None:
    entry["files"] += stats.get("files", 1)
    for split in SPLITS:
        entry["documents"][split] += stats["documents"][split]
        entry["tokens"][split] += stats["tokens"][split]
    skipped = Counter(entry["skipped"])
    skipped.update(stats["skipped"])
    entry["skipped"] = dict(sorted(skipped.items()))


def _manifest(tok_info: dict, dtype: str, settings: dict, sources: dict) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "created_by": "tinyllama prepare-data",
        "tokenizer": tok_info,
        "dtype": dtype,
        "settings": {k: v for k, v in settings.items() if k not in ("tokenizer", "num_shards")},
        "sources": sources,
    }


def _assemble(work: Path, sources: list[Source], units: list[Unit], stats: list[dict],
              o: PrepareOptions, settings: dict, tok, dtype: str, slice_info: dict | None) -> dict:
    itemsize = np.dtype(dtype).itemsize
    entries = {s.name: _new_source_entry(s.spec) for s in sources}
    log_lines: list[str] = []
    files_lines: list[str] = []
    if o.shard_index == 0:  # listing problems belong to the whole run: report them once
        for s in sources:
            for reason, where, detail in s.problems:
                entries[s.name]["skipped"][reason] = entries[s.name]["skipped"].get(reason, 0) + 1
                log_lines.append(f"{where}: {reason}: {detail}")
    for s in sources:
        src_units = [(u, st) for u, st in zip(units, stats) if u.source == s.name]
        for split in SPLITS:
            writer = ShardWriter(work, f"{s.name}/{split}", o.shard_tokens, itemsize)
            for u, _ in src_units:
                writer.copy_file(work / "units" / s.name / f"{u.index:05d}.{split}.bin")
            entries[s.name]["shards"][split] = writer.close()
        for u, st in src_units:
            _add_counts(entries[s.name], st)
            log_lines += st["log"]
            files_lines.append(json.dumps({
                "source": s.name, "path": u.file.path, "documents": st["documents"],
                "tokens": st["tokens"], "skipped": st["skipped"]}))
    tok_info = {"file": TOKENIZER, "sha256": tok.sha256, "vocab_size": tok.vocab_size,
                "bos_id": tok.bos_id, "eos_id": tok.eos_id}
    manifest = _manifest(tok_info, dtype, settings, entries)
    if slice_info:
        manifest["slice"] = slice_info
    (work / LOG).write_text("".join(line + "\n" for line in log_lines))
    (work / FILES).write_text("".join(line + "\n" for line in files_lines))
    write_json(work / MANIFEST, manifest, indent=2)
    return manifest


# --- the entry point ----------------------------------------------------------------------------


def prepare_data(specs: list[str], o: PrepareOptions, progress: ProgressSink | None = None) -> PrepareResult:
    """Tokenize the sources `specs` ([NAME=]PATH...) into the data dir `o.out` (see module doc)."""
    t0 = time.perf_counter()
    _check_options(o)
    out = Path(o.out)
    sources = resolve_sources(specs)
    if o.on_error == "fail":
        for s in sources:
            for reason, where, detail in s.problems:
                raise UserError(f"{where}: {reason} ({detail}); fix the pattern or run with --on-error skip")
    tok = _load_tokenizer(Path(o.tokenizer)) if o.tokenizer else None
    check_new_dir(out, o.overwrite)
    read_options = ReadOptions(o.text_field, tuple(o.exclude))
    tokenizer_key = ({"sha256": tok.sha256} if tok else
                     {"train_vocab_size": o.vocab_size, "sample_mb": o.tokenizer_sample_mb})
    settings = _settings(sources, o, tokenizer_key)
    fingerprint = _fingerprint(settings)
    units = slice_of(all_units(sources), o.shard_index, o.num_shards)

    work = out.with_name(out.name + ".partial")
    _open_work_dir(work, _fingerprint({**settings, "shard_index": o.shard_index}), settings, o)
    tok_path = work / TOKENIZER
    if tok is not None:
        if not tok_path.is_file():
            copy_file(Path(o.tokenizer), tok_path)
    elif not tok_path.is_file():
        if progress:
            progress.stage("training the tokenizer")
        _train_tokenizer(sources, read_options, o, tok_path)
    tok = _load_tokenizer(tok_path)
    dtype = dtype_for(tok.vocab_size)

    stats: list[dict | None] = []
    for s in sources:
        (work / "units" / s.name).mkdir(parents=True, exist_ok=True)
    for u in units:
        stats.append(_unit_done(work / "units" / u.source, u))
    todo = [i for i, st in enumerate(stats) if st is None]
    threshold = round(o.val_fraction * 2**64)
    tasks = [UnitTask(units[i], str(work / "units" / units[i].source), str(tok_path), threshold,
                      read_options, o.on_error, o.fast_encode, dtype) for i in todo]
    if progress:
        progress.start(sum(u.size for u in units), sum(u.size for u, st in zip(units, stats) if st),
                       len(units), len(units) - len(todo))
    t_encode = time.perf_counter()
    for i, st in zip(todo, _run_units(tasks, o.workers, progress)):
        stats[i] = st
    encode_s = time.perf_counter() - t_encode
    if progress:
        progress.stage("writing shards")
    slice_info = ({"index": o.shard_index, "count": o.num_shards, "fingerprint": fingerprint}
                  if o.num_shards > 1 else None)
    manifest = _assemble(work, sources, units, stats, o, settings, tok, dtype, slice_info)
    shutil.rmtree(work / "units")
    (work / "settings.json").unlink()
    publish(work, out)
    if progress:
        progress.stage("done")
    new_tokens = sum(sum(stats[i]["tokens"].values()) for i in todo)
    return PrepareResult(
        out=out, manifest=manifest, files_processed=len(todo), files_resumed=len(units) - len(todo),
        elapsed_s=time.perf_counter() - t0, tokens_per_s=new_tokens / encode_s if encode_s > 0 else 0.0,
        log_lines=(out / LOG).read_text().count("\n"),
    )


def _open_work_dir(work: Path, fingerprint: str, settings: dict, o: PrepareOptions) -> None:
    """Create `work`, or resume it when an earlier run with the same settings left it."""
    marker = work / "settings.json"
    if work.exists():
        previous = json.loads(marker.read_text()).get("fingerprint") if marker.is_file() else None
        if previous == fingerprint:
            return
        if not o.overwrite:
            raise UserError(f"{work} holds an unfinished run with other settings; pass --overwrite "
                            "to discard it, or rerun with the same settings to resume")
        shutil.rmtree(work)
    work.mkdir(parents=True)
    write_json(marker, {"fingerprint": fingerprint, "settings": settings}, indent=2)


# --- merging slices -----------------------------------------------------------------------------


def merge_data(slice_dirs: Iterable[str | Path], out: str | Path, overwrite: bool = False,
               shard_tokens: int | None = None) -> dict:
    """Combine the data dirs of `--shard-index 0..K-1 --num-shards K` into one data dir, byte for
    byte the one an unsliced run would have written."""
    out = Path(out)
    dirs = [Path(d) for d in slice_dirs]
    manifests = []
    for d in dirs:
        if not (d / MANIFEST).is_file():
            raise UserError(f"{d} has no {MANIFEST}; pass the --out dirs of finished sliced runs")
        m = json.loads((d / MANIFEST).read_text())
        if "slice" not in m:
            raise UserError(f"{d} is not a slice (it was not written with --num-shards); nothing to merge")
        manifests.append(m)
    count = manifests[0]["slice"]["count"]
    fingerprints = {m["slice"]["fingerprint"] for m in manifests}
    if len(fingerprints) > 1:
        raise UserError("the slices were prepared with different inputs or settings; rerun them alike")
    if len({m["tokenizer"]["sha256"] for m in manifests}) > 1:
        raise UserError("the slices used different tokenizers; prepare them all with the same --tokenizer")
    by_index = {m["slice"]["index"]: (d, m) for d, m in zip(dirs, manifests)}
    if sorted(by_index) != list(range(count)) or len(dirs) != count:
        got = sorted(m["slice"]["index"] for m in manifests)
        raise UserError(f"need each of the {count} slices exactly once, got indices {got}")
    check_new_dir(out, overwrite)
    ordered = [by_index[i] for i in range(count)]
    first = ordered[0][1]
    shard_tokens = shard_tokens or first["settings"]["shard_tokens"]
    itemsize = np.dtype(first["dtype"]).itemsize
    work = out.with_name(out.name + ".partial")
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    copy_file(ordered[0][0] / TOKENIZER, work / TOKENIZER)
    sources = {}
    for name, spec_entry in first["sources"].items():
        entry = _new_source_entry(spec_entry["spec"])
        for split in SPLITS:
            writer = ShardWriter(work, f"{name}/{split}", shard_tokens, itemsize)
            for d, m in ordered:
                for shard in m["sources"][name]["shards"][split]:
                    writer.copy_file(d / shard["file"])
            entry["shards"][split] = writer.close()
        for _, m in ordered:
            _add_counts(entry, m["sources"][name])
        sources[name] = entry
    settings = dict(first["settings"], shard_tokens=shard_tokens)
    manifest = {k: v for k, v in first.items() if k != "slice"}
    manifest.update(settings=settings, sources=sources)
    for name in (LOG, FILES):
        with open(work / name, "wb") as fh:
            for d, _ in ordered:
                fh.write((d / name).read_bytes())
    write_json(work / MANIFEST, manifest, indent=2)
    publish(work, out)
    return manifest

