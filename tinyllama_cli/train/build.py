"""Building the model a worker trains: on the meta device, parallelised, then filled shard-wise.

Every worker used to build and initialise the full fp32 model on the CPU before sharding it:
18 GB of host memory per rank for 1.1B with AdamW to come, whatever the world size. Now the
model is built on the meta device (no memory), wrapped by `distributed.parallelize` (activation
checkpointing, compile, FSDP2: each parameter becomes this rank's shard), allocated with
`to_empty`, and filled one parameter at a time:

- from the seed: each parameter's full values are drawn on the CPU from its own generator
  (`model.param_generator(seed, name)`), then this rank keeps its shard. One parameter is in host
  memory at a time, and every rank, at any world size, holds exactly the values a single device
  gets (tested).
- `--init-from` a native checkpoint: DCP loads straight into the sharded state dict (it reads
  only this rank's part); a Hugging Face directory: safetensors are read one tensor at a time.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from tinyllama_cli.model import Llama, init_parameter, param_generator
from tinyllama_cli.train.distributed import World, parallelize
from tinyllama_cli.train.setup import Run

# What activation checkpointing and torch.compile insert into parameter names.
_WRAPPER_PREFIXES = ("_checkpoint_wrapped_module.", "_orig_mod.")


def build_model(run: Run, world: World, precision: str, compile: bool) -> nn.Module:
    """The run's model on this worker: parallelised, initialised from the seed or --init-from.
    `compile` is the resolved decision (`distributed.resolve_compile`), not the config's."""
    with torch.device("meta"):
        model = Llama(run.model)
    speed = run.train.speed
    model.set_attention(speed.attention)
    model = parallelize(model, world, precision, compile, speed.activation_checkpointing)
    model.to_empty(device=world.device)
    if run.train.model.init_from:
        load_weights(model, run.train.model.init_from)
    else:
        init_from_seed(model, run.train.data_order.seed)
    model.init_rope()
    model.train()
    return model


def plain_name(name: str) -> str:
    """A parameter's name in the plain `Llama` (as in checkpoints), without wrapper prefixes."""
    for prefix in _WRAPPER_PREFIXES:
        name = name.replace(prefix, "")
    return name


@torch.no_grad()
def copy_full_into(param: torch.Tensor, full: torch.Tensor) -> None:
    """Copy this rank's part of the full tensor `full` into `param` (a plain tensor or the
    DTensor shard FSDP2 made of it). No communication: every rank has the same `full`."""
    if hasattr(param, "device_mesh"):
        from torch.distributed.tensor import distribute_tensor

        local = distribute_tensor(
            full.to(param.dtype), param.device_mesh, param.placements, src_data_rank=None
        )
        param.to_local().copy_(local.to_local())
    else:
        param.copy_(full)


@torch.no_grad()
def init_from_seed(model: nn.Module, seed: int) -> None:
    """TinyLlama's init (`model.init_parameter`), parameter by parameter, shard by shard."""
    config = model.config
    for name, param in model.named_parameters():
        name = plain_name(name)
        full = torch.empty(param.shape, dtype=torch.float32)  # a DTensor's shape is the global one
        init_parameter(config, name, full, param_generator(seed, name))
        copy_full_into(param, full)


def load_weights(model: nn.Module, source: str | Path) -> None:
    """--init-from: a run/checkpoint dir through DCP (resharded), or an HF dir tensor by tensor."""
    from tinyllama_cli.load import resolve_checkpoint

    kind, directory = resolve_checkpoint(source)
    if kind == "native":
        _load_native(model, directory)
    else:
        _load_hf(model, directory)


def _load_native(model: nn.Module, checkpoint: Path) -> None:
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, set_model_state_dict

    from tinyllama_cli.formats import dcp as safe_dcp

    state = get_model_state_dict(model)  # plain names, this rank's shards
    safe_dcp.load({"model": state}, checkpoint)
    set_model_state_dict(model, state)


@torch.no_grad()
def _load_hf(model: nn.Module, directory: Path) -> None:
    from tinyllama_cli.formats.hf import HFTensors

    with HFTensors(directory) as tensors:
        for name, param in model.named_parameters():
            copy_full_into(param, tensors.native(plain_name(name)).to(torch.float32))
