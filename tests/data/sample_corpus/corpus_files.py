"""The tests' build target, and reading a built corpus back: SlimPajama records, JSON lines,
every file's bytes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import zstandard

TARGET = 120_000  # small: a test build reads the library once and writes ~0.5 MB


def records(out: Path) -> list[dict]:
    rows = []
    for chunk in sorted((out / "slimpajama").glob("chunk-*.jsonl.zst")):
        with zstandard.ZstdDecompressor().stream_reader(chunk.open("rb")) as reader:
            rows += [json.loads(line) for line in io.TextIOWrapper(reader, encoding="utf-8")]
    return rows


def tree(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()
    }


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
