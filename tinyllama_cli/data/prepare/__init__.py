"""prepare-data: sources -> tokenizer -> packed token shards + manifest.json.

How a run goes, and why:

1. Everything that can be checked is checked first (inputs exist, the tokenizer loads, the output
   is free, flags make sense), so a mistake exits 2 before anything is written (`options`).
2. Work happens in `OUT.partial/`, renamed to `OUT` only when complete: an interrupted run leaves
   no half-written data dir, and a rerun with the same settings resumes there (`api`).
3. The unit of work is a group of consecutive input files of one source (made from the file
   sizes alone, `slices`). A worker reads it, drops documents that share a span with an eval
   text (`--decontaminate`, `decontaminate`), encodes the rest in batches straight into the
   group's own shards `<source>/<split>-GGGGG-PPP.bin`, and writes `units/<source>/GGGGG.json`
   with its counts last. A rerun skips every group whose `.json` is there (and whose files'
   sizes and mtimes still match). Groups are independent, so any number of workers gives the
   same shards (`units`, run by `pool`).
4. Groups short of their share of `--val-min-docs` are encoded again at a raised val threshold
   (`val_floor`). Assembly then lists every group's shards and counts, in input order, as the
   manifest: nothing is copied, so the bytes are a pure function of the inputs and settings,
   whatever `--workers` is (`assemble`, in the format of `datadir`).
5. `--num-shards K --shard-index I` takes a contiguous, byte-balanced slice of the groups
   (in the global order, `slices`), so `merge_data` recreates exactly the unsliced run by
   concatenation (`merge`).

Every document becomes `<s> ids </s>`; nothing is truncated or padded. A document goes to the
validation split when a hash of its text falls under `--val-fraction` (or its group's raised
threshold), so the choice is stable across runs, machines and slicings, and exact duplicates
always land in the same split. `--train-tokenizer` trains on a fixed sampled budget spread over
all input files (`tokenizer_training`).
"""

from tinyllama_cli.data.prepare.api import PrepareResult, ProgressSink, prepare_data
from tinyllama_cli.data.prepare.datadir import manifest_warnings
from tinyllama_cli.data.prepare.merge import merge_data
from tinyllama_cli.data.prepare.options import PrepareOptions, dtype_for
from tinyllama_cli.data.prepare.units import is_val

__all__ = [
    "PrepareOptions",
    "PrepareResult",
    "ProgressSink",
    "dtype_for",
    "is_val",
    "manifest_warnings",
    "merge_data",
    "prepare_data",
]
