"""load.py: run dir / checkpoint dir / HF dir resolution and weight loading."""

import json

import pytest
import torch
import torch.distributed.checkpoint as dcp

from tinyllama_cli.config import ModelConfig
from tinyllama_cli.errors import UserError
from tinyllama_cli.formats.hf import hf_config_dict, native_to_hf_state_dict
from tinyllama_cli.load import load_model, resolve_checkpoint
from tinyllama_cli.model import Llama
from tinyllama_cli.rundir import list_checkpoints

CONFIG = ModelConfig(
    name="t",
    vocab_size=97,
    n_layer=2,
    n_embd=32,
    n_head=4,
    n_kv_head=2,
    intermediate_size=64,
    block_size=32,
)


def write_native(directory, model, step):
    directory.mkdir(parents=True)
    dcp.save({"model": model.state_dict()}, checkpoint_id=str(directory))
    (directory / "state.json").write_text(
        json.dumps({"step": step, "model_config": CONFIG.to_dict()})
    )


def test_run_dir_resolves_to_highest_step_not_lexicographic(tmp_path):
    torch.manual_seed(0)
    model = Llama(CONFIG)
    for step in (900, 1000):
        write_native(tmp_path / "checkpoints" / f"step-{step:08d}", model, step)
    (tmp_path / "checkpoints" / "step-99999999.tmp").mkdir()  # incomplete save: ignored
    # A name that sorts last lexicographically but is a lower step must not win.
    write_native(tmp_path / "checkpoints" / "step-950", model, 950)
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "step-00000900",
        "step-950",
        "step-00001000",
    ]
    kind, path = resolve_checkpoint(tmp_path)
    assert kind == "native" and path.name == "step-00001000"
    loaded = load_model(tmp_path)
    idx = torch.randint(0, 97, (1, 8))
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(idx), model.eval()(idx))


def test_hf_dir_loads_with_same_logits(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(1)
    model = Llama(CONFIG).eval()
    (tmp_path / "config.json").write_text(json.dumps(hf_config_dict(CONFIG)))
    save_file(
        {k: v.contiguous() for k, v in native_to_hf_state_dict(model.state_dict()).items()},
        str(tmp_path / "model.safetensors"),
        metadata={"format": "pt"},
    )
    loaded = load_model(tmp_path)
    assert loaded.kind == "hf" and loaded.config.n_kv_head == 2
    idx = torch.randint(0, 97, (1, 8))
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(idx), model(idx))


def test_not_a_model_dir_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not a model directory"):
        resolve_checkpoint(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        resolve_checkpoint(tmp_path / "missing")
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(UserError, match="no complete checkpoint"):
        resolve_checkpoint(tmp_path)
