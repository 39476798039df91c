"""`--train-tokenizer`: a Llama-style BPE trained on a bounded, deterministic sample of the
inputs, so the tokenizer (and the data dir) does not depend on `--workers` or the slicing.

The sample is a fixed budget of characters spread over all input files: an equal share from
the start of every file while the files are few, and once a share would fall below one piece
(TinyLlama's 59k SlimPajama chunks: 64 MB / 59k = 1 KB), one piece from each of as many files as
the budget pays for, chosen by a seeded hash of their place in their source. Reading the start
of every file in order instead took ~240 MB from 59k files in the main process. The files are
read by the worker pool, a small block at a time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from tinyllama_cli.data.prepare.options import PrepareOptions
from tinyllama_cli.data.prepare.pool import Report, run_tasks
from tinyllama_cli.data.sources import InputFile, Reader, ReadOptions, Record, Source
from tinyllama_cli.errors import UserError

PIECE_CHARS = 4096  # SentencePiece's trainer skips longer sentences
SAMPLE_SEED = b"tinyllama-tokenizer-sample-1"
READ_BLOCK = 1 << 16  # a file's start is read this much at a time, not the 4 MB of a full read


@dataclass(frozen=True)
class SampleTask:
    """Read the first `chars` characters of documents from `file`."""

    file: InputFile
    options: ReadOptions
    chars: int
    piece_chars: int


def sample_plan(
    keys: list[str], budget_chars: int, piece_chars: int = PIECE_CHARS
) -> list[tuple[int, int]]:
    """(file position, characters to read) for the files of the sample, in file order: every file
    an equal share when each gets at least a piece, else one piece from each of the
    `budget_chars // piece_chars` files whose seeded hash of `keys[i]` is smallest. At most
    `budget_chars` in all (at least one piece)."""
    if not keys:
        return []
    share = max(budget_chars // len(keys), piece_chars)
    count = min(len(keys), max(1, budget_chars // share))
    if count == len(keys):
        return [(i, share) for i in range(len(keys))]
    ranked = sorted(
        range(len(keys)),
        key=lambda i: hashlib.blake2b(keys[i].encode(), key=SAMPLE_SEED, digest_size=8).digest(),
    )
    return [(i, share) for i in sorted(ranked[:count])]


def tokenizer_sample(
    sources: list[Source],
    options: ReadOptions,
    budget_chars: int,
    piece_chars: int = PIECE_CHARS,
    workers: int = 1,
) -> list[str]:
    """A bounded, deterministic sample for tokenizer training (see the module docstring), cut
    into pieces SentencePiece accepts; the same for any `workers`."""
    files = [f for s in sources for f in s.files]
    keys = [f"{s.name}/{i}" for s in sources for i in range(len(s.files))]
    tasks = [
        SampleTask(files[i], options, chars, piece_chars)
        for i, chars in sample_plan(keys, budget_chars, piece_chars)
    ]
    parts = run_tasks(sample_file, tasks, workers, lambda *a: None, [t.chars for t in tasks])
    return [piece for part in parts for piece in part]


def sample_file(task: SampleTask, report: Report | None = None) -> list[str]:
    """The first `task.chars` characters of the documents of one file, in pieces. Runs in a
    worker."""
    sample: list[str] = []
    taken = 0
    records = (
        [Record(1, _txt_start(task))]
        if task.file.kind == "txt"
        else Reader(task.file, task.options, block=READ_BLOCK)
    )
    for record in records:
        if record.text is None:
            continue
        text = record.text[: task.chars - taken]
        sample += [text[i : i + task.piece_chars] for i in range(0, len(text), task.piece_chars)]
        taken += len(text)
        if taken >= task.chars:
            break
    return sample


def _txt_start(task: SampleTask) -> str | None:
    """The first `task.chars` characters of a .txt document, or None where the whole-file reader
    skips it (invalid UTF-8 anywhere, blank): one pass to check, then only its start is kept."""
    reader = Reader(task.file, task.options)
    blank = True
    for piece in reader.txt_pieces():
        if isinstance(piece, Record):
            return None
        blank = blank and not piece.strip()
    if blank:
        return None
    start, n = [], 0
    for piece in reader.txt_pieces():
        start.append(piece)
        n += len(piece)
        if n >= task.chars:
            break
    return "".join(start)[: task.chars]


def train_on_sample(
    sources: list[Source], read_options: ReadOptions, o: PrepareOptions, path: Path
) -> None:
    """Train `--vocab-size` pieces on the sample of `--tokenizer-sample-mb` and save to `path`."""
    from tinyllama_cli.tokenizer import train_tokenizer

    sample = tokenizer_sample(
        sources, read_options, int(o.tokenizer_sample_mb * 1e6), workers=o.workers
    )
    if not sample:
        raise UserError(
            "no documents to train a tokenizer on; check the inputs or pass --tokenizer"
        )
    train_tokenizer(sample, o.vocab_size, path, num_threads=max(1, o.workers))
