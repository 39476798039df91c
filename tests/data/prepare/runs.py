"""Running prepare-data in the tests and reading back what it wrote."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.data.prepare_corpus import texts, write_jsonl
from tinyllama_cli.data.prepare import PrepareOptions, is_val
from tinyllama_cli.data.prepare.datadir import SHARD


def options(out: Path, tok: Path, **kw) -> PrepareOptions:
    kw.setdefault("val_fraction", 0.2)
    kw.setdefault("exclude", (("redpajama_set_name", "RedPajamaGithub"),))
    return PrepareOptions(out=out, tokenizer=tok, **kw)


def read_split(out: Path, manifest: dict, source: str, split: str) -> np.ndarray:
    shards = manifest["sources"][source]["shards"][split]
    arrays = [np.fromfile(out / s["file"], dtype=manifest["dtype"]) for s in shards]
    for s, a in zip(shards, arrays):
        assert len(a) == s["tokens"]
    return np.concatenate(arrays) if arrays else np.zeros(0, dtype=manifest["dtype"])


def shard_sizes_by_group(shards: list[dict]) -> dict[str, list[int]]:
    """A split's shard sizes per group of input files, from the `<split>-GGGGG-PPP.bin` names,
    checking that each group's parts are numbered 0, 1, ... in the manifest's order."""
    groups: dict[str, list[int]] = {}
    for s in shards:
        m = SHARD.fullmatch(Path(s["file"]).name)
        assert m, s["file"]
        assert int(m["part"]) == len(groups.setdefault(m["group"], []))
        groups[m["group"]].append(s["tokens"])
    assert list(groups) == sorted(groups)
    return groups


def expected_streams(sp, docs: list[str], val_fraction: float) -> dict[str, list[int]]:
    threshold = round(val_fraction * 2**64)
    streams = {"train": [], "val": []}
    for d in docs:
        streams["val" if threshold and is_val(d, threshold) else "train"] += [1, *sp.encode(d), 2]
    return streams


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tinyllama_cli", *args], capture_output=True, text=True, check=False
    )


def many_files(root: Path, n: int = 6) -> list[str]:
    """`n` .jsonl.zst files as source `web`, the first three of them again as source `code`."""
    for i in range(n):
        write_jsonl(
            root / "web" / f"part-{i:02d}.jsonl.zst",
            [{"text": t} for t in texts(100 + i, 25)],
            zst=True,
        )
    return [f"web={root / 'web' / '*.jsonl.zst'}", f"code={root / 'web' / 'part-0[0-2].jsonl.zst'}"]
