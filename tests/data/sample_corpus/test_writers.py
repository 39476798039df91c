"""The corpus's files read as SlimPajama and Starcoderdata are read: records, sets, row groups."""

from __future__ import annotations

import pyarrow.parquet as pq

from tests.data.sample_corpus.corpus_files import TARGET, records
from tinyllama_cli.data.sample_corpus.documents import SET_GITHUB


def test_slimpajama_layout(built):
    out, summary = built
    chunks = sorted((out / "slimpajama").glob("chunk-*.jsonl.zst"))
    assert [c.name for c in chunks] == summary.slimpajama_files and chunks
    rows = records(out)
    assert len(rows) == summary.text_documents + summary.github_documents
    sets = {}
    for row in rows:
        assert set(row) == {"text", "meta"} and isinstance(row["text"], str) and row["text"].strip()
        name = row["meta"]["redpajama_set_name"]
        assert name.startswith("RedPajama")
        sets[name] = sets.get(name, 0) + 1
    assert sets.pop(SET_GITHUB) == summary.github_documents >= 3  # for the exclude filter
    assert sets == summary.text_sets and len(sets) >= 3
    # Real English: the reference manual and docstring pages are in there.
    assert any("docstring" in r["text"] or "statement" in r["text"] for r in rows)
    assert summary.text_tokens >= 0.7 * TARGET * 0.9
    readme = (out / "README.md").read_text()
    assert f"{summary.text_documents:,} text documents" in readme and str(out) not in readme


def test_starcoder_layout(built):
    out, summary = built
    files = sorted((out / "starcoder" / "python").glob("train-*.parquet"))
    assert [f.name for f in files] == summary.starcoder_files and files
    rows, groups = 0, 0
    for f in files:
        pf = pq.ParquetFile(f)
        assert {
            "content",
            "max_stars_repo_path",
            "max_stars_repo_name",
            "max_stars_count",
            "id",
        } <= set(pf.schema_arrow.names)
        groups += pf.num_row_groups
        for g in range(pf.num_row_groups):  # readable one row group at a time
            table = pf.read_row_group(g, columns=["content", "max_stars_repo_path"])
            rows += table.num_rows
            for content, path in zip(*(table.column(c).to_pylist() for c in table.column_names)):
                assert content.strip() and path.endswith(".py")
    assert rows == summary.code_files and groups == summary.row_groups > 1
    # 7:3 text:code by estimated tokens (the code is cut at the first file past 3/7 of the text).
    assert summary.code_tokens >= summary.text_tokens * 3 / 7
