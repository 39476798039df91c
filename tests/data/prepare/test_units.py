"""One input file per unit: the stable validation split, bad records counted by reason and
logged, and --on-error fail stopping at the first (also from a worker process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.data.prepare.runs import cli, expected_streams, options, read_split, tree_bytes
from tests.data.prepare_corpus import AWKWARD, texts, write_jsonl
from tinyllama_cli.data import sources
from tinyllama_cli.data.prepare import is_val, prepare_data


def test_val_split_is_a_stable_function_of_the_text():
    docs = texts(99, 400)
    threshold = round(0.25 * 2**64)
    first = [is_val(d, threshold) for d in docs]
    assert first == [is_val(d, threshold) for d in reversed(docs)][::-1]
    assert 0.15 < sum(first) / len(first) < 0.35


def bad_inputs(root: Path) -> tuple[list[str], list[str]]:
    """One source holding every kind of bad input next to good records; returns (specs, good
    docs)."""
    good = texts(7, 6)
    lines = [
        json.dumps({"text": good[0]}).encode(),
        b'{"text": "unterminated',  # line 2: malformed JSON
        json.dumps({"body": "no text field"}).encode(),  # line 3: missing text field
        json.dumps({"text": "   \n\t "}).encode(),  # line 4: whitespace only
        b'{"text": "caf\xe9 latin-1"}',  # line 5: invalid UTF-8
        json.dumps({"text": good[1]}).encode(),
        json.dumps({"text": ""}).encode(),  # line 7: empty
    ]
    (root / "bad").mkdir()
    (root / "bad" / "a.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    full = write_jsonl(
        root / "tmp.jsonl", [{"text": t} for t in texts(8, 2000)], zst=True
    ).read_bytes()
    (root / "bad" / "b_truncated.jsonl.zst").write_bytes(full[: len(full) // 2])
    (root / "tmp.jsonl").unlink()
    (root / "bad" / "c_corrupt.parquet").write_bytes(b"PAR1 this is not a parquet file PAR1")
    (root / "bad" / "d.txt").write_bytes(b"bad \xff\xfe bytes")
    write_jsonl(root / "bad" / "e.jsonl", [{"text": good[2]}, {"text": good[3]}])
    specs = [f"bad={root / 'bad'}", f"bad={root / 'nothing' / '*.jsonl.zst'}"]
    return specs, good[:4]


def test_bad_inputs_are_counted_by_reason_and_named_in_the_log(tmp_path, tok_path, sp):
    specs, good = bad_inputs(tmp_path)
    out = tmp_path / "data"
    result = prepare_data(specs, options(out, tok_path, val_fraction=0.0))
    entry = result.manifest["sources"]["bad"]
    assert entry["skipped"] == {
        "corrupt_file": 1,
        "empty_text": 2,
        "glob_no_match": 1,
        "invalid_json": 1,
        "invalid_utf8": 2,
        "missing_text": 1,
        "truncated_file": 1,
    }
    log = (out / "prepare-data.log").read_text()
    a = tmp_path / "bad" / "a.jsonl"
    for where in (
        f"{a}:2: invalid_json",
        f"{a}:3: missing_text",
        f"{a}:4: empty_text",
        f"{a}:5: invalid_utf8",
        f"{a}:7: empty_text",
        f"{tmp_path / 'bad' / 'd.txt'}:1: invalid_utf8",
        f"{tmp_path / 'bad' / 'c_corrupt.parquet'}:0: corrupt_file",
        "glob_no_match",
        f"{tmp_path / 'bad' / 'b_truncated.jsonl.zst'}:",
    ):
        assert where in log, where
    # Everything good was kept, including the records of the truncated file before the damage.
    stream = read_split(out, result.manifest, "bad", "train").tolist()
    head = expected_streams(sp, good[:2], 0)["train"]
    tail = expected_streams(sp, good[2:], 0)["train"]
    assert stream[: len(head)] == head
    assert stream[-len(tail) :] == tail
    truncated_docs = entry["documents"]["train"] - 4
    assert 0 < truncated_docs < 2000
    assert entry["tokens"]["train"] == len(stream)


@pytest.mark.parametrize("case", ["invalid_json", "glob", "truncated"])
def test_on_error_fail_stops_at_the_first_bad_input_with_exit_2(tmp_path, tok_path, case):
    """(The truncated case runs 2 worker processes: the error comes back from a worker.)"""
    good = write_jsonl(tmp_path / "good.jsonl", [{"text": "fine text"}])
    if case == "invalid_json":
        bad = tmp_path / "x.jsonl"
        bad.write_bytes(b'{"text": "ok"}\n{oops\n')
        where = f"{bad}:2: invalid_json"
    elif case == "glob":
        bad = tmp_path / "none" / "*.parquet"
        where = "glob_no_match"
    else:
        full = write_jsonl(tmp_path / "t.jsonl.zst", [{"text": t} for t in texts(1, 100)], zst=True)
        full.write_bytes(full.read_bytes()[:60])
        bad, where = full, "truncated_file"
    r = cli(
        "prepare-data",
        str(good),
        f"x={bad}",
        "--tokenizer",
        str(tok_path),
        "--out",
        str(tmp_path / "out"),
        "--on-error",
        "fail",
        "--workers",
        "2" if case == "truncated" else "1",
    )
    assert r.returncode == 2, r.stderr
    assert where in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


def txt_corpus(root: Path, big: int = 0) -> tuple[list[str], Path]:
    """.txt books (awkward text, a blank one, an invalid one, one sharing a span with the eval
    file across many cuts) next to a .jsonl; `big` bytes more of one book, if asked."""
    books = root / "books"
    books.mkdir()
    for i, text in enumerate(texts(31, 12)):
        (books / f"b{i:02d}.txt").write_text(f"{text}\n\n{AWKWARD[i * 97 :]}  {text}")
    (books / "blank.txt").write_text(" \n\t\n   ")
    (books / "latin1.txt").write_bytes(AWKWARD.encode()[:3001] + b"caf\xe9 " + b"x " * 99)
    span = "the quick brown fox jumps over the lazy dog while seven wizards quietly hex"
    (books / "copy.txt").write_text(f"{AWKWARD}  {span.upper().replace(' ', '   ')} {AWKWARD}")
    if big:  # a few thousand distinct words: the encoder's word cache stays small
        chunk = AWKWARD + "\n".join(texts(33, 60))
        with open(books / "big.txt", "w") as fh:
            for i in range(-(-big // len(chunk.encode()))):
                fh.write(f"{chunk} {i}")
    write_jsonl(root / "web.jsonl", [{"text": t} for t in texts(32, 30)])
    (root / "eval.txt").write_text(span + "\n")
    return [f"books={books}", f"web={root / 'web.jsonl'}"], root / "eval.txt"


def test_txt_documents_stream_byte_for_byte_as_when_read_whole(tmp_path, tok_path, monkeypatch):
    """Streamed in small pieces (cut inside characters and between runs), in 1 MB-ish pieces
    with 2 workers, or read whole and encoded by SentencePiece itself: the same data dir."""
    specs, eval_file = txt_corpus(tmp_path, big=int(2.5 * sources.TXT_PIECE))
    kw = {"val_fraction": 0.3, "val_min_docs": 6, "exclude": (), "decontaminate": (eval_file,)}
    prepare_data(specs, options(tmp_path / "whole", tok_path, fast_encode=False, **kw))
    prepare_data(specs, options(tmp_path / "pieces", tok_path, workers=2, **kw))
    monkeypatch.setattr(sources, "TXT_PIECE", 61)  # in this process: --workers 1
    result = prepare_data(specs, options(tmp_path / "small", tok_path, **kw))
    whole = tree_bytes(tmp_path / "whole")
    assert tree_bytes(tmp_path / "small") == whole
    assert tree_bytes(tmp_path / "pieces") == whole
    # Every record counted: 16 .txt files, one document each, kept or skipped with a reason.
    entry = result.manifest["sources"]["books"]
    assert entry["skipped"] == {"contaminated": 1, "empty_text": 1, "invalid_utf8": 1}
    assert entry["documents"]["train"] + entry["documents"]["val"] == 13
    assert entry["documents"]["val"] > 0
    log = (tmp_path / "small" / "prepare-data.log").read_text()
    bad = "invalid_utf8: 'utf-8' codec can't decode byte 0xe9 in position 3004"
    assert f"{tmp_path / 'books' / 'latin1.txt'}:31: {bad}" in log
    assert f'{tmp_path / "books" / "copy.txt"}:1: contaminated: shares "the quick' in log


def test_a_txt_file_far_larger_than_the_memory_bound_streams(tmp_path, tok_path):
    import tracemalloc

    specs, _ = txt_corpus(tmp_path, big=100 << 20)  # 100 MB: held whole, 1 GB of Python words
    tracemalloc.start()
    result = prepare_data(specs[:1], options(tmp_path / "out", tok_path, val_fraction=0.0))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    tokens = result.manifest["sources"]["books"]["tokens"]["train"]
    assert tokens > 50 << 20 and peak < 32 << 20, peak
