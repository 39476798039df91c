"""Decontamination: documents sharing an n-word span with an eval text are dropped, counted,
logged with the eval file and the span, the same for any --workers and slicing; the eval-side
index of full-size sets of TinyLlama's seven tasks stays small."""

from __future__ import annotations

import json
import random
import tracemalloc
from pathlib import Path

import pytest

from tests.data.prepare.runs import cli, expected_streams, options, read_split, tree_bytes
from tests.data.prepare_corpus import texts, write_jsonl, write_parquet
from tinyllama_cli.data.prepare import merge_data, prepare_data
from tinyllama_cli.data.prepare.decontaminate import (
    StreamedCheck,
    build_index,
    contaminated,
    eval_texts,
    spans_of,
)
from tinyllama_cli.errors import UserError

SPAN = "the quick brown fox jumps over the lazy dog while seven wizards quietly hex jumbo crates"


def test_spans_ignore_case_punctuation_and_whitespace_and_stay_within_a_text():
    a = spans_of(["The QUICK, brown\n\tfox -- jumps!"], 3)
    b = spans_of(["the quick brown fox jumps"], 3)
    assert a.hashes.tolist() == b.hashes.tolist() and len(a.hashes) == 3
    assert a.text(0, 3) == "the quick brown"
    # Non-ASCII text goes through the regex, ASCII through a byte table: the same words.
    assert spans_of(["naïve café, the quick brown"], 3).hashes[-1] == b.hashes[0]
    split = spans_of(["the quick", "brown fox jumps"], 3)
    assert split.hashes.tolist() == [b.hashes[2]] and split.text_of.tolist() == [1]
    assert len(spans_of(["two words", ""], 3).hashes) == 0
    assert spans_of(["the quick brown"], 3).hashes[0] != spans_of(["brown quick the"], 3).hashes[0]


def hub_records() -> dict[str, tuple[list[dict], list[str]]]:
    """One record per supported hub schema and the texts it should give."""
    return {
        "hellaswag": (
            [
                {
                    "ind": 1,
                    "activity_label": "Cooking",
                    "ctx_a": "A man",
                    "ctx_b": "cuts",
                    "ctx": "A man cuts",
                    "endings": ["an onion.", "a rope."],
                    "label": "0",
                }
            ],
            ["A man cuts an onion.", "A man cuts a rope."],
        ),
        "arc_easy": (
            [
                {
                    "id": "q1",
                    "question": "Which is a gas?",
                    "answerKey": "A",
                    "choices": {"text": ["steam", "ice"], "label": ["A", "B"]},
                }
            ],
            ["Which is a gas? steam", "Which is a gas? ice"],
        ),
        "openbookqa": (
            [
                {
                    "id": "7",
                    "question_stem": "The sun is",
                    "answerKey": "B",
                    "choices": {"text": ["cold", "hot"], "label": ["A", "B"]},
                }
            ],
            ["The sun is cold", "The sun is hot"],
        ),
        "winogrande": (
            [{"sentence": "Tom gave _ a book.", "option1": "Ann", "option2": "Bob", "answer": "1"}],
            ["Tom gave Ann a book.", "Tom gave Bob a book."],
        ),
        "boolq": (
            [{"question": "is it true", "passage": "It is.", "label": 1, "idx": 0}],
            ["It is.", "is it true"],
        ),
        "piqa": (
            [{"goal": "Open a jar", "sol1": "twist the lid", "sol2": "eat it", "label": 0}],
            ["Open a jar twist the lid", "Open a jar eat it"],
        ),
    }


def test_eval_files_in_every_supported_schema_and_plain_texts(tmp_path):
    for task, (records, want) in hub_records().items():
        assert list(eval_texts(write_jsonl(tmp_path / f"{task}.jsonl", records))) == want, task
        parquet = write_parquet(tmp_path / f"{task}.parquet", records)
        assert list(eval_texts(parquet)) == want, task
    (tmp_path / "t.txt").write_text("first text\n\n  \nsecond text\n")
    assert list(eval_texts(tmp_path / "t.txt")) == ["first text", "second text"]
    plain = write_jsonl(tmp_path / "plain.jsonl", [{"text": "a text"}])
    assert list(eval_texts(plain)) == ["a text"]
    odd = write_jsonl(tmp_path / "odd.jsonl", [{"text": "ok"}, {"prompt": "no schema"}])
    with pytest.raises(UserError, match=r"odd.jsonl:2: not a record of a known eval schema"):
        list(eval_texts(odd))


