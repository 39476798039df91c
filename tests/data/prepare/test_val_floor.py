"""The floor of validation documents per source: a small source gets exactly --val-min-docs val
documents (the smallest hashes, whatever --workers), at most a tenth of it, and a warning when it
is too small for the floor."""

from __future__ import annotations

from tests.data.prepare.runs import cli, options, read_split, tree_bytes
from tests.data.prepare_corpus import texts, write_jsonl
from tinyllama_cli.data.prepare import prepare_data
from tinyllama_cli.data.prepare.units import doc_hash


def small_source(root, files: int, per_file: int, seed: int = 60) -> tuple[str, list[str]]:
    docs = list(dict.fromkeys(texts(seed, files * per_file * 2)))[:files * per_file]
    for k in range(files):
        write_jsonl(root / "small" / f"{k}.jsonl",
                    [{"text": d} for d in docs[k * per_file:(k + 1) * per_file]])
    return f"small={root / 'small'}", docs


def test_a_small_source_gets_the_floor_of_val_documents_with_the_smallest_hashes(tmp_path,
                                                                                  tok_path, sp):
    spec, docs = small_source(tmp_path, 3, 100)
    out = tmp_path / "d1"
    result = prepare_data([spec], options(out, tok_path, val_fraction=0.001, exclude=()))
    entry = result.manifest["sources"]["small"]
    assert entry["documents"] == {"train": 290, "val": 10}
    cut = sorted(doc_hash(d) for d in docs)[9]
    val = [d for d in docs if doc_hash(d) <= cut]
    assert sum(1 for d in docs if doc_hash(d) < round(0.001 * 2**64)) < 10  # the hash alone: fewer
    want = {"val": [t for d in val for t in (1, *sp.encode(d), 2)],
            "train": [t for d in docs if d not in val for t in (1, *sp.encode(d), 2)]}
    for split in ("train", "val"):
        assert read_split(out, result.manifest, "small", split).tolist() == want[split]
    assert result.warnings == []
    out2 = tmp_path / "d2"
    prepare_data([spec], options(out2, tok_path, val_fraction=0.001, exclude=(), workers=2))
    assert tree_bytes(out) == tree_bytes(out2)


def test_a_source_too_small_for_the_floor_gives_a_tenth_and_says_so(tmp_path, tok_path):
    spec, _ = small_source(tmp_path, 1, 45)
    r = cli("prepare-data", spec, "--tokenizer", str(tok_path), "--out", str(tmp_path / "d"))
    assert r.returncode == 0, r.stderr
    assert ("warning: source(s) small (4 of 45) are too small for --val-min-docs 10"
            in " ".join(r.stderr.split()))


def test_no_floor_at_val_min_docs_0_or_val_fraction_0(tmp_path, tok_path):
    spec, _ = small_source(tmp_path, 2, 100)
    off = prepare_data([spec], options(tmp_path / "a", tok_path, val_fraction=0.001, exclude=(),
                                       val_min_docs=0))
    assert off.manifest["sources"]["small"]["documents"]["val"] < 10
    none = prepare_data([spec], options(tmp_path / "b", tok_path, val_fraction=0.0, exclude=()))
    assert none.manifest["sources"]["small"]["documents"] == {"train": 200, "val": 0}
    assert none.warnings == []
