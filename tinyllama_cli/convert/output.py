"""Conversion outputs: shard sizes and file listings (file modes: `files.make_plain_file`).

A conversion writes everything into `.<name>.tmp-<pid>` beside the requested output
(`files.staged`), verifies it there, and only then publishes it, so a failed write or a failed
verification leaves nothing behind and an existing output is replaced only with `overwrite`.
"""

from __future__ import annotations

import re
from pathlib import Path

from tinyllama_cli.errors import UserError

_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)\s*", re.IGNORECASE)
_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
    "k": 10**3,
    "m": 10**6,
    "g": 10**9,
    "t": 10**12,
}


def parse_size(text: str | int) -> int:
    """Bytes from "2GB", "500MB", "1.5GiB" or a plain number; GB is 10^9 as in transformers."""
    if isinstance(text, int):
        return text
    match = _SIZE.fullmatch(text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS or float(match.group(1)) <= 0:
        raise UserError(
            f"--max-shard-size {text!r} is not a size; write it like 2GB, 500MB or 1GiB"
        )
    return int(float(match.group(1)) * _UNITS[unit])


def list_files(path: Path) -> list[tuple[str, int]]:
    """(relative name, bytes) of every file under `path` (or of `path` itself), sorted."""
    path = Path(path)
    if path.is_file():
        return [(path.name, path.stat().st_size)]
    return sorted(
        (str(p.relative_to(path)), p.stat().st_size) for p in path.rglob("*") if p.is_file()
    )
