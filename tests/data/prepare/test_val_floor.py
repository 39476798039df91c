"""The floor of validation documents per source: a small source gets at least --val-min-docs val
documents, shared over its groups (each its smallest hashes, whatever --workers or slicing), at
most a tenth of it, and a warning when it is too small for the floor."""

from __future__ import annotations

import json

from tests.data.prepare.runs import cli, options, read_split, tree_bytes
from tests.data.prepare_corpus import texts, write_jsonl
from tinyllama_cli.data.prepare import merge_data, prepare_data
from tinyllama_cli.data.prepare.units import doc_hash


def small_source(root, files: int, per_file: int, seed: int = 60) -> tuple[str, list[str]]:
    docs = list(dict.fromkeys(texts(seed, files * per_file * 2)))[: files * per_file]
    for k in range(files):
        write_jsonl(
            root / "small" / f"{k}.jsonl",
            [{"text": d} for d in docs[k * per_file : (k + 1) * per_file]],
        )
    return f"small={root / 'small'}", docs


def test_a_small_source_gets_the_floor_shared_over_its_groups_by_smallest_hash(
    tmp_path, tok_path, sp
):
    spec, docs = small_source(tmp_path, 3, 100)  # three files: three groups, 4 val docs each
    out = tmp_path / "d1"
    result = prepare_data([spec], options(out, tok_path, val_fraction=0.001, exclude=()))
    assert [len(g.files) for g in _groups(spec)] == [1, 1, 1]
    entry = result.manifest["sources"]["small"]
    assert entry["documents"] == {"train": 288, "val": 12}
    val = []
    for k in range(3):
        part = docs[k * 100 : (k + 1) * 100]
        assert sum(1 for d in part if doc_hash(d) < round(0.001 * 2**64)) < 4  # the hash alone
        cut = sorted(doc_hash(d) for d in part)[3]
        val += [d for d in part if doc_hash(d) <= cut]
    want = {
        "val": [t for d in val for t in (1, *sp.encode(d), 2)],
        "train": [t for d in docs if d not in val for t in (1, *sp.encode(d), 2)],
    }
    for split in ("train", "val"):
        assert read_split(out, result.manifest, "small", split).tolist() == want[split]
    assert result.warnings == []
    out2 = tmp_path / "d2"
    prepare_data([spec], options(out2, tok_path, val_fraction=0.001, exclude=(), workers=2))
    assert tree_bytes(out) == tree_bytes(out2)
    # Each group decides alone, so slices of the source merge into the unsliced output.
    slices = [tmp_path / f"s{i}" for i in range(2)]
    for i, d in enumerate(slices):
        prepare_data(
            [spec],
            options(d, tok_path, val_fraction=0.001, exclude=(), shard_index=i, num_shards=2),
        )
    assert all(
        json.loads((d / "manifest.json").read_text())["sources"]["small"]["files"] for d in slices
    )
    merge_data(slices, tmp_path / "merged")
    assert tree_bytes(tmp_path / "merged") == tree_bytes(out)


def _groups(spec: str):
    from tinyllama_cli.data.prepare.slices import all_units
    from tinyllama_cli.data.sources import resolve_sources

    return all_units(resolve_sources([spec]), 1 << 27)


def test_a_source_too_small_for_the_floor_gives_a_tenth_and_says_so(tmp_path, tok_path):
    spec, _ = small_source(tmp_path, 1, 45)
    r = cli("prepare-data", spec, "--tokenizer", str(tok_path), "--out", str(tmp_path / "d"))
    assert r.returncode == 0, r.stderr
    assert "warning: source(s) small (4 of 45) are too small for --val-min-docs 10" in " ".join(
        r.stderr.split()
    )


def test_no_floor_at_val_min_docs_0_or_val_fraction_0(tmp_path, tok_path):
    spec, _ = small_source(tmp_path, 2, 100)
    off = prepare_data(
        [spec], options(tmp_path / "a", tok_path, val_fraction=0.001, exclude=(), val_min_docs=0)
    )
    assert off.manifest["sources"]["small"]["documents"]["val"] < 10
    none = prepare_data([spec], options(tmp_path / "b", tok_path, val_fraction=0.0, exclude=()))
    assert none.manifest["sources"]["small"]["documents"] == {"train": 200, "val": 0}
    assert none.warnings == []


def test_the_floor_moves_tokens_without_encoding_again_and_refuses_unlisted_shards(
    tmp_path, tok_path, monkeypatch
):
    from tinyllama_cli.data.prepare import api
    from tinyllama_cli.data.prepare.val_floor import move_to_val

    spec, _ = small_source(tmp_path, 3, 100)
    calls = []
    encode = api.process_unit
    monkeypatch.setattr(
        api, "process_unit", lambda task, report=None: calls.append(task) or encode(task, report)
    )
    moved = prepare_data([spec], options(tmp_path / "a", tok_path, val_fraction=0.001, exclude=()))
    assert len(calls) == 3 and all(t.val_threshold == round(0.001 * 2**64) for t in calls)
    # A group whose shards are not the ones its counts list (a move cut short) is not moved.
    stats = {
        "shards": {"train": [{"file": "small/train-00000-000.bin", "tokens": 5}], "val": []},
        "val_candidates": [],
    }
    assert move_to_val(tmp_path / "a", None, stats, 1, "uint16", 100, tmp_path / "x.json") is None
    assert moved.manifest["sources"]["small"]["documents"]["val"] == 12
