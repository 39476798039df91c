"""The held-out evaluation files: nothing of them in the corpus, the hub schemas, true answers,
and lm-eval's own task definitions reading them offline."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from tests.data.sample_corpus.corpus_files import jsonl, records
from tinyllama_cli.data.sample_corpus.eval_tasks import _summary
from tinyllama_cli.data.sample_corpus.prose import normalize

HELLASWAG_FIELDS = {
    "ind",
    "activity_label",
    "ctx_a",
    "ctx_b",
    "ctx",
    "endings",
    "source_id",
    "split",
    "split_type",
    "label",
}


def test_held_out_material_is_not_in_the_corpus(built):
    out, summary = built
    assert summary.held_out and summary.hellaswag > 100 and summary.arc_easy > 100
    corpus = " ".join(normalize(r["text"]) for r in records(out))
    for f in (out / "starcoder" / "python").glob("*.parquet"):
        corpus += " ".join(normalize(c) for c in pq.read_table(f).column("content").to_pylist())
    items = jsonl(out / "eval" / "hellaswag.jsonl")
    for item in items[::10]:
        assert f"{item['ctx']} {item['endings'][int(item['label'])]}" not in corpus


def test_hellaswag_schema_and_true_endings(built, held):
    out, summary = built
    items = jsonl(out / "eval" / "hellaswag.jsonl")
    assert len(items) == summary.hellaswag
    docs = {(e.module if e.kind == "topic" else f"{e.module}:{e.qualname}"): e.doc for e in held}
    labels = set()
    for i, item in enumerate(items):
        assert set(item) == HELLASWAG_FIELDS and item["ind"] == i
        assert item["ctx"] == item["ctx_a"] and item["ctx_b"] == "" and item["split"] == "val"
        assert isinstance(item["label"], str)
        assert len(item["endings"]) == len(set(item["endings"])) == 4
        label = int(item["label"])
        labels.add(label)
        # The labelled ending is the sentence that follows the context in its source docstring;
        # the others are not.
        source = normalize(docs[item["source_id"]])
        assert f"{item['ctx']} {item['endings'][label]}" in source
        for j, ending in enumerate(item["endings"]):
            if j != label:
                assert f"{item['ctx']} {ending}" not in source
        # lm-eval's hellaswag preprocessing (bracket removal) must leave the text as it is.
        assert not any(c in s for s in [item["ctx"], *item["endings"]] for c in "[]")
    assert labels == {0, 1, 2, 3}


def test_arc_easy_schema(built, held):
    out, summary = built
    items = jsonl(out / "eval" / "arc_easy.jsonl")
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
        summaries.setdefault(_summary(e.doc), set()).add(name)
    for item in items:
        quoted = item["question"].split('"', 1)[1].rsplit('"', 1)[0]
        answer = item["choices"]["text"]["ABCD".index(item["answerKey"])]
        assert answer in summaries[quoted]


def test_lm_eval_reads_the_files_offline(built, tmp_path):
    """lm-eval's own hellaswag and arc_easy definitions, pointed at the local files."""
    from lm_eval.tasks import TaskManager

    out, summary = built
    tasks_dir = Path(__import__("lm_eval").__file__).parent / "tasks"
    for task, builtin, split in (
        ("hellaswag", "hellaswag/hellaswag.yaml", "validation"),
        ("arc_easy", "arc/arc_easy.yaml", "test"),
    ):
        splits = {
            "training_split": None,
            "validation_split": None,
            "test_split": None,
            f"{split}_split": split,
        }
        config = {
            "include": str(tasks_dir / builtin),
            "task": task,
            "dataset_path": "json",
            "dataset_name": None,
            "dataset_kwargs": {"data_files": {split: str(out / "eval" / f"{task}.jsonl")}},
            **splits,
        }
        (tmp_path / f"{task}.yaml").write_text(json.dumps(config))  # JSON is YAML
    tm = TaskManager(include_path=str(tmp_path), include_defaults=False)
    tasks = tm.load(["hellaswag", "arc_easy"])["tasks"]
    hs = tasks["hellaswag"]
    docs = list(hs.eval_docs)
    assert len(docs) == summary.hellaswag
    first = jsonl(out / "eval" / "hellaswag.jsonl")[0]
    assert hs.doc_to_text(docs[0]) == f"{first['activity_label']}: {first['ctx']}"
    assert hs.doc_to_choice(docs[0]) == first["endings"]
    assert hs.doc_to_target(docs[0]) == int(first["label"])
    arc = tasks["arc_easy"]
    assert len(list(arc.eval_docs)) == summary.arc_easy
