"""The built-in corpus: layouts readable as SlimPajama/Starcoderdata, determinism, refusal of an
existing directory, and multiple-choice files in the hub schemas that lm-eval reads offline."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import zstandard

from tinyllama_cli.data import builtin_corpus as bc
from tinyllama_cli.errors import UserError

TARGET = 120_000          # small: a test build reads the library once and writes ~0.5 MB
HELLASWAG_FIELDS = {"ind", "activity_label", "ctx_a", "ctx_b", "ctx", "endings", "source_id",
                    "split", "split_type", "label"}


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinyllama_cli", *args], check=False,
                          capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300)


@pytest.fixture(scope="module")
def library():
    return bc.Library.read(bc.stdlib_root(), seed=0)


@pytest.fixture(scope="module")
def built(tmp_path_factory, library):
    out = tmp_path_factory.mktemp("corpus") / "sample"
    summary = bc.build_sample_corpus(out, tokens_target=TARGET, library=library)
    return out, summary


@pytest.fixture(scope="module")
def held(library):
    return bc._material(library)[0]


def _records(out: Path) -> list[dict]:
    rows = []
    for chunk in sorted((out / "slimpajama").glob("chunk-*.jsonl.zst")):
        with zstandard.ZstdDecompressor().stream_reader(chunk.open("rb")) as reader:
            rows += [json.loads(line) for line in io.TextIOWrapper(reader, encoding="utf-8")]
    return rows


def _tree(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_slimpajama_layout(built):
    out, summary = built
    chunks = sorted((out / "slimpajama").glob("chunk-*.jsonl.zst"))
    assert [c.name for c in chunks] == summary.slimpajama_files and chunks
    rows = _records(out)
    assert len(rows) == summary.text_documents + summary.github_documents
    sets = {}
    for row in rows:
        assert set(row) == {"text", "meta"} and isinstance(row["text"], str) and row["text"].strip()
        name = row["meta"]["redpajama_set_name"]
        assert name.startswith("RedPajama")
        sets[name] = sets.get(name, 0) + 1
    assert sets.pop(bc.SET_GITHUB) == summary.github_documents >= 3      # for the exclude filter
    assert sets == summary.text_sets and len(sets) >= 3
    # Real English: the reference manual and docstring pages are in there.
    assert any("docstring" in r["text"] or "statement" in r["text"] for r in rows)
    assert summary.text_tokens >= 0.7 * TARGET * 0.9
    readme = (out / "README.md").read_text()
    assert f"{summary.text_documents:,} text documents" in readme and str(out) not in readme


def test_c_module_docstrings_come_from_an_isolated_interpreter(monkeypatch):
    """The pages do not depend on this process's state (a replaced sys.excepthook here)."""
    monkeypatch.setattr(sys, "excepthook", lambda *a: None)
    pages = bc.c_module_pages(("builtins", "math", "sys", "no_such_module"))
    assert set(pages) == {"builtins", "math", "sys"}
    assert "## class int" in pages["builtins"] and "## sqrt(x, /)" in pages["math"]
    assert "## excepthook(exctype, value, traceback, /)" in pages["sys"]


def test_starcoder_layout(built):
    out, summary = built
    files = sorted((out / "starcoder" / "python").glob("train-*.parquet"))
    assert [f.name for f in files] == summary.starcoder_files and files
    rows, groups = 0, 0
    for f in files:
        pf = pq.ParquetFile(f)
        assert {"content", "max_stars_repo_path", "max_stars_repo_name", "max_stars_count", "id"} <= set(
            pf.schema_arrow.names)
        groups += pf.num_row_groups
        for g in range(pf.num_row_groups):                 # readable one row group at a time
            table = pf.read_row_group(g, columns=["content", "max_stars_repo_path"])
            rows += table.num_rows
            for content, path in zip(*(table.column(c).to_pylist() for c in table.column_names)):
                assert content.strip() and path.endswith(".py")
    assert rows == summary.code_files and groups == summary.row_groups > 1
    # 7:3 text:code by estimated tokens (the code is cut at the first file past 3/7 of the text).
    assert summary.code_tokens >= summary.text_tokens * 3 / 7


def test_same_bytes_again_and_overwrite(built, tmp_path):
    """A second build in a fresh interpreter (other hash seed, via the CLI) writes the same bytes;
    --overwrite replaces what was there."""
    out, _ = built
    again = tmp_path / "again"
    again.mkdir()
    (again / "mine.txt").write_text("the user's file")
    proc = _cli("sample-corpus", "--out", str(again), "--tokens-target", str(TARGET), "--overwrite",
                env={"PYTHONHASHSEED": "12345"})
    assert proc.returncode == 0, proc.stderr
    assert _tree(again) == _tree(out)
    assert not list(tmp_path.glob(".again*"))              # no temporary directory left behind


