"""The files of the corpus: SlimPajama's zstd JSON-lines chunks, Starcoderdata's parquet files,
and plain JSON lines for the evaluation tasks.

The writers add nothing that changes from run to run: zstd level 3 one-shot (no timestamps in
the frames) and pyarrow's parquet (no creation time), so the same documents give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tinyllama_cli.data.sample_corpus.documents import Document, rank
from tinyllama_cli.data.sample_corpus.stdlib import split_wheel

CHUNK_BYTES = 2 << 20  # uncompressed bytes per SlimPajama chunk
PARQUET_BYTES = 1 << 20  # content bytes per Starcoderdata file
ROWS_PER_GROUP = 64


def _group(docs: list[Document], max_bytes: int) -> list[list[Document]]:
    """Consecutive documents in files of at most `max_bytes` characters (a longer document is a
    file of its own)."""
    groups: list[list[Document]] = [[]]
    size = 0
    for doc in docs:
        if groups[-1] and size + len(doc.text) > max_bytes:
            groups.append([])
            size = 0
        groups[-1].append(doc)
        size += len(doc.text)
    return [g for g in groups if g]


def _slimpajama_record(d: Document) -> dict:
    return {"text": d.text, "meta": {"redpajama_set_name": d.set_name, "source": d.key}}


def write_slimpajama(docs: list[Document], out: Path, seed: int) -> list[str]:
    """Chunks of JSON lines, zstd-compressed, records shuffled by rank across sets."""
    import zstandard

    out.mkdir(parents=True)
    docs = sorted(docs, key=lambda d: rank(seed, "record:" + d.key))
    names = []
    compressor = zstandard.ZstdCompressor(level=3, write_checksum=True)
    for i, group in enumerate(_group(docs, CHUNK_BYTES)):
        lines = "".join(json.dumps(_slimpajama_record(d), ensure_ascii=False) + "\n" for d in group)
        name = f"chunk-{i:05d}.jsonl.zst"
        (out / name).write_bytes(compressor.compress(lines.encode("utf-8")))
        names.append(name)
    return names


def repository(rel: str) -> tuple[str, str]:
    """(repository, path in it) of a library file, for Starcoderdata's max_stars_* columns."""
    wheel, member = split_wheel(rel)
    if wheel:
        return f"pypa/{wheel.split('-')[0]}", member
    return "python/cpython", f"Lib/{rel}"


def write_starcoder(docs: list[Document], out: Path) -> tuple[list[str], int]:
    """Parquet files with Starcoderdata's columns, each written in several row groups."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.mkdir(parents=True)
    schema = pa.schema(
        [
            ("max_stars_repo_path", pa.string()),
            ("max_stars_repo_name", pa.string()),
            ("max_stars_count", pa.int64()),
            ("id", pa.string()),
            ("content", pa.string()),
        ]
    )
    names, groups = [], 0
    for i, group in enumerate(_group(docs, PARQUET_BYTES)):
        table = pa.table(
            {
                "max_stars_repo_path": [repository(d.key)[1] for d in group],
                "max_stars_repo_name": [repository(d.key)[0] for d in group],
                "max_stars_count": pa.array([None] * len(group), pa.int64()),
                "id": [hashlib.sha1(d.key.encode()).hexdigest() for d in group],
                "content": [d.text for d in group],
            },
            schema=schema,
        )
        rows = max(1, min(ROWS_PER_GROUP, -(-len(group) // 4)))
        name = f"train-{i:05d}.parquet"
        pq.write_table(table, out / name, row_group_size=rows, compression="zstd")
        groups += pq.ParquetFile(out / name).num_row_groups
        names.append(name)
    return names, groups


def write_jsonl(rows: list[dict], path: Path) -> None:
    """JSON lines as the hub's datasets are read by lm-eval (UTF-8, not ASCII-escaped)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    path.write_text(lines, encoding="utf-8")
