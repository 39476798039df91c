"""The run directory's format: its paths, checkpoint names, discovery, state.json and
metrics.jsonl, in one torch-free module.

    RUN_DIR/config.yaml                      fully resolved config; `model:` = ModelConfig fields;
                                             a branch's `branch:` names its parent and step
    RUN_DIR/tokenizer.model
    RUN_DIR/metrics.jsonl                    one JSON object per logged step or validation
    RUN_DIR/tensorboard/   RUN_DIR/wandb_id
    RUN_DIR/checkpoints/step-NNNNNNNN/       torch.distributed.checkpoint files (.metadata,
                                             *.distcp) + state.json: {"step", "model_config", ...}
    RUN_DIR/checkpoints/step-NNNNNNNN.tmp/   a save in progress, renamed when complete

Why one owner: the trainer writes these files and load, convert, eval, plan and plot read them;
with the names in one place a reader cannot disagree with the writer about what a complete
checkpoint is. A checkpoint is complete iff it has both `.metadata` and `state.json` (the
trainer writes state.json last, then renames), and checkpoints are ordered by step number,
never by name: the original TinyLlama scripts resumed from the lexicographically last file.
The DCP save and load themselves (torch) are `train/checkpoint.py`'s; the native model
directory that `convert --to native` writes is this layout with one step-0 checkpoint.
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
from pathlib import Path
from typing import Any

from tinyllama_cli import files
from tinyllama_cli.config import ModelConfig, load_yaml
from tinyllama_cli.errors import UserError

CONFIG_FILE = "config.yaml"
TOKENIZER_FILE = "tokenizer.model"
METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
WANDB_ID_FILE = "wandb_id"
CHECKPOINTS_DIR = "checkpoints"
STATE_FILE = "state.json"
DCP_METADATA_FILE = ".metadata"  # written by torch.distributed.checkpoint when a save completes
EVAL_PREFIX = "eval/"  # metrics.jsonl keys of downstream scores: eval/<task>/<metric>
# config.yaml of a branch (`tinyllama anneal`): {parent, step, parent_lr}; every rewrite keeps it.
BRANCH_KEY = "branch"

_CHECKPOINT_NAME = re.compile(r"step-(\d+)")


# --- paths ---------------------------------------------------------------------------------------


def config_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / CONFIG_FILE


def tokenizer_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / TOKENIZER_FILE


def metrics_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / METRICS_FILE


def checkpoints_root(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINTS_DIR


def run_dir_of(checkpoint: Path) -> Path:
    """The run directory a checkpoint directory sits in (two levels up)."""
    return checkpoint.parent.parent


# --- checkpoint names and discovery --------------------------------------------------------------


def checkpoint_name(step: int) -> str:
    """`step-NNNNNNNN`: zero-padded, so a listing sorted by name reads in order (discovery
    still orders by the number, so a hand-made `step-950` is placed correctly)."""
    return f"step-{step:08d}"


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    return checkpoints_root(run_dir) / checkpoint_name(step)


def in_progress_dir(checkpoint: Path) -> Path:
    """Where a save of `checkpoint` is written before its rename: `step-NNNNNNNN.tmp`, which
    discovery never matches."""
    return checkpoint.with_name(checkpoint.name + ".tmp")


def checkpoint_step(path: Path) -> int | None:
    """The step number in a checkpoint directory's name; None for any other name."""
    match = _CHECKPOINT_NAME.fullmatch(path.name)
    return int(match.group(1)) if match else None