def test_refuses_existing_dir(tmp_path):
    out = tmp_path / "corpus"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    proc = _cli("sample-corpus", "--out", str(out), "--tokens-target", str(TARGET))
    assert proc.returncode == 2
    assert "--overwrite" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    with pytest.raises(UserError, match="too small"):
        bc.build_sample_corpus(tmp_path / "x", tokens_target=10)


def test_held_out_material_is_not_in_the_corpus(built):
    out, summary = built
    assert summary.held_out and summary.hellaswag > 100 and summary.arc_easy > 100
    corpus = " ".join(bc.normalize(r["text"]) for r in _records(out))
    for f in (out / "starcoder" / "python").glob("*.parquet"):
        corpus += " ".join(bc.normalize(c) for c in pq.read_table(f).column("content").to_pylist())
    items = _jsonl(out / "eval" / "hellaswag.jsonl")
    for item in items[::10]:
        assert f"{item['ctx']} {item['endings'][int(item['label'])]}" not in corpus


def test_hellaswag_schema_and_true_endings(built, held):
    out, summary = built
    items = _jsonl(out / "eval" / "hellaswag.jsonl")
    assert len(items) == summary.hellaswag
    docs = {(e.module if e.kind == "topic" else f"{e.module}:{e.qualname}"): e.doc for e in held}
    labels = set()
    for i, item in enumerate(items):
        assert set(item) == HELLASWAG_FIELDS and item["ind"] == i
        assert item["ctx"] == item["ctx_a"] and item["ctx_b"] == "" and item["split"] == "val"
        assert isinstance(item["label"], str) and len(item["endings"]) == len(set(item["endings"])) == 4
        label = int(item["label"])
        labels.add(label)
        # The labelled ending is the sentence that follows the context in its source docstring;
        # the others are not.
        source = bc.normalize(docs[item["source_id"]])
        assert f"{item['ctx']} {item['endings'][label]}" in source
        for j, ending in enumerate(item["endings"]):
            if j != label:
                assert f"{item['ctx']} {ending}" not in source
        # lm-eval's hellaswag preprocessing (bracket removal) must leave the text as it is.
        assert not any(c in s for s in [item["ctx"], *item["endings"]] for c in "[]")
    assert labels == {0, 1, 2, 3}


def test_arc_easy_schema(built, held):
    out, summary = built
    items = _jsonl(out / "eval" / "arc_easy.jsonl")
    assert len(items) == summary.arc_easy
    ids = set()
    for item in items:
        assert set(item) == {"id", "question", "choices", "answerKey"}
        assert item["choices"]["label"] == ["A", "B", "C", "D"]
        texts = item["choices"]["text"]
        assert len(texts) == len(set(texts)) == 4 and item["answerKey"] in "ABCD"
        assert item["question"].startswith("Which ") and item["id"] not in ids
        ids.add(item["id"])
    # The answer is the module/function whose docstring the question quotes.
    summaries = {}
    for e in held:
        name = e.module if e.kind == "module" else e.qualname.split(".")[-1]
        summaries.setdefault(bc._summary(e.doc), set()).add(name)
    for item in items:
        quoted = item["question"].split('"', 1)[1].rsplit('"', 1)[0]
        answer = item["choices"]["text"]["ABCD".index(item["answerKey"])]
        assert answer in summaries[quoted]


def test_lm_eval_reads_the_files_offline(built, tmp_path):
    """lm-eval's own hellaswag and arc_easy definitions, pointed at the local files."""
    from lm_eval.tasks import TaskManager

    out, summary = built
    tasks_dir = Path(__import__("lm_eval").__file__).parent / "tasks"
    for task, builtin, split in (("hellaswag", "hellaswag/hellaswag.yaml", "validation"),
                                 ("arc_easy", "arc/arc_easy.yaml", "test")):
        splits = {"training_split": None, "validation_split": None, "test_split": None,
                  f"{split}_split": split}
        config = {"include": str(tasks_dir / builtin), "task": task, "dataset_path": "json",
                  "dataset_name": None,
                  "dataset_kwargs": {"data_files": {split: str(out / "eval" / f"{task}.jsonl")}},
                  **splits}
        (tmp_path / f"{task}.yaml").write_text(json.dumps(config))   # JSON is YAML
    tm = TaskManager(include_path=str(tmp_path), include_defaults=False)
    tasks = tm.load(["hellaswag", "arc_easy"])["tasks"]
    hs = tasks["hellaswag"]
    docs = list(hs.eval_docs)
    assert len(docs) == summary.hellaswag
    first = _jsonl(out / "eval" / "hellaswag.jsonl")[0]
    assert hs.doc_to_text(docs[0]) == f"{first['activity_label']}: {first['ctx']}"
    assert hs.doc_to_choice(docs[0]) == first["endings"] and hs.doc_to_target(docs[0]) == int(first["label"])
    arc = tasks["arc_easy"]
    assert len(list(arc.eval_docs)) == summary.arc_easy
