"""--train-tokenizer: the model is copied into the data dir, hashed in the manifest, and the
same for any --workers; its sample keeps its budget over any number of files."""

from __future__ import annotations

import hashlib
import json

import sentencepiece as spm

from tests.data.prepare.runs import cli, tree_bytes
from tests.data.prepare_corpus import AWKWARD, texts, write_jsonl
from tinyllama_cli.data import sources
from tinyllama_cli.data.prepare.tokenizer_training import (
    SampleTask,
    sample_file,
    sample_plan,
    tokenizer_sample,
)
from tinyllama_cli.data.sources import InputFile, ReadOptions, read_records, resolve_sources


def test_train_tokenizer_is_copied_hashed_and_reproducible(tmp_path):
    src = write_jsonl(tmp_path / "corpus.jsonl", [{"text": t} for t in texts(5, 120)])
    runs = []
    for i in range(2):
        out = tmp_path / f"d{i}"
        r = cli(
            "prepare-data",
            f"mine={src}",
            "--train-tokenizer",
            "--vocab-size",
            "300",
            "--out",
            str(out),
            "--workers",
            str(i + 1),
            "--json",
        )
        assert r.returncode == 0, r.stderr
        manifest = json.loads(r.stdout)["manifest"]
        model = (out / "tokenizer.model").read_bytes()
        assert manifest["tokenizer"]["sha256"] == hashlib.sha256(model).hexdigest()
        assert manifest["tokenizer"]["vocab_size"] == 300
        proc = spm.SentencePieceProcessor(model_proto=model)
        assert (proc.bos_id(), proc.eos_id(), proc.unk_id()) == (1, 2, 0)
        runs.append(tree_bytes(out))
    assert runs[0] == runs[1]


def test_the_sample_of_slimpajamas_59k_files_keeps_its_budget_spread_over_all_of_them():
    """64 MB over 59,166 chunks: one 4096-character piece from 15,625 files chosen by hash (the
    start of every file was ~242 MB), in every part of the corpus alike."""
    keys = [f"slimpajama/{i}" for i in range(59_166)]
    plan = sample_plan(keys, 64_000_000)
    assert sum(chars for _, chars in plan) <= 64_000_000
    assert len(plan) == 64_000_000 // 4096 and {chars for _, chars in plan} == {4096}
    chosen = [i for i, _ in plan]
    assert chosen == sorted(set(chosen)) and plan == sample_plan(keys, 64_000_000)
    tenths = [
        sum(1 for i in chosen if k * len(keys) // 10 <= i < (k + 1) * len(keys) // 10)
        for k in range(10)
    ]
    assert min(tenths) > 0.9 * len(chosen) / 10 and max(tenths) < 1.1 * len(chosen) / 10
    # Few files: every one gives an equal share, as before.
    assert sample_plan(keys[:8], 64_000) == [(i, 8000) for i in range(8)]


def test_the_sample_is_read_by_the_workers_alike_and_stays_in_budget(tmp_path):
    for i in range(30):
        write_jsonl(tmp_path / "c" / f"part-{i:02d}.jsonl", [{"text": t} for t in texts(i, 20)])
    sources = resolve_sources([f"c={tmp_path / 'c'}"])
    one = tokenizer_sample(sources, ReadOptions(), 1000, piece_chars=100)
    two = tokenizer_sample(sources, ReadOptions(), 1000, piece_chars=100, workers=2)
    assert one == two and sum(map(len, one)) == 1000
    plan = sample_plan([f"c/{i}" for i in range(30)], 1000, 100)
    assert len(plan) == 10 and max(i for i, _ in plan) >= 15  # not just the first files
    wanted = []
    for i, _ in plan:  # each planned file's first 100 characters, document by document
        left = 100
        for t in texts(i, 20):
            wanted.append(t[:left])
            left -= len(wanted[-1])
            if not left:
                break
    assert one == [w for w in wanted if w]


def test_a_txt_files_sample_is_its_start_as_when_read_whole(tmp_path, monkeypatch):
    """Streamed (in 50-byte pieces here): the same sample; a file invalid or blank anywhere
    gives none."""
    monkeypatch.setattr(sources, "TXT_PIECE", 50)
    files = {"ok.txt": AWKWARD.encode(), "blank.txt": b" \n\t " * 99}
    files["late.txt"] = AWKWARD.encode()[:4001] + b"\xff" + b"more text " * 9
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        f = InputFile(str(tmp_path / name), "txt")
        for chars in (1, 700, 10**6):
            [whole] = read_records(f, ReadOptions())
            start = (whole.text or "")[:chars]
            want = [start[i : i + 64] for i in range(0, len(start), 64)]
            assert bool(want) == (name == "ok.txt")
            assert sample_file(SampleTask(f, ReadOptions(), chars, 64)) == want, (name, chars)
