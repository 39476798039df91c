"""prepare-data: sources -> tokenizer -> packed token shards + manifest.json.

How a run goes, and why:

1. Everything that can be checked is checked first (inputs exist, the tokenizer loads, the output
   is free, flags make sense), so a mistake exits 2 before anything is written (`options`).
2. Work happens in `OUT.partial/`, renamed to `OUT` only when complete: an interrupted run leaves
   no half-written data dir, and a rerun with the same settings resumes there (`api`).
3. The unit of work is one input file. A worker reads it, encodes its documents in batches and
   writes `units/<source>/NNNNN.{train,val}.bin` plus a `.json` with its counts, renamed into
   place last. A rerun skips every file whose `.json` is there (and whose size and mtime still
   match). Files are independent, so any number of workers gives the same unit outputs
   (`units`, run by `pool`).
4. Assembly concatenates the unit outputs of each source in input-file order into fixed-size
   shards (`--shard-tokens`; documents may straddle two shards; the last one is partial). The
   bytes are therefore a pure function of the inputs and settings, whatever `--workers` is
   (`assemble`, in the format of `datadir`).
5. `--num-shards K --shard-index I` takes a contiguous, byte-balanced slice of the input files
   (in the global order, `slices`), so `merge_data` recreates exactly the unsliced run by
   concatenation (`merge`).

Every document becomes `<s> ids </s>`; nothing is dropped or padded. A document goes to the
validation split when a hash of its text falls under `--val-fraction`, so the choice is stable
across runs, machines and slicings, and exact duplicates always land in the same split.
`--train-tokenizer` trains on a bounded sample of every input file (`tokenizer_training`).
"""

from tinyllama_cli.data.prepare.api import PrepareResult, ProgressSink, prepare_data
from tinyllama_cli.data.prepare.datadir import manifest_warnings
from tinyllama_cli.data.prepare.merge import merge_data
from tinyllama_cli.data.prepare.options import PrepareOptions, dtype_for
from tinyllama_cli.data.prepare.units import is_val

__all__ = ["PrepareOptions", "PrepareResult", "ProgressSink", "dtype_for", "is_val",
           "manifest_warnings", "merge_data", "prepare_data"]
