"""Write small token data dirs in the prepare-data format (what `prepare-data` produces), so the
training tests do not depend on prepare-data: random documents `<s> ids </s>` per source."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from tinyllama_cli.tokenizer import train_tokenizer

TEXT = [f"the quick brown fox jumps over the lazy dog {i} times" for i in range(400)] + [
    f"def f(x):\n    return x * {i}\n" for i in range(400)
]


def make_tokenizer(path: Path, vocab_size: int = 320) -> Path:
    train_tokenizer(TEXT, vocab_size, path, num_threads=1)
    return path


def write_token_data(
    out: Path,
    tokenizer: Path,
    sources: dict[str, dict[str, int]],
    seed: int = 0,
    doc_len: tuple[int, int] = (20, 200),
    shard_tokens: int = 4000,
    vocab_size: int = 320,
) -> Path:
    """sources: {name: {"train": n_tokens_at_least, "val": n_tokens_at_least}}."""
    out.mkdir(parents=True)
    (out / "tokenizer.model").write_bytes(tokenizer.read_bytes())
    rng = np.random.default_rng(seed)
    manifest_sources = {}
    for name, splits in sources.items():
        (out / name).mkdir()
        entry = {"documents": {}, "tokens": {}, "skipped": {}, "shards": {}}
        for split in ("train", "val"):
            want, docs, stream = splits.get(split, 0), 0, []
            while sum(len(d) for d in stream) < want:
                body = rng.integers(3, vocab_size, rng.integers(*doc_len))
                stream.append(np.concatenate([[1], body, [2]]))
                docs += 1
            tokens = np.concatenate(stream).astype(np.uint16) if stream else np.zeros(0, np.uint16)
            shards = []
            for i, start in enumerate(range(0, len(tokens), shard_tokens)):
                part = tokens[start : start + shard_tokens]
                rel = f"{name}/{split}-{i:05d}.bin"
                part.tofile(out / rel)
                shards.append({"file": rel, "tokens": len(part)})
            entry["documents"][split], entry["tokens"][split] = docs, len(tokens)
            entry["shards"][split] = shards
        manifest_sources[name] = entry
    manifest = {
        "format_version": 1,
        "tokenizer": {
            "file": "tokenizer.model",
            "sha256": hashlib.sha256(tokenizer.read_bytes()).hexdigest(),
            "vocab_size": vocab_size,
            "bos_id": 1,
            "eos_id": 2,
        },
        "dtype": "uint16",
        "sources": manifest_sources,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return out
