"""`tinyllama anneal`: a branch continues its parent's data order exactly, decays from the
parent's lr, leaves the parent's bytes alone, and bad input writes nothing."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest
import yaml

from tests.train.test_train_resume import COMMON, STEPS, assert_same_weights, records
from tinyllama_cli.config import TrainConfig
from tinyllama_cli.errors import UserError
from tinyllama_cli.load import load_model
from tinyllama_cli.rundir import checkpoint_dir, list_checkpoints
from tinyllama_cli.train import launch
from tinyllama_cli.train.anneal import AnnealOptions, anneal, create_branch

DECAY = 6  # the parent's WSD decay: steps 19..24 of 24


@pytest.fixture(scope="module")
def parent(token_data, tmp_path_factory):
    """A WSD run of 24 steps (fp32: a branch must match it exactly), a checkpoint every 6."""
    out = tmp_path_factory.mktemp("parent") / "run"
    launch.pretrain(
        TrainConfig.of(
            data=str(token_data),
            out=str(out),
            precision="fp32",
            **{**COMMON, "lr_schedule": "wsd", "decay_steps": DECAY},
        )
    )
    return out


def tree_digest(root) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def lrs(run) -> dict[int, float]:
    return {
        r["step"]: r["lr"]
        for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
        if "lr" in r
    }


def test_a_branch_where_the_parent_decays_is_the_parents_decay_bit_for_bit(parent, tmp_path):
    before = tree_digest(parent)
    branch = tmp_path / "branch"
    assert anneal(AnnealOptions(parent, STEPS - DECAY, DECAY, branch)) == 0
    losses, vals = records(branch)
    parent_losses, parent_vals = records(parent)
    assert sorted(losses) == list(range(STEPS - DECAY + 1, STEPS + 1))
    assert losses == {s: parent_losses[s] for s in losses}  # the same samples, weights, lrs
    assert vals == {STEPS: parent_vals[STEPS]}
    assert lrs(branch) == {s: lrs(parent)[s] for s in losses}
    assert_same_weights(branch, parent)
    assert tree_digest(parent) == before  # the parent's files, byte for byte


def test_a_branch_from_the_flat_part_decays_from_the_parents_lr_on_its_data(parent, tmp_path):
    branch = tmp_path / "branch"
    anneal(AnnealOptions(parent, 12, 3, branch, decay_shape="linear", min_lr=1e-4))
    losses, _ = records(branch)
    assert sorted(losses) == [13, 14, 15]
    assert losses[13] == records(parent)[0][13]  # the parent's next batch, from the same weights
    assert lrs(branch) == pytest.approx(
        {13: 1e-4 + 2 / 3 * (3e-3 - 1e-4), 14: 1e-4 + 1 / 3 * (3e-3 - 1e-4), 15: 1e-4}
    )
    saved = yaml.safe_load((branch / "config.yaml").read_text())
    assert saved["branch"] == {"parent": str(parent.resolve()), "step": 12, "parent_lr": 3e-3}
    assert (saved["train"]["max_steps"], saved["train"]["decay_start_lr"]) == (15, 3e-3)
    assert saved["train"]["out"] == str(branch) and saved["hardware"]["world_size"] == 1
    assert [c.name for c in list_checkpoints(branch)] == ["step-00000012", "step-00000015"]
    assert load_model(branch).source == checkpoint_dir(
        branch, 15
    )  # eval, generate, convert read it


def test_a_cosine_parent_is_branched_from_the_lr_it_trained_that_checkpoint_at(
    token_data, tmp_path
):
    out = tmp_path / "cosine"
    launch.pretrain(
        TrainConfig.of(
            data=str(token_data),
            out=str(out),
            precision="fp32",
            **{**COMMON, "max_steps": 12, "eval_every": 0},
        )
    )
    cfg = create_branch(AnnealOptions(out, 6, 2, tmp_path / "b")).train
    parent_lr = lrs(out)[6]  # what the parent logged for its step 6
    assert 3e-4 < parent_lr < 3e-3 and cfg.schedule.decay_start_lr == parent_lr
    assert (cfg.schedule.lr_schedule, cfg.schedule.decay_shape) == ("wsd", None)


@pytest.mark.parametrize(
    "options, message",
    [
        (
            {"from_step": 7},
            "has no complete checkpoint at step 7; its checkpoints are at steps 6, 12, 18, 24",
        ),
        ({"decay_steps": 0}, "--decay-steps must be at least 1"),
        ({"out": "exists"}, "already exists"),
        ({"saving": True}, "step-00000030.tmp is a checkpoint still being written"),
        ({"decay_shape": "sqrt"}, "--decay-shape 'sqrt' is not one of"),
        ({"min_lr": 3e-3}, "was trained at lr 3.000e-03, not above --min-lr 3.000e-03"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(parent, tmp_path, options, message):
    before = tree_digest(parent)
    (tmp_path / "exists").mkdir()
    values = {
        "from_step": 12,
        "decay_steps": 3,
        "out": "new",
        "decay_shape": None,
        "min_lr": None,
        **options,
    }
    saving = checkpoint_dir(parent, 30).with_name("step-00000030.tmp")
    if values.pop("saving", False):
        saving.mkdir()
    try:
        with pytest.raises(UserError, match=message):
            create_branch(
                AnnealOptions(
                    parent,
                    values["from_step"],
                    values["decay_steps"],
                    tmp_path / values["out"],
                    values["decay_shape"],
                    values["min_lr"],
                )
            )
    finally:
        saving.rmdir() if saving.exists() else None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists"]  # no branch, no staging dir
    assert tree_digest(parent) == before


def test_cli_anneal_error_exits_2_with_one_line(parent, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tinyllama_cli",
            "anneal",
            str(parent),
            "--from-step",
            "5",
            "--decay-steps",
            "2",
            "--out",
            str(tmp_path / "b"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (
        proc.stderr.strip().count("\n") == 0 and "no complete checkpoint at step 5" in proc.stderr
    )
    assert not (tmp_path / "b").exists()
