"""Assembly: the counts of every group listed, in input order, as the data dir's manifest.json,
files.jsonl and prepare-data.log. The groups' workers wrote the shards in place, so nothing is
copied: the disk holds the output once, plus the groups still being written.

The order is the input order, never the order the workers finished in, so the bytes are a pure
function of the inputs and settings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from tinyllama_cli.data.prepare.datadir import (
    FILES,
    LOG,
    MANIFEST,
    SPLITS,
    TOKENIZER,
    add_counts,
    build_manifest,
    new_source_entry,
    remove_unlisted_shards,
)
from tinyllama_cli.data.prepare.options import PrepareOptions
from tinyllama_cli.data.prepare.slices import Unit
from tinyllama_cli.data.sources import Source
from tinyllama_cli.files import write_json

if TYPE_CHECKING:
    from tinyllama_cli.tokenizer import Tokenizer


def assemble(
    work: Path,
    sources: list[Source],
    units: list[Unit],
    stats: list[dict],
    o: PrepareOptions,
    settings: dict,
    tok: Tokenizer,
    dtype: str,
    extra: dict,
) -> dict:
    """Write the listing files of `units` (with their `stats`) into `work`; return the
    manifest, with the entries of `extra` (`slice`, `decontamination`) that are not None."""
    entries = {s.name: new_source_entry(s.spec) for s in sources}
    # Listing problems (a glob that matched nothing) belong to the whole run: reported once.
    log_lines = _listing_problems(sources, entries) if o.shard_index == 0 else []
    files_lines: list[str] = []
    for u, st in zip(units, stats):
        entry = entries[u.source]
        add_counts(entry, st)
        for split in SPLITS:
            entry["shards"][split] += st["shards"][split]
        log_lines += st["log"]
        files_lines += [
            json.dumps(
                {
                    "source": u.source,
                    "path": f["path"],
                    "documents": f["documents"],
                    "tokens": f["tokens"],
                    "skipped": f["skipped"],
                }
            )
            for f in st["files"]
        ]
    remove_unlisted_shards(work, entries)
    tok_info = {
        "file": TOKENIZER,
        "sha256": tok.sha256,
        "vocab_size": tok.vocab_size,
        "bos_id": tok.bos_id,
        "eos_id": tok.eos_id,
    }
    manifest = build_manifest(tok_info, dtype, settings, entries)
    manifest.update({k: v for k, v in extra.items() if v is not None})
    (work / LOG).write_text("".join(line + "\n" for line in log_lines))
    (work / FILES).write_text("".join(line + "\n" for line in files_lines))
    write_json(work / MANIFEST, manifest, indent=2)
    return manifest


def _listing_problems(sources: list[Source], entries: dict) -> list[str]:
    """Count the sources' listing problems into their entries; return their log lines."""
    lines = []
    for s in sources:
        for reason, where, detail in s.problems:
            entries[s.name]["skipped"][reason] = entries[s.name]["skipped"].get(reason, 0) + 1
            lines.append(f"{where}: {reason}: {detail}")
    return lines
