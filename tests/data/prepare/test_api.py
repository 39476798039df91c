"""prepare_data end to end: every format, exact token accounting, an existing output refused,
resume after an interruption, and the CLI's summary."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.data.prepare.runs import (
    cli,
    expected_streams,
    many_files,
    options,
    read_split,
    shard_sizes_by_group,
    tree_bytes,
)
from tests.data.prepare_corpus import texts, write_jsonl
from tinyllama_cli.data.prepare import prepare_data
from tinyllama_cli.errors import UserError


def test_every_format_gives_exactly_bos_encode_eos_per_document(tmp_path, tok_path, sp, formats):
    out = tmp_path / "data"
    specs = [spec for spec, _ in formats.values()]
    result = prepare_data(specs, options(out, tok_path, shard_tokens=700))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest == result.manifest
    assert manifest["dtype"] == "uint16" and manifest["format_version"] == 1
    assert manifest["tokenizer"]["sha256"] == hashlib.sha256(tok_path.read_bytes()).hexdigest()
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
            # Every group's shards hold 700 tokens but its last, which holds 1 to 700.
            for sizes in shard_sizes_by_group(entry["shards"][split]).values():
                assert all(t == 700 for t in sizes[:-1]) and 0 < sizes[-1] <= 700
        assert entry["documents"]["train"] + entry["documents"]["val"] == len(docs)
    assert manifest["sources"]["slimpajama"]["skipped"] == {"excluded": 6}
    assert manifest["sources"]["slimpajama"]["files"] == 3
    assert manifest["sources"]["starcoder"]["files"] == 2
    assert manifest["sources"]["books"]["files"] == 4
    listed = map(json.loads, (out / "files.jsonl").read_text().splitlines())
    assert {m["source"] for m in listed} == set(formats)


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
        prepare_data(
            specs, options(out, tok_path), InterruptAfterFirstFile(tmp_path / "data.partial")
        )
    assert not out.exists() and (tmp_path / "data.partial").is_dir()
    with pytest.raises(UserError, match="other settings"):
        prepare_data(specs, options(out, tok_path, val_fraction=0.5))
    result = prepare_data(specs, options(out, tok_path))
    assert result.files_resumed == 1 and result.files_processed == 6
    fresh = tmp_path / "fresh"
    prepare_data(specs, options(fresh, tok_path))
    assert tree_bytes(out) == tree_bytes(fresh)


def test_a_rerun_after_an_input_changed_redoes_its_group_and_drops_its_stale_shards(
    tmp_path, tok_path
):
    specs = many_files(tmp_path, 4)
    out = tmp_path / "data"
    with pytest.raises(KeyboardInterrupt):
        prepare_data(
            specs,
            options(out, tok_path, shard_tokens=100),
            InterruptAfterFirstFile(tmp_path / "data.partial"),
        )
    assert len(list((tmp_path / "data.partial" / "web").glob("train-00000-*.bin"))) > 2
    write_jsonl(
        tmp_path / "web" / "part-00.jsonl.zst", [{"text": t} for t in texts(1, 2)], zst=True
    )  # shorter now: its group has fewer parts
    result = prepare_data(specs, options(out, tok_path, shard_tokens=100))
    assert result.files_resumed == 0 and result.files_processed == 7
    fresh = tmp_path / "fresh"
    prepare_data(specs, options(fresh, tok_path, shard_tokens=100))
    assert tree_bytes(out) == tree_bytes(fresh)


def test_cli_prints_a_summary_table(tmp_path, tok_path):
    src = write_jsonl(tmp_path / "a.jsonl", [{"text": t} for t in texts(3, 5)] + [{"x": 1}])
    r = cli(
        "prepare-data", f"web={src}", "--tokenizer", str(tok_path), "--out", str(tmp_path / "d")
    )
    assert r.returncode == 0, r.stderr
    assert "web" in r.stdout and "missing_text 1" in r.stdout and "tokens train" in r.stdout
    # Five documents at the default --val-fraction 0.001: none is held out, and it says so.
    assert "warning: source(s) web got 0 validation documents at --val-fraction 0.001" in r.stderr
    r = cli(
        "prepare-data",
        f"web={src}",
        "--tokenizer",
        str(tok_path),
        "--out",
        str(tmp_path / "j"),
        "--val-fraction",
        "0.5",
        "--json",
    )
    assert r.returncode == 0 and json.loads(r.stdout)["warnings"] == []
    assert list(json.loads(r.stdout)) == [
        "out",
        "files_processed",
        "warnings",
        "files_resumed",
        "elapsed_s",
        "tokens_per_s",
        "log_lines",
        "manifest",
    ]
    assert "warning" not in r.stderr
