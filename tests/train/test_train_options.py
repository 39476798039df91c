"""--init-from (native run or Hugging Face dir) and activation checkpointing."""

from __future__ import annotations

import json

import torch

from tinyllama_cli.config import ModelConfig, TrainConfig
from tinyllama_cli.formats.hf import save_hf
from tinyllama_cli.load import load_model
from tinyllama_cli.model import Llama
from tinyllama_cli.train import launch

SMALL = {
    "seq_len": 16,
    "micro_batch_size": 2,
    "global_batch_size": 4,
    "num_threads": 1,
    "tensorboard": False,
    "eval_samples": 2,
    "warmup_steps": 1,
}


def losses(run_dir):
    return [
        json.loads(x)["loss"]
        for x in (run_dir / "metrics.jsonl").read_text().splitlines()
        if "loss" in json.loads(x)
    ]


def test_init_from_hf_dir_and_native_run_starts_from_those_weights(token_data, precision, tmp_path):
    config = ModelConfig(
        name="hf-tiny",
        vocab_size=320,
        n_layer=1,
        n_embd=32,
        n_head=4,
        n_kv_head=2,
        intermediate_size=64,
        block_size=32,
    )
    torch.manual_seed(3)
    source = Llama(config)
    save_hf(source, tmp_path / "hf")
    # lr 0: AdamW leaves the weights as they were, so the run's weights must be the source's.
    zero = dict(SMALL, lr=0.0, min_lr=0.0, max_steps=1, precision=precision)
    launch.pretrain(
        TrainConfig.of(
            data=str(token_data), out=str(tmp_path / "a"), init_from=str(tmp_path / "hf"), **zero
        )
    )
    a = load_model(tmp_path / "a")
    assert a.config == config.replace(name="hf")  # HF dirs are named after the directory
    for name, tensor in source.state_dict().items():
        assert torch.equal(a.model.state_dict()[name], tensor), name
    launch.pretrain(
        TrainConfig.of(
            data=str(token_data), out=str(tmp_path / "b"), init_from=str(tmp_path / "a"), **zero
        )
    )
    assert losses(tmp_path / "b") == losses(tmp_path / "a")  # same weights, same data order


def test_activation_checkpointing_gives_the_same_losses(token_data, precision, tmp_path):
    common = dict(SMALL, model="cpu-tiny", max_steps=3, lr=1e-3, precision=precision)
    launch.pretrain(TrainConfig.of(data=str(token_data), out=str(tmp_path / "plain"), **common))
    launch.pretrain(
        TrainConfig.of(
            data=str(token_data), out=str(tmp_path / "ac"), activation_checkpointing=True, **common
        )
    )
    assert losses(tmp_path / "ac") == losses(tmp_path / "plain")
    assert (
        load_model(tmp_path / "ac").model.state_dict().keys()
        == load_model(tmp_path / "plain").model.state_dict().keys()
    )


def test_attention_backend_flag(token_data, tmp_path, monkeypatch):
    """sdpa turns flash-attn off in every block; flash where it cannot run fails before any
    file is written; an unknown backend is refused by the config."""
    import pytest

    from tinyllama_cli.config import get_preset
    from tinyllama_cli.errors import UserError

    with torch.device("meta"):
        model = Llama(get_preset("cpu-tiny"))
    assert all(block.attention.flash for block in model.layers)
    model.set_attention("sdpa")
    assert not any(block.attention.flash for block in model.layers)
    with pytest.raises(UserError, match="--attention flash needs flash-attn 2 on CUDA"):
        launch.pretrain(
            TrainConfig.of(
                data=str(token_data),
                out=str(tmp_path / "r"),
                model="cpu-tiny",
                max_steps=2,
                attention="flash",
                **SMALL,
            )
        )
    assert not (tmp_path / "r").exists()
    with pytest.raises(UserError, match="--attention 'xformers' is not one of auto, flash, sdpa"):
        TrainConfig.of(attention="xformers")
