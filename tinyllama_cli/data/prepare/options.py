"""The settings of one prepare-data run (the CLI flags) and the checks made on them before
anything is written, so that a mistake exits 2 with nothing on disk."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tinyllama_cli.errors import UserError

if TYPE_CHECKING:
    from tinyllama_cli.tokenizer import Tokenizer


@dataclass
class PrepareOptions:
    """Settings of one prepare-data run (the CLI flags).

    `exclude` takes (key, value) pairs or the flag's KEY=VALUE spellings (`--exclude-meta`);
    it holds pairs once built, and a spelling without `=` or without a key is refused."""

    out: Path
    tokenizer: Path | None = None
    train_tokenizer: bool = False
    vocab_size: int | None = None
    tokenizer_sample_mb: float = 64.0
    workers: int = 1
    val_fraction: float = 0.001
    val_min_docs: int = 10  # the floor of val documents per source (`val_floor`)
    text_field: str | None = None
    exclude: tuple[tuple[str, str], ...] = ()
    on_error: str = "skip"
    shard_tokens: int = 1 << 27
    shard_index: int = 0
    num_shards: int = 1
    overwrite: bool = False
    fast_encode: bool = True
    decontaminate: tuple[Path, ...] = ()  # eval files whose n-word spans drop a document
    decontaminate_ngram: int = 13

    def __post_init__(self) -> None:
        self.exclude = parse_key_values(self.exclude, "--exclude-meta")
        self.decontaminate = tuple(Path(p) for p in self.decontaminate)


def parse_key_values(
    items: Iterable[str | tuple[str, str]], flag: str
) -> tuple[tuple[str, str], ...]:
    """KEY=VALUE spellings (or ready pairs) -> (key, value) pairs; the value may be empty."""
    pairs = []
    for item in items:
        if isinstance(item, str):
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise UserError(f"{flag} takes KEY=VALUE, not {item!r}")
            item = (key, value)
        pairs.append(tuple(item))
    return tuple(pairs)


def check_options(o: PrepareOptions) -> None:
    if o.on_error not in ("skip", "fail"):
        raise UserError(f"--on-error must be skip or fail, not {o.on_error!r}")
    if o.workers < 1:
        raise UserError("--workers must be at least 1")
    if not 0.0 <= o.val_fraction < 1.0:
        raise UserError(f"--val-fraction must be in [0, 1), not {o.val_fraction}")
    if o.val_min_docs < 0:
        raise UserError(f"--val-min-docs must be 0 or more, not {o.val_min_docs}")
    if o.shard_tokens < 1:
        raise UserError("--shard-tokens must be positive")
    if o.num_shards < 1 or not 0 <= o.shard_index < o.num_shards:
        raise UserError(f"--shard-index must be in [0, {o.num_shards}) and --num-shards at least 1")
    if o.train_tokenizer == (o.tokenizer is not None):
        raise UserError(
            "pass exactly one of --tokenizer FILE.model or --train-tokenizer --vocab-size N"
        )
    if o.train_tokenizer and (o.vocab_size is None or o.vocab_size < 260):
        raise UserError(
            "--train-tokenizer needs --vocab-size N with N >= 260 (256 byte pieces + specials)"
        )
    if o.tokenizer_sample_mb <= 0:
        raise UserError("--tokenizer-sample-mb must be positive")
    if o.decontaminate_ngram < 1:
        raise UserError("--decontaminate-ngram must be at least 1 (words per span)")
    for path in o.decontaminate:
        if not path.is_file():
            raise UserError(
                f"--decontaminate {path} does not exist; pass an eval task file "
                "(.jsonl/.parquet in the hub schema) or texts (.txt/.jsonl)"
            )


def load_tokenizer(path: Path) -> Tokenizer:
    """The tokenizer at `path`, refused unless it has the <s> and </s> every document gets."""
    from tinyllama_cli.tokenizer import Tokenizer

    tok = Tokenizer(path)
    if tok.bos_id < 0 or tok.eos_id < 0:
        raise UserError(
            f"{path} has no <s>/</s> pieces; use a Llama-style tokenizer or --train-tokenizer"
        )
    return tok


def dtype_for(vocab_size: int) -> str:
    """The token dtype of a data dir: uint16 while every id fits, else uint32."""
    return "uint16" if vocab_size <= 65535 else "uint32"
