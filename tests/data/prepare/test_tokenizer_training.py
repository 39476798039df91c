"""--train-tokenizer: the model is copied into the data dir, hashed in the manifest, and the
same for any --workers."""

from __future__ import annotations

import hashlib
import json

import sentencepiece as spm

from tests.data.prepare.runs import cli, tree_bytes
from tests.data.prepare_corpus import texts, write_jsonl


def test_train_tokenizer_is_copied_hashed_and_reproducible(tmp_path):
    src = write_jsonl(tmp_path / "corpus.jsonl", [{"text": t} for t in texts(5, 120)])
    runs = []
    for i in range(2):
        out = tmp_path / f"d{i}"
        r = cli("prepare-data", f"mine={src}", "--train-tokenizer", "--vocab-size", "300",
                "--out", str(out), "--workers", str(i + 1), "--json")
        assert r.returncode == 0, r.stderr
        manifest = json.loads(r.stdout)["manifest"]
        model = (out / "tokenizer.model").read_bytes()
        assert manifest["tokenizer"]["sha256"] == hashlib.sha256(model).hexdigest()
        assert manifest["tokenizer"]["vocab_size"] == 300
        proc = spm.SentencePieceProcessor(model_proto=model)
        assert (proc.bos_id(), proc.eos_id(), proc.unk_id()) == (1, 2, 0)
        runs.append(tree_bytes(out))
    assert runs[0] == runs[1]
