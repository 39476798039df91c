"""Downstream eval inside training (`eval/live.py`, `eval/sharded_lm.py`): the scores logged by 2
FSDP workers at a step equal `tinyllama eval` on that step's checkpoint; bad tasks fail at start."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest

from tests.eval.files import task_rows
from tinyllama_cli.config import TrainConfig
from tinyllama_cli.errors import UserError
from tinyllama_cli.eval import evaluate
from tinyllama_cli.rundir import checkpoint_dir, read_metrics, training_records
from tinyllama_cli.train import launch

TRAIN = {
    "model": "cpu-tiny",
    "seq_len": 32,
    "micro_batch_size": 2,
    "global_batch_size": 8,
    "max_steps": 4,
    "warmup_steps": 1,
    "lr": 3e-3,
    "log_every": 1,
    "save_every": 2,
    "eval_every": 2,
    "eval_samples": 2,
    "keep_last": 0,
    "num_threads": 1,
    "tensorboard": False,
    "precision": "fp32",
}


@pytest.fixture(scope="module")
def task_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("live-tasks")
    files = {}
    for task, rows in task_rows(random.Random(3), n=7).items():  # 7: the workers' shares differ
        if task in ("arc_easy", "piqa"):
            files[task] = root / f"{task}.jsonl"
            files[task].write_text("".join(json.dumps(r) + "\n" for r in rows))
    return files


def cli_flags(values: dict) -> list[str]:
    out = []
    for key, value in values.items():
        flag = "--" + key.replace("_", "-")
        out += [f"--no-{flag[2:]}"] if value is False else [flag, str(value)]
    return out


def test_two_workers_log_what_tinyllama_eval_scores_on_each_checkpoint(
    token_data, task_files, tmp_path
):
    out = tmp_path / "run"
    datasets = ",".join(f"{t}={p}" for t, p in task_files.items())
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tinyllama_cli",
            "pretrain",
            "--data",
            str(token_data),
            "--out",
            str(out),
            *cli_flags(TRAIN),
            "--eval-tasks",
            "arc_easy,piqa",
            "--eval-dataset",
            datasets,
            "--devices",
            "2",
            "--accelerator",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    records = read_metrics(out)
    logged = {r["step"]: r for r in records if "eval/arc_easy/acc_norm" in r}
    assert sorted(logged) == [2, 4] and len(training_records(records)) == 4  # not optimizer steps
    for step, record in logged.items():
        result = evaluate(
            checkpoint_dir(out, step),
            "arc_easy,piqa",
            baseline=False,
            datasets=[f"{t}={p}" for t, p in task_files.items()],
        )
        assert {f"eval/{t}/{m}": v for t, (m, v) in result.scores.items()} == {
            k: v for k, v in record.items() if k.startswith("eval/")
        }
    assert "eval  arc_easy/acc_norm" in proc.stdout


def test_an_unknown_task_or_missing_data_fails_before_the_run_dir_exists(
    token_data, task_files, tmp_path
):
    cfg = {"data": str(token_data), "out": str(tmp_path / "run"), **TRAIN}
    with pytest.raises(UserError, match="unknown task 'arc_easyy'"):
        launch.pretrain(TrainConfig.of(**cfg, eval_tasks="arc_easyy"))
    with pytest.raises(UserError, match="does not exist"):
        launch.pretrain(
            TrainConfig.of(**cfg, eval_tasks="piqa", eval_dataset=f"piqa={tmp_path / 'no.jsonl'}")
        )
    with pytest.raises(UserError, match="--eval-limit must be at least 1"):
        launch.pretrain(
            TrainConfig.of(
                **cfg, eval_tasks="piqa", eval_limit=0, eval_dataset=f"piqa={task_files['piqa']}"
            )
        )
    with pytest.raises(UserError, match="add --eval-tasks"):
        launch.pretrain(TrainConfig.of(**cfg, eval_dataset=f"piqa={task_files['piqa']}"))
    assert not (tmp_path / "run").exists()


def test_scoring_leaves_the_runs_generators_as_it_found_them():
    """lm-eval seeds the global generators; in training they belong to the run."""
    import random

    import numpy as np
    import torch

    from tinyllama_cli.eval.live import own_random_state

    states = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state())
    with own_random_state():
        random.seed(1234), np.random.seed(1234), torch.manual_seed(1234)
        torch.rand(3)
    assert random.getstate() == states[0]
    assert (np.random.get_state()[1] == states[1]).all()
    assert torch.equal(torch.get_rng_state(), states[2])
