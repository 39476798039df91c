"""One input file per unit: the stable validation split, bad records counted by reason and
logged, and --on-error fail stopping at the first (also from a worker process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.data.prepare.runs import cli, expected_streams, options, read_split
from tests.data.prepare_corpus import texts, write_jsonl
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
