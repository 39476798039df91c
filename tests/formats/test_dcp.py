"""Untrusted checkpoints: a crafted DCP checkpoint runs none of its code in any command."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import pytest
import torch
import torch.distributed.checkpoint as dcp

from tests.tiny_runs import SHAPE_FLAGS, tiny_run
from tinyllama_cli.config import TrainConfig
from tinyllama_cli.rundir import list_checkpoints
from tinyllama_cli.train import launch


class RunsAShellCommand:
    """Unpickling this runs `touch MARKER`: what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def run(token_data, tmp_path):
    out = tmp_path / "run"
    launch.pretrain(
        tiny_run(
            token_data,
            out,
            max_steps=2,
            save_every=2,
            precision="fp32",
        )
    )
    return out


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tinyllama_cli", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def commands(run, token_data, tmp_path) -> dict[str, list[str]]:
    hellaswag = tmp_path / "h.jsonl"
    hellaswag.write_text(
        json.dumps(
            {
                "ind": 0,
                "activity_label": "a",
                "ctx_a": "the quick",
                "ctx_b": "",
                "ctx": "the quick",
                "endings": ["fox", "dog", "cat", "cow"],
                "source_id": "x",
                "split": "val",
                "split_type": "indomain",
                "label": "0",
            }
        )
        + "\n"
    )
    return {
        "generate": ["generate", str(run), "--prompt", "the"],
        "convert": ["convert", str(run), "--to", "hf", "--out", str(tmp_path / "hf")],
        "eval": ["eval", str(run), "--tasks", "hellaswag", "--dataset", f"hellaswag={hellaswag}"],
        "resume": ["resume", str(run), "--max-steps", "4"],
        "init-from": [
            "pretrain",
            "--data",
            str(token_data),
            "--out",
            str(tmp_path / "new"),
            "--init-from",
            str(run),
            "--max-steps",
            "1",
            "--model",
            "cpu-tiny",
            *SHAPE_FLAGS,
        ],
    }


def test_a_crafted_metadata_file_runs_nothing_in_any_command(run, token_data, tmp_path):
    marker = tmp_path / "pwned"
    metadata = list_checkpoints(run)[-1] / ".metadata"
    metadata.write_bytes(pickle.dumps(RunsAShellCommand(marker)))
    for name, args in commands(run, token_data, tmp_path).items():
        out = cli(*args)
        assert out.returncode == 2, (name, out.stderr[-2000:])
        assert (
            "posix.system, which is no part of a torch.distributed.checkpoint index" in out.stderr
        ), name
        assert out.stderr.strip().count("\n") == 0 and "Traceback" not in out.stderr, name
        assert not marker.exists(), f"{name} ran the checkpoint's code"
    assert not (tmp_path / "hf").exists() and not (tmp_path / "new" / "checkpoints").exists()


def test_a_crafted_optimizer_entry_runs_nothing_on_resume(run, tmp_path):
    """DCP's own planner reads non-tensor entries with torch.load(weights_only=False)."""
    from torch.distributed.checkpoint.state_dict import get_state_dict

    from tinyllama_cli.load import load_model
    from tinyllama_cli.train.optim import build_optimizer

    marker = tmp_path / "pwned"
    checkpoint = list_checkpoints(run)[-1]
    model = load_model(run).model.train()
    cfg = TrainConfig()
    optimizer = build_optimizer(model, cfg.optimizer, cfg.schedule, torch.device("cpu"))
    model_sd, optim_sd = get_state_dict(model, optimizer)
    optim_sd["param_groups"][0]["lr"] = RunsAShellCommand(marker)
    for f in checkpoint.glob("*.distcp"):
        f.unlink()
    dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(checkpoint), no_dist=True)
    out = cli("resume", str(run), "--max-steps", "4")
    assert out.returncode == 2, out.stderr[-2000:]
    assert "checkpoint entry optim.param_groups.0.lr is not plain data" in out.stderr
    assert not marker.exists()


def test_a_damaged_metadata_file_is_one_line(run, tmp_path):
    (list_checkpoints(run)[-1] / ".metadata").write_bytes(b"not a pickle at all")
    out = cli("generate", str(run), "--prompt", "the")
    assert out.returncode == 2 and "is not a readable checkpoint index" in out.stderr
    assert "Traceback" not in out.stderr
