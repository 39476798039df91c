"""Hub datasets (`hf:NAME[:CONFIG[:SPLIT]]`) streamed through `datasets`, one input file per
shard; tested on a local folder of data files, which `load_dataset` resolves as it does a hub
name (there is no network here)."""

from __future__ import annotations

from tests.data.prepare.runs import cli, expected_streams, options, read_split, tree_bytes
from tests.data.prepare_corpus import texts, write_jsonl
from tinyllama_cli.data.prepare import prepare_data
from tinyllama_cli.data.sources import resolve_sources


def hub_folder(root) -> tuple[str, list[str]]:
    """A dataset repo's layout: three train data files, GitHub records to exclude."""
    docs = texts(77, 60)
    for k in range(3):
        part = docs[k * 20 : (k + 1) * 20]
        records = [{"text": d, "meta": {"redpajama_set_name": "RedPajamaC4"}} for d in part]
        records.insert(
            3, {"text": "excluded code", "meta": {"redpajama_set_name": "RedPajamaGithub"}}
        )
        write_jsonl(root / "repo" / "data" / f"train-{k:05d}.jsonl", records)
    return str(root / "repo"), docs


def test_a_hub_dataset_streams_shard_by_shard_the_same_for_any_workers(tmp_path, tok_path, sp):
    repo, docs = hub_folder(tmp_path)
    [source] = resolve_sources([f"hf:{repo}"])
    assert source.name == "repo"
    assert [f.path for f in source.files] == [f"hf:{repo}/shard-{i:05d}-of-00003" for i in range(3)]
    out = tmp_path / "d1"
    result = prepare_data([f"web=hf:{repo}::train"], options(out, tok_path, val_fraction=0.5))
    entry = result.manifest["sources"]["web"]
    assert entry["files"] == 3 and entry["skipped"] == {"excluded": 3}
    assert len({s["file"].split("-")[1] for s in entry["shards"]["train"]}) == 3  # a group each
    want = expected_streams(sp, docs, 0.5)
    for split in ("train", "val"):
        assert read_split(out, result.manifest, "web", split).tolist() == want[split]
    prepare_data(
        [f"web=hf:{repo}::train"], options(tmp_path / "d2", tok_path, val_fraction=0.5, workers=2)
    )
    assert tree_bytes(out) == tree_bytes(tmp_path / "d2")


def test_a_hub_split_that_does_not_exist_is_one_line_exit_2(tmp_path, tok_path):
    repo, _ = hub_folder(tmp_path)
    r = cli(
        "prepare-data",
        f"hf:{repo}::nosuchsplit",
        "--tokenizer",
        str(tok_path),
        "--out",
        str(tmp_path / "d"),
    )
    assert r.returncode == 2, r.stderr
    assert f"hf:{repo}::nosuchsplit: cannot stream it with datasets" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "d").exists() and not (tmp_path / "d.partial").exists()
