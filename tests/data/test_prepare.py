"""prepare-data end to end: every format, exact token accounting, determinism, resume, slices."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm

from tests.data.prepare_corpus import build_all_formats, make_text, texts, write_jsonl
from tinyllama_cli.data.prepare import PrepareOptions, is_val, merge_data, prepare_data
from tinyllama_cli.errors import UserError
from tinyllama_cli.tokenizer import train_tokenizer


@pytest.fixture(scope="module")
def tok_path(tmp_path_factory) -> Path:
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("tok") / "tok.model"
    train_tokenizer([make_text(rng, 80) for _ in range(300)], 320, path, num_threads=1)
    return path


@pytest.fixture(scope="module")
def sp(tok_path) -> spm.SentencePieceProcessor:
    return spm.SentencePieceProcessor(model_file=str(tok_path))


@pytest.fixture(scope="module")
def formats(tmp_path_factory):
    return build_all_formats(tmp_path_factory.mktemp("corpus"))


def options(out: Path, tok: Path, **kw) -> PrepareOptions:
    kw.setdefault("val_fraction", 0.2)
    kw.setdefault("exclude", (("redpajama_set_name", "RedPajamaGithub"),))
    return PrepareOptions(out=out, tokenizer=tok, **kw)


def read_split(out: Path, manifest: dict, source: str, split: str) -> np.ndarray:
    shards = manifest["sources"][source]["shards"][split]
    arrays = [np.fromfile(out / s["file"], dtype=manifest["dtype"]) for s in shards]
    for s, a in zip(shards, arrays):
        assert len(a) == s["tokens"]
    return np.concatenate(arrays) if arrays else np.zeros(0, dtype=manifest["dtype"])


def expected_streams(sp, docs: list[str], val_fraction: float) -> dict[str, list[int]]:
    threshold = round(val_fraction * 2**64)
    streams = {"train": [], "val": []}
    for d in docs:
        streams["val" if threshold and is_val(d, threshold) else "train"] += [1, *sp.encode(d), 2]
    return streams


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_every_format_gives_exactly_bos_encode_eos_per_document(tmp_path, tok_path, sp, formats):
    out = tmp_path / "data"
    result = prepare_data([spec for spec, _ in formats.values()], options(out, tok_path, shard_tokens=700))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest == result.manifest
    assert manifest["dtype"] == "uint16" and manifest["format_version"] == 1
    assert manifest["tokenizer"]["sha256"] == __import__("hashlib").sha256(tok_path.read_bytes()).hexdigest()
    assert (out / "tokenizer.model").read_bytes() == tok_path.read_bytes()
    assert not (out.parent / "data.partial").exists()
    for name, (_, docs) in formats.items():
        entry = manifest["sources"][name]
        want = expected_streams(sp, docs, 0.2)
        for split in ("train", "val"):
            got = read_split(out, manifest, name, split)
            assert got.tolist() == want[split], (name, split)
            # tokens in shards == sum over documents of len(encode) + 2
            assert entry["tokens"][split] == len(want[split]) == len(got)
            assert entry["documents"][split] == int((got == 1).sum())
            for shard in entry["shards"][split][:-1]:
                assert shard["tokens"] == 700
        assert entry["documents"]["train"] + entry["documents"]["val"] == len(docs)
    assert manifest["sources"]["slimpajama"]["skipped"] == {"excluded": 6}
    assert manifest["sources"]["slimpajama"]["files"] == 3
    assert manifest["sources"]["starcoder"]["files"] == 2
    assert manifest["sources"]["books"]["files"] == 4
    assert {m["source"] for m in map(json.loads, (out / "files.jsonl").read_text().splitlines())} == set(formats)


def test_val_split_is_a_stable_function_of_the_text():
    docs = texts(99, 400)
    threshold = round(0.25 * 2**64)
    first = [is_val(d, threshold) for d in docs]
    assert first == [is_val(d, threshold) for d in reversed(docs)][::-1]
    assert 0.15 < sum(first) / len(first) < 0.35


def bad_inputs(root: Path) -> tuple[list[str], list[str]]:
    """One source holding every kind of bad input next to good records; returns (specs, good docs)."""
    good = texts(7, 6)
    lines = [
        json.dumps({"text": good[0]}).encode(),
        b'{"text": "unterminated',                      # line 2: malformed JSON
        json.dumps({"body": "no text field"}).encode(),  # line 3: missing text field
        json.dumps({"text": "   \n\t "}).encode(),     # line 4: whitespace only
        b'{"text": "caf\xe9 latin-1"}',                # line 5: invalid UTF-8
        json.dumps({"text": good[1]}).encode(),
        json.dumps({"text": ""}).encode(),              # line 7: empty
    ]
    (root / "bad").mkdir()
    (root / "bad" / "a.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    full = write_jsonl(root / "tmp.jsonl", [{"text": t} for t in texts(8, 2000)], zst=True).read_bytes()
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
    assert entry["skipped"] == {"corrupt_file": 1, "empty_text": 2, "glob_no_match": 1, "invalid_json": 1,
                                "invalid_utf8": 2, "missing_text": 1, "truncated_file": 1}
    log = (out / "prepare-data.log").read_text()
    a = tmp_path / "bad" / "a.jsonl"
    for where in (f"{a}:2: invalid_json", f"{a}:3: missing_text", f"{a}:4: empty_text",
                  f"{a}:5: invalid_utf8", f"{a}:7: empty_text", f"{tmp_path / 'bad' / 'd.txt'}:1: invalid_utf8",
                  f"{tmp_path / 'bad' / 'c_corrupt.parquet'}:0: corrupt_file", "glob_no_match",
                  f"{tmp_path / 'bad' / 'b_truncated.jsonl.zst'}:"):
        assert where in log, where
    # Everything good was kept, including the records of the truncated file before the damage.
    stream = read_split(out, result.manifest, "bad", "train").tolist()
    assert stream[: len(expected_streams(sp, good[:2], 0)["train"])] == expected_streams(sp, good[:2], 0)["train"]
    assert stream[-len(expected_streams(sp, good[2:], 0)["train"]):] == expected_streams(sp, good[2:], 0)["train"]
    truncated_docs = entry["documents"]["train"] - 4
    assert 0 < truncated_docs < 2000
    assert entry["tokens"]["train"] == len(stream)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinyllama_cli", *args], capture_output=True, text=True, check=False)


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
    r = cli("prepare-data", str(good), f"x={bad}", "--tokenizer", str(tok_path), "--out",
            str(tmp_path / "out"), "--on-error", "fail", "--workers", "2" if case == "truncated" else "1")
    assert r.returncode == 2, r.stderr
    assert where in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", ["missing_input", "not_sentencepiece", "missing_tokenizer", "no_tokenizer"])
def test_missing_input_or_unusable_tokenizer_exits_2_before_writing(tmp_path, tok_path, case):
    good = write_jsonl(tmp_path / "good.jsonl", [{"text": "fine text"}])
    args = [str(good), "--tokenizer", str(tok_path)]
    if case == "missing_input":
        args[0] = str(tmp_path / "missing.jsonl")
    elif case == "not_sentencepiece":
        (tmp_path / "fake.model").write_text("not a model")
        args[2] = str(tmp_path / "fake.model")
    elif case == "missing_tokenizer":
        args[2] = str(tmp_path / "none.model")
    else:
        args = args[:1]
    r = cli("prepare-data", *args, "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["good.jsonl"] + (["fake.model"] if case == "not_sentencepiece" else []))


def test_existing_output_is_refused_without_overwrite(tmp_path, tok_path):
    src = write_jsonl(tmp_path / "a.jsonl", [{"text": t} for t in texts(3, 5)])
    out = tmp_path / "data"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="--overwrite"):
        prepare_data([str(src)], options(out, tok_path))
    assert (out / "keep.txt").read_text() == "mine"
    result = prepare_data([str(src)], options(out, tok_path, overwrite=True))
    assert not (out / "keep.txt").exists()
    assert "a" in result.manifest["sources"]  # a single file's source is named after its stem


def many_files(root: Path, n: int = 6) -> list[str]:
    for i in range(n):
        write_jsonl(root / "web" / f"part-{i:02d}.jsonl.zst", [{"text": t} for t in texts(100 + i, 25)], zst=True)
    return [f"web={root / 'web' / '*.jsonl.zst'}", f"code={root / 'web' / 'part-0[0-2].jsonl.zst'}"]


@pytest.mark.slow
def test_output_bytes_identical_for_1_and_4_workers_and_between_runs(tmp_path, tok_path):
    specs = many_files(tmp_path)
    trees = []
    for i, workers in enumerate((1, 4, 1)):
        out = tmp_path / f"out{i}"
        prepare_data(specs, options(out, tok_path, workers=workers, shard_tokens=1000))
        trees.append(tree_bytes(out))
    assert trees[0] == trees[1] == trees[2]
    assert len([k for k in trees[0] if k.endswith(".bin")]) > 4


class InterruptAfterFirstFile:
    """A progress sink that stops the run (like Ctrl-C) once one file has been finished."""

    def __init__(self, work: Path):
        self.work = work

    def start(self, *a) -> None: ...
    def stage(self, text) -> None: ...

    def advance(self, documents, tokens, nbytes) -> None:
        if list((self.work / "units").rglob("*.json")):
            raise KeyboardInterrupt


def test_an_interrupted_run_resumes_without_redoing_finished_files(tmp_path, tok_path):
    specs = many_files(tmp_path, 4)
    out = tmp_path / "data"
    with pytest.raises(KeyboardInterrupt):
        prepare_data(specs, options(out, tok_path), InterruptAfterFirstFile(tmp_path / "data.partial"))
    assert not out.exists() and (tmp_path / "data.partial").is_dir()
    with pytest.raises(UserError, match="other settings"):
        prepare_data(specs, options(out, tok_path, val_fraction=0.5))
    result = prepare_data(specs, options(out, tok_path))
    assert result.files_resumed == 1 and result.files_processed == 6
    fresh = tmp_path / "fresh"
    prepare_data(specs, options(fresh, tok_path))
    assert tree_bytes(out) == tree_bytes(fresh)


def test_slices_merge_into_the_unsliced_output(tmp_path, tok_path):
    specs = many_files(tmp_path, 5)
    whole = tmp_path / "whole"
    prepare_data(specs, options(whole, tok_path, shard_tokens=900))
    slices = [tmp_path / f"slice{i}" for i in range(3)]
    for i, d in enumerate(slices):
        prepare_data(specs, options(d, tok_path, shard_tokens=900, shard_index=i, num_shards=3))
    manifests = [json.loads((d / "manifest.json").read_text())["sources"] for d in slices]
    assert sum(m["web"]["files"] for m in manifests) == 5 and sum(m["code"]["files"] for m in manifests) == 3
    assert all(m["web"]["files"] + m["code"]["files"] > 0 for m in manifests)
    with pytest.raises(UserError, match="exactly once"):
        merge_data(slices[:2], tmp_path / "merged")
    r = cli("merge-data", *map(str, reversed(slices)), "--out", str(tmp_path / "merged"))
    assert r.returncode == 0, r.stderr
    assert tree_bytes(tmp_path / "merged") == tree_bytes(whole)


def test_train_tokenizer_is_copied_hashed_and_reproducible(tmp_path):
    src = write_jsonl(tmp_path / "corpus.jsonl", [{"text": t} for t in texts(5, 120)])
    runs = []
    for i in range(2):
        out = tmp_path / f"d{i}"
        r = cli("prepare-data", f"mine={src}", "--train-tokenizer", "--vocab-size", "300", "--out", str(out),
                "--workers", str(i + 1), "--json")
        assert r.returncode == 0, r.stderr
        manifest = json.loads(r.stdout)["manifest"]
        model = (out / "tokenizer.model").read_bytes()
        assert manifest["tokenizer"]["sha256"] == __import__("hashlib").sha256(model).hexdigest()
        assert manifest["tokenizer"]["vocab_size"] == 300
        proc = spm.SentencePieceProcessor(model_proto=model)
        assert (proc.bos_id(), proc.eos_id(), proc.unk_id()) == (1, 2, 0)
        runs.append(tree_bytes(out))
    assert runs[0] == runs[1]


def test_cli_prints_a_summary_table(tmp_path, tok_path):
    src = write_jsonl(tmp_path / "a.jsonl", [{"text": t} for t in texts(3, 5)] + [{"x": 1}])
    r = cli("prepare-data", f"web={src}", "--tokenizer", str(tok_path), "--out", str(tmp_path / "d"))
    assert r.returncode == 0, r.stderr
    assert "web" in r.stdout and "missing_text 1" in r.stdout and "tokens train" in r.stdout
    # Five documents at the default --val-fraction 0.001: none is held out, and it says so.
    assert "warning: source(s) web got 0 validation documents at --val-fraction 0.001" in r.stderr
    r = cli("prepare-data", f"web={src}", "--tokenizer", str(tok_path), "--out", str(tmp_path / "j"),
            "--val-fraction", "0.5", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["warnings"] == [] and "warning" not in r.stderr
