"""formats/native.py: a native model dir is a run dir with one step-0 checkpoint, loadable
everywhere, and its DCP model entries read back bit for bit. (Converting into and out of it:
tests/convert/.)"""

from __future__ import annotations

import pytest
import torch

from tinyllama_cli import rundir
from tinyllama_cli.config import get_preset, load_yaml
from tinyllama_cli.errors import UserError
from tinyllama_cli.formats.native import read_native_state, save_native
from tinyllama_cli.load import load_model
from tinyllama_cli.model import Llama


def test_saved_dir_is_a_run_dir_whose_weights_read_back_exactly(tmp_path):
    config = get_preset("cpu-tiny")
    torch.manual_seed(0)
    model = Llama(config)
    out = save_native(model, tmp_path / "native", source="test")
    [checkpoint] = rundir.list_checkpoints(out)
    assert checkpoint == rundir.checkpoint_dir(out, 0)
    assert rundir.read_state(checkpoint)["step"] == 0
    assert rundir.checkpoint_model_config(checkpoint) == config
    assert load_yaml(rundir.config_path(out)) == {"model": config.to_dict(), "source": "test"}
    state = read_native_state(checkpoint, config)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert load_model(out).source == checkpoint
    with pytest.raises(UserError, match="already exists"):
        save_native(model, out)


def test_a_checkpoint_of_another_shape_is_refused_before_dcp_loads(tmp_path):
    config = get_preset("cpu-tiny")
    out = save_native(Llama(config), tmp_path / "native")
    with pytest.raises(UserError, match="the config implies"):
        read_native_state(rundir.checkpoint_dir(out, 0), config.replace(n_embd=2 * config.n_embd))
