"""Small corpora in every input format for the prepare-data tests (written by the tests)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

WORDS = (
    "the",
    "model",
    "data",
    "token",
    "of",
    "a",
    "llama",
    "tiny",
    "train",
    "shard",
    "def",
    "return",
    "x",
    "=",
    "1",
    "42",
    "2026",
    "(self):",
    "café",
    "日本",
    "naïve",
    "→",
    "🙂",
)


# A text with long lines, runs of spaces and newlines, "\u2581" (a space to SentencePiece) and
# characters of 2, 3 and 4 bytes, so that small blocks cut inside a character and inside runs.
AWKWARD = (
    "Grüße  aus Köln,\n\n   naïve café — ΣΑΣ ▁x ▁▁y 日本語テキスト 🦙🦙  "
    + "a" * 300
    + "\t\n  \n end \u2581 "
) * 20


def make_text(rng: random.Random, n_words: int | None = None) -> str:
    """Prose-and-code-like text with runs of spaces, newlines, digits and non-ASCII."""
    n = n_words or rng.randint(3, 60)
    parts = []
    for _ in range(n):
        parts.append(rng.choice(WORDS))
        parts.append(rng.choice((" ", " ", " ", "  ", "\n", "\n    ", "\t")))
    text = "".join(parts)
    return text if rng.random() < 0.8 else "  " + text + " "


def texts(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    return [make_text(rng) for _ in range(n)]


def write_jsonl(path: Path, records: list[dict], zst: bool = False) -> Path:
    data = b"".join(orjson.dumps(r) + b"\n" for r in records)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(zstandard.ZstdCompressor().compress(data) if zst else data)
    return path


def write_parquet(path: Path, rows: list[dict], row_group_size: int = 4) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=row_group_size)
    return path


def write_saved_dataset(path: Path, docs: list[str]) -> Path:
    import datasets

    datasets.disable_progress_bars()
    datasets.Dataset.from_dict({"text": docs, "id": list(range(len(docs)))}).save_to_disk(str(path))
    return path


def build_all_formats(root: Path) -> dict[str, tuple[str, list[str]]]:
    """One source per layout; returns name -> (spec, the documents it should yield in order)."""
    out: dict[str, tuple[str, list[str]]] = {}
    # SlimPajama: .jsonl.zst chunks + a plain .jsonl, meta.redpajama_set_name, GitHub excluded.
    slim = root / "slimpajama"
    kept: list[str] = []
    for i, name in enumerate(
        ("chunk1/example_0.jsonl.zst", "chunk1/example_1.jsonl.zst", "chunk2/example_2.jsonl")
    ):
        records = []
        for j, t in enumerate(texts(10 + i, 9)):
            set_name = "RedPajamaGithub" if j % 4 == 3 else "RedPajamaCommonCrawl"
            records.append({"text": t, "meta": {"redpajama_set_name": set_name}})
            if set_name != "RedPajamaGithub":
                kept.append(t)
        write_jsonl(slim / name, records, zst=name.endswith(".zst"))
    out["slimpajama"] = (f"slimpajama={slim}", kept)
    # Starcoderdata: parquet files with `content` in per-language folders, several row groups.
    star = root / "starcoder"
    docs = []
    for lang, seed in (("java", 20), ("python", 21)):
        t = texts(seed, 11)
        write_parquet(
            star / lang / "train-00000-of-00001.parquet",
            [{"content": x, "max_stars_repo_name": f"r{i}"} for i, x in enumerate(t)],
        )
        docs += t
    out["starcoder"] = (f"starcoder={star}", docs)
    # Plain text files: one document each, sorted by path.
    txt = root / "books"
    t = texts(30, 4)
    for i, x in enumerate(t):
        (txt / f"book{i}.txt").parent.mkdir(parents=True, exist_ok=True)
        (txt / f"book{i}.txt").write_text(x, encoding="utf-8")
    out["books"] = (f"books={txt}", t)
    # A JSON array file.
    arr = root / "array.json"
    t = texts(40, 6)
    arr.write_text(json.dumps([{"text": x} for x in t]))
    out["array"] = (f"array={arr}", t)
    # A `datasets` dataset saved to disk.
    t = texts(50, 7)
    write_saved_dataset(root / "saved", t)
    out["saved"] = (f"saved={root / 'saved'}", t)
    return out
