"""Reading a run's metrics.jsonl (the trainer writes it; `plan --from` and `plot` read it), and
the few facts `plan --from` takes from its records: the latest job, the median logged MFU."""

from __future__ import annotations

import json
import statistics
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


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def training_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of optimizer steps (tokens_seen, no val_loss), in file order."""
    return [r for r in records if _number(r.get("tokens_seen")) and "val_loss" not in r]


def latest_job(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The training records of the latest job. A resumed job restarts its elapsed_s clock and
    redoes the steps after its checkpoint, so a job begins where step or elapsed_s goes back."""
    train = training_records(records)
    start = 0
    for i in range(1, len(train)):
        now, before = train[i], train[i - 1]
        step_back = _number(now.get("step")) and _number(before.get("step")) and now["step"] <= before["step"]
        clock_back = (_number(now.get("elapsed_s")) and _number(before.get("elapsed_s"))
                      and now["elapsed_s"] <= before["elapsed_s"])
        if step_back or clock_back:
            start = i
    return train[start:]


def median_mfu(records: list[dict[str, Any]]) -> tuple[float, int] | None:
    """(median of the `mfu` the trainer logged over the latest job, records used); None when
    no record has one. The median, because the first interval of a job includes warm-up."""
    values = [r["mfu"] for r in latest_job(records) if _number(r.get("mfu")) and r["mfu"] > 0]
    if not values:
        return None
    return statistics.median(values), len(values)