def contaminated_corpus(root: Path) -> tuple[list[str], list[str], Path]:
    """Source `web` in three files with four documents holding SPAN (in other case and
    punctuation, or cut to 12 words once); returns (specs, the documents kept, the eval file)."""
    rng = random.Random(5)
    docs = texts(41, 90)
    copies = {7: SPAN.upper(), 30: SPAN.replace(" ", ", "), 55: SPAN, 80: SPAN.title() + "!"}
    short = " ".join(SPAN.split()[:12])  # one word short of a 13-word span: kept
    for i, span in copies.items():
        docs[i] = f"{docs[i]} {span} {rng.choice(docs)}"
    docs[60] = f"{docs[60]} {short} end"
    for k in range(3):
        write_jsonl(root / "web" / f"{k}.jsonl", [{"text": d} for d in docs[k * 30 : (k + 1) * 30]])
    eval_file = write_jsonl(
        root / "hellaswag.jsonl",
        [
            {"ctx": "Some context words here", "endings": [SPAN, "a different ending"], "label": 0},
            {"ctx": "Too short", "endings": ["to match"], "label": 0},
        ],
    )
    kept = [d for i, d in enumerate(docs) if i not in copies]
    return [f"web={root / 'web'}"], kept, eval_file


def test_a_document_checked_in_pieces_gets_the_whole_texts_hit(tmp_path):
    """Spans that cross the cuts are found, the first span and every file's bit as whole."""
    (tmp_path / "a.txt").write_text(SPAN + "\n")
    (tmp_path / "b.txt").write_text("Überall sagt ΣΟΦΙΑ  etwas anderes, nicht wahr, mein Freund\n")
    index = build_index([tmp_path / "a.txt", tmp_path / "b.txt"], 4)
    filler = " ".join(f"w{i}" for i in range(40))
    docs = [
        filler,
        f"{filler} überall SAGT σοφια etwas {filler} {SPAN.title()} {filler}",
        f"{filler}, The  quick brown\n\nFOX jumps",
    ]
    for doc in docs:
        want = contaminated(index, [doc]).get(0)
        cuts = [i for i in range(1, len(doc)) if doc[i] == " " and doc[i - 1] != " "]
        for step in (1, 2, 3, 7):
            check = StreamedCheck(index)
            for a, b in zip([0, *cuts[::step]], [*cuts[::step], len(doc)]):
                check.add(doc[a:b])
            assert check.hit == want, (doc[:30], step)
    assert contaminated(index, [docs[1]])[0].mask == 3


def test_documents_sharing_a_span_are_dropped_counted_and_logged(tmp_path, tok_path, sp):
    specs, kept, eval_file = contaminated_corpus(tmp_path)
    out = tmp_path / "d1"
    result = prepare_data(
        specs, options(out, tok_path, val_fraction=0.2, exclude=(), decontaminate=(eval_file,))
    )
    entry = result.manifest["sources"]["web"]
    assert entry["skipped"] == {"contaminated": 4}
    assert entry["documents"]["train"] + entry["documents"]["val"] == len(kept)
    want = expected_streams(sp, kept, 0.2)
    for split in ("train", "val"):
        assert read_split(out, result.manifest, "web", split).tolist() == want[split]
    files = result.manifest["decontamination"]["files"]
    assert result.manifest["decontamination"]["ngram"] == 13
    assert [(f["file"], f["texts"], f["short_texts"], f["documents"]) for f in files] == [
        (str(eval_file), 3, 2, 4)
    ]
    log = (out / "prepare-data.log").read_text().splitlines()
    assert len(log) == 4
    assert log[0].startswith(f'{tmp_path / "web" / "0.jsonl"}:8: contaminated: shares "')
    assert all(f"with {eval_file}" in line for line in log)
    assert result.manifest["settings"]["decontamination"]["files"][0]["file"] == str(eval_file)
    # Any number of workers, and slices merged, give the same bytes.
    out2 = tmp_path / "d2"
    prepare_data(
        specs,
        options(
            out2, tok_path, val_fraction=0.2, exclude=(), workers=2, decontaminate=(eval_file,)
        ),
    )
    assert tree_bytes(out) == tree_bytes(out2)
    slices = [tmp_path / f"s{i}" for i in range(2)]
    for i, d in enumerate(slices):
        prepare_data(
            specs,
            options(
                d,
                tok_path,
                val_fraction=0.2,
                exclude=(),
                shard_index=i,
                num_shards=2,
                decontaminate=(eval_file,),
            ),
        )
    merge_data(slices, tmp_path / "merged")
    assert tree_bytes(tmp_path / "merged") == tree_bytes(out)


