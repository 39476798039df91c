"""Reading sources and the exact word-cached encoder."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import numpy as np
import orjson
import pytest
import sentencepiece as spm

from tests.data.prepare_corpus import AWKWARD, make_text, texts, write_jsonl, write_parquet
from tinyllama_cli.data.encoder import DocumentEncoder, FastPathMismatch, word_split_is_exact
from tinyllama_cli.data.sources import (
    GLOB_NO_MATCH,
    InputFile,
    Reader,
    ReadOptions,
    Record,
    default_name,
    parse_spec,
    read_records,
    resolve_sources,
)
from tinyllama_cli.errors import UserError
from tinyllama_cli.tokenizer import train_tokenizer


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory) -> bytes:
    rng = random.Random(1)
    path = tmp_path_factory.mktemp("tok") / "tok.model"
    train_tokenizer([make_text(rng, 80) for _ in range(300)], 300, path, num_threads=1)
    return path.read_bytes()


def test_spec_parsing_and_default_names():
    assert parse_spec("slim=/data/a.jsonl") == ("slim", "/data/a.jsonl")
    assert parse_spec("/data/x=1.jsonl") == (None, "/data/x=1.jsonl")
    assert default_name("/d/example_0.jsonl.zst") == "example_0"
    assert default_name("/d/starcoder/") == "starcoder"


def test_missing_paths_are_user_errors_and_empty_globs_are_problems(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        resolve_sources([str(tmp_path / "nope.jsonl")])
    with pytest.raises(UserError, match="save_to_disk"):
        resolve_sources(["cerebras/SlimPajama-627B"])
    (tmp_path / "notes.md").write_text("x")
    with pytest.raises(UserError, match="not a supported input"):
        resolve_sources([str(tmp_path / "notes.md")])
    [source] = resolve_sources([f"x={tmp_path}/*.jsonl"])
    assert source.files == [] and source.problems[0][0] == GLOB_NO_MATCH


def test_directories_are_listed_recursively_in_sorted_order(tmp_path):
    for rel in ("b/2.jsonl", "a/1.parquet", "a/0.txt", "c/.hidden.jsonl", "c/readme.md"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    [source] = resolve_sources([str(tmp_path)])
    assert [Path(f.path).relative_to(tmp_path).as_posix() for f in source.files] == [
        "a/0.txt",
        "a/1.parquet",
        "b/2.jsonl",
    ]
    assert [f.kind for f in source.files] == ["txt", "parquet", "jsonl"]


def test_jsonl_text_field_fallback_and_line_numbers(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(
        b'{"content": "code"}\n\n{"text": "prose", "content": "ignored"}\n{"text": 3}\n[1]\n'
    )
    records = list(read_records(InputFile(str(path), "jsonl"), ReadOptions()))
    assert [(r.line, r.text, r.reason) for r in records] == [
        (1, "code", None),
        (3, "prose", None),
        (4, None, "missing_text"),
        (5, None, "missing_text"),
    ]
    records = list(read_records(InputFile(str(path), "jsonl"), ReadOptions(text_field="content")))
    assert [r.text for r in records] == ["code", "ignored", None, None]


def test_parquet_is_read_by_row_group_with_exclusion_on_a_column(tmp_path):
    rows = [{"content": t, "lang": "java" if i % 3 else "go"} for i, t in enumerate(texts(2, 10))]
    rows[4]["content"] = None
    path = write_parquet(tmp_path / "p.parquet", rows, row_group_size=3)
    records = list(
        read_records(InputFile(str(path), "parquet"), ReadOptions(exclude=(("lang", "go"),)))
    )
    assert len(records) == 10
    assert [r.line for r in records] == list(range(1, 11))
    assert [r.reason for r in records if r.reason] == [
        "excluded",
        "excluded",
        "missing_text",
        "excluded",
        "excluded",
    ]
    assert [r.text for r in records if r.text] == [
        row["content"] for i, row in enumerate(rows) if row["lang"] == "java" and row["content"]
    ]


def test_zst_with_several_frames_is_read_whole(tmp_path):
    import zstandard

    frames = [
        zstandard.ZstdCompressor().compress(b"".join(f'{{"text": "{x}"}}\n'.encode() for x in part))
        for part in (["a1", "a2"], ["b1"])
    ]
    path = tmp_path / "m.jsonl.zst"
    path.write_bytes(b"".join(frames))
    assert [r.text for r in read_records(InputFile(str(path), "jsonl.zst"), ReadOptions())] == [
        "a1",
        "a2",
        "b1",
    ]


def test_word_cached_encoding_equals_sentencepiece(model_bytes):
    sp = spm.SentencePieceProcessor(model_proto=model_bytes)
    assert word_split_is_exact(model_bytes)
    enc = DocumentEncoder(model_bytes, check_every=10**9)  # no spot checks: compare everything here
    assert enc.fast
    tricky = [
        " ",
        "  ",
        "a ",
        " a",
        "a  b",
        "   x",
        "x\n  y ",
        "\u2581a b",
        "a\u2581 b",
        "a \u2581b",
        "日本語 テキスト 🙂",
        "12345 678",
        "\t tab",
        "a\u3000b",
        "trailing   ",
        "x" * 200 + " y",
    ]
    docs = tricky + texts(11, 300)
    assert enc.encode(docs) == [sp.encode(d) for d in docs]
    assert enc.encode(docs[::-1]) == [sp.encode(d) for d in docs[::-1]]  # with a warm cache


def test_models_the_word_split_would_not_be_exact_for_use_plain_encoding(model_bytes):
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    proto.ParseFromString(model_bytes)
    proto.normalizer_spec.remove_extra_whitespaces = True
    changed = proto.SerializeToString()
    assert not word_split_is_exact(changed)
    enc = DocumentEncoder(changed)
    assert not enc.fast
    sp = spm.SentencePieceProcessor(model_proto=changed)
    docs = ["a   b  ", *texts(12, 20)]
    assert enc.encode(docs) == [sp.encode(d) for d in docs]


def _damaged_copies(tmp_path: Path, suffix: str, compress) -> tuple[int, Path, Path]:
    """A compressed JSON-lines file cut at half its size, and the same cut zero-filled back to
    full size (what a preallocated, interrupted download leaves); and how many records the
    whole file holds."""
    rng = random.Random(3)
    records = [{"text": make_text(rng, 90)} for _ in range(6000)]
    full = compress(b"".join(orjson.dumps(r) + b"\n" for r in records))
    cut, zeroed = tmp_path / f"cut{suffix}", tmp_path / f"zeroed{suffix}"
    cut.write_bytes(full[: len(full) // 2])
    zeroed.write_bytes(full[: len(full) // 2] + bytes(len(full) - len(full) // 2))
    return len(records), cut, zeroed


@pytest.mark.parametrize("kind", ["jsonl.zst", "jsonl.gz"])
def test_a_damaged_compressed_file_keeps_the_records_before_the_break(tmp_path, kind):
    import gzip

    import zstandard

    compress = zstandard.ZstdCompressor().compress if kind == "jsonl.zst" else gzip.compress
    total, cut, zeroed = _damaged_copies(tmp_path, "." + kind, compress)
    assert cut.stat().st_size < 4 << 20  # one read: decompressing it whole used to lose it all
    # gzip has no check before the stream's end: zeros past the break decode as back-references
    # to earlier text, so only zstd (which rejects the zeros) can tell a zero-filled tail.
    for path in (cut, zeroed) if kind == "jsonl.zst" else (cut,):
        got = list(read_records(InputFile(str(path), kind), ReadOptions()))
        kept = [r for r in got if r.text is not None]
        assert got[-1].reason == "truncated_file" and got[-1].line == len(kept) + 1
        assert [r.reason for r in got[:-1]] == [None] * len(kept)
        # Half the compressed bytes hold about half the records; all but the last piece's kept.
        assert 0.45 * total < len(kept) < 0.55 * total, (path.name, len(kept))


def test_jsonl_zst_round_trip_via_helper(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl.zst", [{"text": "one"}, {"text": "two"}], zst=True)
    assert [r.text for r in read_records(InputFile(str(path), "jsonl.zst"), ReadOptions())] == [
        "one",
        "two",
    ]


def test_gzip_json_lines_under_a_json_name_and_a_saved_dataset_dict(tmp_path):
    import gzip

    import datasets

    gz = tmp_path / "a.jsonl.gz"
    gz.write_bytes(gzip.compress(b'{"text": "one"}\n{"text": "two"}\n'))
    assert [r.text for r in read_records(InputFile(str(gz), "jsonl.gz"), ReadOptions())] == [
        "one",
        "two",
    ]
    lines = tmp_path / "b.json"
    lines.write_text('{"text": "three"}\n{"text": "four"}\n')
    assert [r.text for r in read_records(InputFile(str(lines), "json"), ReadOptions())] == [
        "three",
        "four",
    ]
    datasets.disable_progress_bars()
    dd = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": ["t1", "t2"]}),
            "validation": datasets.Dataset.from_dict({"text": ["v1"]}),
        }
    )
    dd.save_to_disk(str(tmp_path / "dd"))
    [source] = resolve_sources([str(tmp_path / "dd")])
    assert source.name == "dd" and [f.kind for f in source.files] == ["arrow", "arrow"]
    got = [r.text for f in source.files for r in read_records(f, ReadOptions())]
    assert got == ["t1", "t2", "v1"]


def test_a_wrong_cached_word_is_caught_by_the_spot_check(model_bytes):
    enc = DocumentEncoder(model_bytes, check_every=1)
    enc.encode(["the model"])
    enc._pool[enc._start[enc._index[" model"]]] += 1  # simulate a word whose cached ids are wrong
    with pytest.raises(FastPathMismatch):
        enc.encode(["a model"])


def test_a_json_array_far_larger_than_the_memory_bound_streams_item_by_item(tmp_path):
    import tracemalloc

    path = tmp_path / "big.json"
    doc = "word " * 2000  # 10 kB a record, ~31 MB in all: 4x the 8 MB bound
    with open(path, "w") as fh:
        fh.write("[\n")
        fh.write(",\n".join(json.dumps({"text": f"{i} {doc}"}) for i in range(3200)))
        fh.write("\n]\n")
    assert path.stat().st_size > 30 << 20
    reader = Reader(InputFile(str(path), "json"), ReadOptions(), block=1 << 20)
    tracemalloc.start()
    count = 0
    for i, record in enumerate(reader):
        assert record.text.startswith(f"{i} word") and record.line == i + 1
        count += 1
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 3200 and peak < 8 << 20, peak


def test_a_broken_json_array_keeps_the_items_before_the_break(tmp_path):
    path = tmp_path / "cut.json"
    items = [json.dumps({"text": f"doc {i}"}) for i in range(50)]
    path.write_text("[" + ",\n".join(items)[:-9])  # the last item cut short, no closing ]
    got = list(Reader(InputFile(str(path), "json"), ReadOptions(), block=64))
    assert [r.text for r in got[:-1]] == [f"doc {i}" for i in range(49)]
    assert got[-1].line == 50 and got[-1].reason == "invalid_json"
    assert "line 50" in got[-1].detail
    path.write_bytes(b'[{"text": "ok"},\n {"text": "caf\xe9"}]')
    got = list(Reader(InputFile(str(path), "json"), ReadOptions(), block=8))
    assert got[0].text == "ok" and got[-1].reason == "invalid_utf8"
    path.write_text('[{"text": "a"} {"text": "b"}]')
    got = list(Reader(InputFile(str(path), "json"), ReadOptions()))
    assert got[0].text == "a" and got[1].reason == "invalid_json" and "','" in got[1].detail


def txt_pieces(path: Path, size: int) -> list[str | Record]:
    return list(Reader(InputFile(str(path), "txt"), ReadOptions()).txt_pieces(size))


@pytest.mark.parametrize("size", [1, 2, 3, 5, 64, 1000])
def test_txt_pieces_join_to_the_text_and_start_only_at_a_space_run(tmp_path, size):
    path = tmp_path / "t.txt"
    path.write_text(AWKWARD, encoding="utf-8")
    pieces = txt_pieces(path, size)
    assert "".join(pieces) == AWKWARD
    assert len(pieces) > len(AWKWARD.encode()) // max(size, 400)  # many cuts, not one piece
    for before, piece in itertools.pairwise(pieces):
        assert piece[0] in " \u2581" and before[-1] not in " \u2581", (before[-9:], piece[:9])


def test_txt_pieces_end_with_the_whole_files_invalid_utf8_record(tmp_path):
    path = tmp_path / "bad.txt"
    raw = AWKWARD.encode("utf-8")[:2000]
    for at in range(0, 1200, 37):
        for bad in (raw[:at] + b"\xff" + raw[at:], raw[:at] + b"\xf0\x80" + raw[at:], raw[:at]):
            path.write_bytes(bad + b"\xe2\x82")  # a character cut at the end, if nothing sooner
            [whole] = list(Reader(InputFile(str(path), "txt"), ReadOptions()))
            assert whole.reason == "invalid_utf8"
            for size in (1, 3, 8, 100):
                *text, last = txt_pieces(path, size)
                assert last == whole, (at, size)
                assert all(isinstance(t, str) for t in text)


def test_pieces_encode_to_the_whole_documents_ids(model_bytes):
    enc = DocumentEncoder(model_bytes, check_every=1)  # every piece spot-checked too
    sp = spm.SentencePieceProcessor(model_proto=model_bytes)
    pieces = [AWKWARD[:31], AWKWARD[31:]]
    assert pieces[1].startswith(" ") and AWKWARD[30] != " "
    cut = AWKWARD.index(" \u2581x")
    for parts in (pieces, [AWKWARD[:cut], AWKWARD[cut:]], [AWKWARD]):
        ids = [enc.encode_piece(p, first=i == 0) for i, p in enumerate(parts)]
        assert np.concatenate(ids).tolist() == sp.encode(AWKWARD)
    assert enc.encode_piece(" ", first=False).tolist() == sp.encode("a ")[len(sp.encode("a")) :]
    enc._pool[enc._start[enc._index[" café"]]] += 1  # a word whose cached ids are wrong
    with pytest.raises(FastPathMismatch):
        enc.encode_piece(" café", first=False)
    plain = DocumentEncoder(model_bytes, fast=False)
    with pytest.raises(ValueError, match="word-cached"):
        plain.encode_piece("text", first=True)