def is_complete(checkpoint: Path) -> bool:
    return (checkpoint / DCP_METADATA_FILE).is_file() and (checkpoint / STATE_FILE).is_file()


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first, ordered by step number (not by name)."""
    root = checkpoints_root(run_dir)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        step = checkpoint_step(child)
        if step is not None and child.is_dir() and is_complete(child):
            found.append((step, child))
    return [path for _, path in sorted(found)]


def copy_checkpoint(checkpoint: Path, run_dir: str | Path) -> Path:
    """Copy a complete checkpoint into another run dir under its own step's name (a branch
    starts from it); state.json, the completeness mark, is copied last."""
    target = checkpoint_dir(run_dir, checkpoint_step(checkpoint))
    shutil.copytree(checkpoint, target, ignore=shutil.ignore_patterns(STATE_FILE))
    shutil.copy2(checkpoint / STATE_FILE, target / STATE_FILE)
    return target


def prune_checkpoints(run_dir: str | Path, keep_last: int) -> None:
    """Delete all but the newest `keep_last` complete checkpoints (0 keeps everything)."""
    if keep_last <= 0:
        return
    for old in list_checkpoints(run_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)


# --- state.json ----------------------------------------------------------------------------------


def read_state(checkpoint: Path) -> dict[str, Any]:
    return json.loads((checkpoint / STATE_FILE).read_text())


def write_state(checkpoint: Path, state: dict[str, Any], fsync: bool = False) -> None:
    """state.json, atomically; with `fsync`, durably (the trainer's last write before its
    rename)."""
    files.write_json(checkpoint / STATE_FILE, state, fsync=fsync)


def checkpoint_model_config(checkpoint: Path) -> ModelConfig:
    """The model of a checkpoint: state.json's `model_config`, else its run's config.yaml."""
    state = read_state(checkpoint)
    if "model_config" in state:
        return ModelConfig.from_dict(state["model_config"])
    run_config = config_path(run_dir_of(checkpoint))
    if run_config.is_file():
        return ModelConfig.from_dict(load_yaml(run_config)["model"])
    raise UserError(
        f"checkpoint {checkpoint} records no model config (state.json model_config "
        "or ../../config.yaml)"
    )


# --- metrics.jsonl -------------------------------------------------------------------------------


def append_metrics(run_dir: str | Path, record: dict[str, Any]) -> None:
    """One record as one line (a reader may see the last line torn while it is written)."""
    with open(metrics_path(run_dir), "a") as f:
        f.write(json.dumps(record) + "\n")


def truncate_metrics(run_dir: str | Path, step: int) -> None:
    """Drop the records after `step` (a resume redoes those steps) and any line torn by a kill
    mid-write; the file is replaced whole."""
    path = metrics_path(run_dir)
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except json.JSONDecodeError:
            continue
    files.write_text(path, "".join(line + "\n" for line in keep))


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of RUN_DIR/metrics.jsonl. A torn last line (a run still writing) is skipped;
    a bad line elsewhere is an error."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(
            f"run directory {run_dir} does not exist; pass a directory written by "
            "`tinyllama pretrain`"
        )
    path = metrics_path(run_dir)
    if not path.is_file():
        raise UserError(
            f"{run_dir} has no metrics.jsonl; pass a run directory written by `tinyllama pretrain`"
        )
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


def is_eval_record(record: dict[str, Any]) -> bool:
    """A validation loss or a downstream score (`eval/<task>/<metric>`): not an optimizer step."""
    return "val_loss" in record or any(key.startswith(EVAL_PREFIX) for key in record)


def training_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of optimizer steps (tokens_seen, no val_loss or downstream score), in file
    order."""
    return [r for r in records if _number(r.get("tokens_seen")) and not is_eval_record(r)]


def _goes_back(now: dict[str, Any], before: dict[str, Any], key: str) -> bool:
    return _number(now.get(key)) and _number(before.get(key)) and now[key] <= before[key]


def latest_job(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The training records of the latest job. A resumed job restarts its elapsed_s clock and
    redoes the steps after its checkpoint, so a job begins where step or elapsed_s goes back."""
    train = training_records(records)
    start = 0
    for i in range(1, len(train)):
        now, before = train[i], train[i - 1]
        if _goes_back(now, before, "step") or _goes_back(now, before, "elapsed_s"):
            start = i
    return train[start:]


def median_mfu(records: list[dict[str, Any]]) -> tuple[float, int] | None:
    """(median of the `mfu` the trainer logged over the latest job, records used); None when
    no record has one. The median, because the first interval of a job includes warm-up."""
    values = [r["mfu"] for r in latest_job(records) if _number(r.get("mfu")) and r["mfu"] > 0]
    if not values:
        return None
    return statistics.median(values), len(values)
