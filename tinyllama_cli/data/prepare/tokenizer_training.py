"""`--train-tokenizer`: a Llama-style BPE trained on a bounded, deterministic sample of the
inputs, so the tokenizer (and the data dir) does not depend on `--workers` or the slicing."""

from __future__ import annotations

from pathlib import Path

from tinyllama_cli.data.prepare.options import PrepareOptions
from tinyllama_cli.data.sources import ReadOptions, Source, read_records
from tinyllama_cli.errors import UserError


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


def train_on_sample(sources: list[Source], read_options: ReadOptions, o: PrepareOptions,
                    path: Path) -> None:
    """Train `--vocab-size` pieces on the sample of `--tokenizer-sample-mb` and save to `path`."""
    from tinyllama_cli.tokenizer import train_tokenizer

    sample = tokenizer_sample(sources, read_options, int(o.tokenizer_sample_mb * 1e6))
    if not sample:
        raise UserError("no documents to train a tokenizer on; check the inputs or pass "
                        "--tokenizer")
    train_tokenizer(sample, o.vocab_size, path, num_threads=max(1, o.workers))
