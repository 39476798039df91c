"""`tinyllama average`: the fp64 mean of the newest K checkpoints, written as a model dir."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from tests.tiny_runs import tiny_run
from tinyllama_cli.average import average
from tinyllama_cli.cli import app
from tinyllama_cli.errors import UserError
from tinyllama_cli.formats.native import read_native_state
from tinyllama_cli.load import load_model
from tinyllama_cli.rundir import checkpoint_model_config, list_checkpoints
from tinyllama_cli.train import launch


@pytest.fixture(scope="module")
def run(token_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("avg") / "run"
    launch.pretrain(
        tiny_run(
            token_data,
            out,
            max_steps=8,
            save_every=2,
            keep_last=0,
            eval_every=0,
            precision="fp32",
            lr=3e-3,
        )
    )
    return out


def weights(path):
    return read_native_state(path, checkpoint_model_config(path))


def test_the_average_is_the_fp64_mean_of_the_newest_k_rounded_once(run, tmp_path):
    result = average(run, 3, tmp_path / "avg")
    assert result.steps == [4, 6, 8] and result.tokens_seen == [4 * 64, 6 * 64, 8 * 64]
    parts = [weights(c) for c in list_checkpoints(run)[-3:]]
    got = load_model(tmp_path / "avg").model.state_dict()  # what eval, generate, convert load
    for name, tensor in got.items():
        expected = (sum(p[name].double() for p in parts) / 3).float()
        assert torch.equal(tensor, expected), name
        assert not torch.equal(tensor, parts[-1][name]) or name.endswith("norm.weight"), name
    config = json.loads(
        (tmp_path / "avg" / "checkpoints" / "step-00000000" / "state.json").read_text()
    )
    assert config["source"] == f"average of {run.resolve()} steps 4, 6, 8"
    assert (tmp_path / "avg" / "tokenizer.model").is_file() and result.tokenizer


def test_the_average_of_one_checkpoint_is_that_checkpoint(run, tmp_path):
    average(run, 1, tmp_path / "one")
    newest, got = (
        weights(list_checkpoints(run)[-1]),
        load_model(tmp_path / "one").model.state_dict(),
    )
    assert all(torch.equal(got[name], newest[name]) for name in newest)


@pytest.mark.parametrize(
    "last, out, message",
    [
        (0, "new", "--last must be at least 1"),
        (5, "new", "has 4 complete checkpoint\\(s\\), fewer than --last 5"),
        (2, "exists", "already exists"),
    ],
)
def test_bad_input_writes_nothing(run, tmp_path, last, out, message):
    (tmp_path / "exists").mkdir()
    with pytest.raises(UserError, match=message):
        average(run, last, tmp_path / out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists"]


def test_cli_prints_the_checkpoints_averaged_and_json(run, tmp_path):
    shown = CliRunner().invoke(
        app, ["average", str(run), "--last", "2", "--out", str(tmp_path / "a")]
    )
    assert shown.exit_code == 0 and "uniform average of 2 checkpoint(s)" in shown.output
    assert "wrote" in shown.output and "384" in shown.output  # step 6: 6 x 4 x 16 tokens seen
    as_json = CliRunner().invoke(
        app, ["average", str(run), "--last", "2", "--out", str(tmp_path / "b"), "--json"]
    )
    assert json.loads(as_json.output)["steps"] == [6, 8]
    bad = CliRunner().invoke(
        app, ["average", str(tmp_path / "nothing"), "--last", "2", "--out", str(tmp_path / "c")]
    )
    assert bad.exit_code != 0
