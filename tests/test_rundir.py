"""rundir.py: checkpoint names, discovery by step number, completeness, pruning, state.json and
metrics.jsonl, all without torch."""

import json
import subprocess
import sys

import pytest

from tinyllama_cli import rundir
from tinyllama_cli.config import get_preset
from tinyllama_cli.errors import UserError


def fake_checkpoint(run_dir, name, state=None, metadata=True):
    """A checkpoint directory as discovery sees one (DCP's .metadata and state.json)."""
    path = rundir.checkpoints_root(run_dir) / name
    path.mkdir(parents=True)
    if metadata:
        (path / rundir.DCP_METADATA_FILE).write_bytes(b"")
    if state is not None:
        rundir.write_state(path, state)
    return path


def test_names_and_paths():
    assert rundir.checkpoint_name(12) == "step-00000012"
    final = rundir.checkpoint_dir("run", 12)
    assert str(final) == "run/checkpoints/step-00000012"
    assert rundir.in_progress_dir(final).name == "step-00000012.tmp"
    assert rundir.checkpoint_step(final) == 12
    assert rundir.checkpoint_step(rundir.in_progress_dir(final)) is None
    assert rundir.run_dir_of(final).name == "run"


def test_only_complete_checkpoints_are_listed_by_step_number(tmp_path):
    for step in (900, 1000):
        fake_checkpoint(tmp_path, rundir.checkpoint_name(step), {"step": step})
    fake_checkpoint(tmp_path, "step-950", {"step": 950})  # sorts last by name, is not the newest
    fake_checkpoint(tmp_path, "step-99999999.tmp", {"step": 1})  # a save in progress
    fake_checkpoint(tmp_path, rundir.checkpoint_name(2000))  # no state.json yet
    fake_checkpoint(tmp_path, rundir.checkpoint_name(3000), {"step": 3000}, metadata=False)
    assert [p.name for p in rundir.list_checkpoints(tmp_path)] == [
        "step-00000900",
        "step-950",
        "step-00001000",
    ]
    assert rundir.list_checkpoints(tmp_path / "elsewhere") == []


def test_prune_keeps_the_newest(tmp_path):
    for step in (1, 2, 3):
        fake_checkpoint(tmp_path, rundir.checkpoint_name(step), {"step": step})
    rundir.prune_checkpoints(tmp_path, 0)
    assert len(rundir.list_checkpoints(tmp_path)) == 3
    rundir.prune_checkpoints(tmp_path, 2)
    assert [rundir.checkpoint_step(p) for p in rundir.list_checkpoints(tmp_path)] == [2, 3]


def test_state_round_trips_and_names_the_model(tmp_path):
    config = get_preset("cpu-tiny")
    path = fake_checkpoint(tmp_path, "step-00000001", {"step": 1, "model_config": config.to_dict()})
    assert rundir.read_state(path)["step"] == 1
    assert rundir.checkpoint_model_config(path) == config
    rundir.write_state(path, {"step": 1})  # an old checkpoint: the run's config.yaml has the model
    with pytest.raises(UserError, match="records no model config"):
        rundir.checkpoint_model_config(path)
    from tinyllama_cli.config import dump_yaml

    dump_yaml({"model": config.to_dict()}, rundir.config_path(tmp_path))
    assert rundir.checkpoint_model_config(path) == config


def test_metrics_append_truncate_and_read(tmp_path):
    for step in (1, 2, 3):
        rundir.append_metrics(tmp_path, {"step": step, "loss": 1.0 / step})
    with open(rundir.metrics_path(tmp_path), "a") as f:
        f.write('{"step": 4, "lo')  # torn by kill -9
    assert [r["step"] for r in rundir.read_metrics(tmp_path)] == [1, 2, 3]  # a live run: skipped
    rundir.truncate_metrics(tmp_path, 2)
    assert rundir.metrics_path(tmp_path).read_text().splitlines() == [
        json.dumps({"step": 1, "loss": 1.0}),
        json.dumps({"step": 2, "loss": 0.5}),
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl"]
    rundir.truncate_metrics(tmp_path / "new", 0)  # nothing to truncate yet


def test_latest_job_starts_where_the_step_goes_back():
    records = [{"step": s, "tokens_seen": s, "elapsed_s": s, "mfu": 0.1 * s} for s in (1, 2, 3)]
    resumed = [{"step": s, "tokens_seen": s, "elapsed_s": s - 2, "mfu": 0.5} for s in (3, 4)]
    val = [{"step": 4, "val_loss": 1.0, "tokens_seen": 4}]
    assert rundir.latest_job(records + resumed + val) == resumed
    assert rundir.median_mfu(records + resumed) == (0.5, 2)
    assert rundir.median_mfu(val) is None


def test_the_module_needs_no_torch():
    code = "import sys, tinyllama_cli.rundir; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_downstream_score_records_are_not_optimizer_steps():
    steps = [
        {"step": s, "loss": 1.0, "tokens_seen": 64 * s, "elapsed_s": float(s)} for s in (1, 2, 3, 4)
    ]
    score = {"step": 2, "eval/piqa/acc_norm": 0.5, "tokens_seen": 128}
    records = steps[:2] + [score] + steps[2:]
    assert rundir.training_records(records) == steps
    assert rundir.latest_job(records) == steps  # the score at step 2 does not start a new job
    assert rundir.is_eval_record(score) and not rundir.is_eval_record(steps[0])