def test_a_document_matching_two_eval_files_counts_under_both(tmp_path, tok_path):
    specs, _, eval_file = contaminated_corpus(tmp_path)
    other = tmp_path / "other.txt"
    other.write_text(SPAN.upper() + "\nnothing in the corpus says this, not even once in here\n")
    result = prepare_data(
        specs,
        options(
            tmp_path / "d",
            tok_path,
            exclude=(),
            decontaminate=(eval_file, other),
            decontaminate_ngram=13,
        ),
    )
    docs = [f["documents"] for f in result.manifest["decontamination"]["files"]]
    assert docs == [4, 4]
    assert result.manifest["sources"]["web"]["skipped"] == {"contaminated": 4}


def test_a_shorter_span_catches_the_cut_copy_too(tmp_path, tok_path):
    specs, _, eval_file = contaminated_corpus(tmp_path)
    result = prepare_data(
        specs,
        options(
            tmp_path / "d", tok_path, exclude=(), decontaminate=(eval_file,), decontaminate_ngram=12
        ),
    )
    assert result.manifest["sources"]["web"]["skipped"] == {"contaminated": 5}


def test_bad_decontaminate_flags_exit_2_with_one_line_and_write_nothing(tmp_path, tok_path):
    src = write_jsonl(tmp_path / "a.jsonl", [{"text": t} for t in texts(3, 5)])
    odd = write_jsonl(tmp_path / "odd.jsonl", [{"question": "no choices"}])
    for flags, message in (
        (["--decontaminate", str(tmp_path / "missing.jsonl")], "missing.jsonl does not exist"),
        (["--decontaminate", str(odd)], "odd.jsonl:1: not a record of a known eval schema"),
        (
            ["--decontaminate", str(odd), "--decontaminate-ngram", "0"],
            "--decontaminate-ngram must be at least 1",
        ),
    ):
        r = cli(
            "prepare-data",
            str(src),
            "--tokenizer",
            str(tok_path),
            "--out",
            str(tmp_path / "d"),
            *flags,
        )
        assert r.returncode == 2, r.stderr
        assert message in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "d").exists() and not (tmp_path / "d.partial").exists()


def full_size_eval_sets(root: Path, rng: random.Random) -> list[Path]:
    """Synthetic eval files of the full sizes of TinyLlama's seven tasks (the splits eval scores),
    with about their items' word counts, in their hub schemas."""
    vocab = [f"w{i}" for i in range(50_000)]

    def words(n: int) -> str:
        return " ".join(rng.choices(vocab, k=n))

    def choices(n: int, k: int) -> dict:
        return {"text": [words(n) for _ in range(k)], "label": list("ABCD"[:k])}

    sets = {
        "hellaswag": (10_042, lambda: {"ctx": words(40), "endings": [words(25) for _ in range(4)]}),
        "openbookqa": (500, lambda: {"question_stem": words(12), "choices": choices(4, 4)}),
        "winogrande": (
            1_267,
            lambda: {
                "sentence": words(20) + " _ " + words(4),
                "option1": words(1),
                "option2": words(1),
            },
        ),
        "arc_challenge": (1_172, lambda: {"question": words(22), "choices": choices(5, 4)}),
        "arc_easy": (2_376, lambda: {"question": words(18), "choices": choices(4, 4)}),
        "boolq": (3_270, lambda: {"passage": words(110), "question": words(9)}),
        "piqa": (1_838, lambda: {"goal": words(10), "sol1": words(20), "sol2": words(20)}),
    }
    return [
        write_jsonl(root / f"{task}.jsonl", [make() for _ in range(n)])
        for task, (n, make) in sets.items()
    ]


def test_the_index_of_the_seven_tasks_full_sets_fits_in_memory(tmp_path):
    paths = full_size_eval_sets(tmp_path, random.Random(0))
    tracemalloc.start()
    index = build_index(paths, 13)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    spans = sum(f["spans"] for f in index.files)
    assert spans > 1_500_000  # the sets are of the real sizes (~1.8M distinct spans)
    assert index.nbytes == 16 * len(index.hashes) < 64 << 20
    assert peak < 400 << 20
    # Spans of different files are one entry, with both files' bits.
    probe = json.loads((tmp_path / "boolq.jsonl").read_text().splitlines()[5])["passage"]
    hits = contaminated(index, ["unrelated words " + probe])
    assert list(hits) == [0] and hits[0].mask == 1 << 5
