"""Reading a run's metrics.jsonl (the trainer writes it; `plan --from` and `plot` read it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tinyllama_cli.errors import UserError


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of RUN_DIR/metrics.jsonl. A torn last line (a run still writing) is skipped;
    a bad line elsewhere is an error."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} does not exist; pass a directory written by `tinyllama pretrain`")
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise UserError(f"{run_dir} has no metrics.jsonl; pass a run directory written by `tinyllama pretrain`")
    lines = path.read_text().splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break  # the trainer is mid-write
            raise UserError(f"{path} line {number} is not JSON; fix or remove that line") from None
        if not isinstance(record, dict):
            raise UserError(f"{path} line {number} is not a JSON object; fix or remove that line")
        records.append(record)
    if not records:
        raise UserError(f"{path} has no records yet; wait for the run to log its first step")
    return records
