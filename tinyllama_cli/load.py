"""Find and load a model from anywhere one lives: a run directory (its newest complete
checkpoint), one checkpoint directory, or a Hugging Face Llama directory.

The native checkpoint format (written by `train/checkpoint.py`):

    RUN_DIR/config.yaml                 fully resolved config; its `model:` section is a ModelConfig
    RUN_DIR/tokenizer.model
    RUN_DIR/checkpoints/step-NNNNNNNN/  torch.distributed.checkpoint files (.metadata, *.distcp)
                                        holding {"model": <Llama state_dict>, "optim": ...}
                                        plus state.json with at least {"step", "model_config"}

Loading reads only the `model.*` entries of a checkpoint (never the optimizer state) and needs
no process group. Hugging Face weights are read from safetensors (never pickled code).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from tinyllama_cli import rundir
from tinyllama_cli.config import ModelConfig
from tinyllama_cli.errors import UserError
from tinyllama_cli.model import Llama
from tinyllama_cli.tokenizer import Tokenizer


@dataclass
class LoadedModel:
    model: Llama
    config: ModelConfig
    tokenizer: Tokenizer | None
    source: Path  # the checkpoint or HF directory the weights came from
    kind: str  # "native" or "hf"


def is_hf_dir(path: Path) -> bool:
    return (path / "config.json").is_file() and (
        (path / "model.safetensors").is_file() or (path / "model.safetensors.index.json").is_file()
    )


def resolve_checkpoint(path: str | Path) -> tuple[str, Path]:
    """("native" | "hf", directory holding the weights) for a run, checkpoint or HF directory."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist; pass a run directory, a checkpoint directory or a Hugging Face model directory")
    if rundir.is_complete(path):
        return "native", path
    if is_hf_dir(path):
        return "hf", path
    if rundir.checkpoints_root(path).is_dir():
        checkpoints = rundir.list_checkpoints(path)
        if not checkpoints:
            raise UserError(f"run directory {path} has no complete checkpoint yet; train with --save-every or wait for the first save")
        return "native", checkpoints[-1]
    if (path / "config.json").is_file() and (path / "pytorch_model.bin").is_file():
        raise UserError(f"{path} holds pickled pytorch_model.bin weights, which are not loaded for safety; re-save them as safetensors")
    raise UserError(f"{path} is not a model directory (no checkpoints/, state.json + .metadata, or config.json + model.safetensors)")


def find_tokenizer(directory: Path) -> Tokenizer | None:
    """tokenizer.model beside the weights, or in the run directory two levels up."""
    for candidate in (rundir.tokenizer_path(directory),
                      rundir.tokenizer_path(rundir.run_dir_of(directory))):
        if candidate.is_file():
            return Tokenizer(candidate)
    return None


def empty_model(config: ModelConfig, device: torch.device | str = "cpu",
                dtype: torch.dtype = torch.float32) -> Llama:
    """A model with uninitialised weights (no time spent on random init before loading)."""
    with torch.device("meta"):
        model = Llama(config)
    model = model.to_empty(device=device).to(dtype)
    model.init_rope()
    return model


def read_native_state(checkpoint: Path, config: ModelConfig) -> dict[str, torch.Tensor]:
    """The model's fp32 tensors from a (possibly sharded) DCP checkpoint; no process group needed."""
    import warnings

    import torch.distributed.checkpoint as dcp

    state = dict(empty_model(config).state_dict())
    _check_native_shapes(checkpoint, state)
    with warnings.catch_warnings():  # "assuming the intent is to load in a single process": it is
        warnings.filterwarnings("ignore", message=".*single process.*")
        dcp.load({"model": state}, checkpoint_id=str(checkpoint))
    return state


def _check_native_shapes(checkpoint: Path, expected: dict[str, torch.Tensor]) -> None:
    """Compare the checkpoint's recorded tensor shapes with the config's before DCP loads (DCP
    would otherwise fail with a ValueError traceback for a mismatched or incomplete checkpoint)."""
    import torch.distributed.checkpoint as dcp

    stored = dcp.FileSystemReader(str(checkpoint)).read_metadata().state_dict_metadata
    for name, tensor in expected.items():
        meta = stored.get(f"model.{name}")
        if meta is None or not hasattr(meta, "size"):
            raise UserError(f"checkpoint {checkpoint} lacks tensor {name}; it is not a complete Llama checkpoint")
        if tuple(meta.size) != tuple(tensor.shape):
            raise UserError(f"{checkpoint}: tensor {name} has shape {tuple(meta.size)}, the config implies {tuple(tensor.shape)}")


def read_hf_state(directory: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    index = directory / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    state: dict[str, torch.Tensor] = {}
    for name in files:
        state.update(load_file(str(directory / name)))
    return state


def load_model(path: str | Path, device: torch.device | str = "cpu",
               dtype: torch.dtype = torch.float32) -> LoadedModel:
    """Load weights, config and tokenizer from a run, checkpoint or HF directory, in eval mode."""
    from tinyllama_cli.convert.hf import hf_to_native_state_dict, model_config_from_hf

    kind, directory = resolve_checkpoint(path)
    if kind == "native":
        config = rundir.checkpoint_model_config(directory)
        state = read_native_state(directory, config)
    else:
        config = model_config_from_hf(json.loads((directory / "config.json").read_text()), name=directory.name)
        state = hf_to_native_state_dict(read_hf_state(directory))
    model = empty_model(config, device=device, dtype=dtype)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    if missing:
        raise UserError(f"{directory} lacks tensors {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}; it is not a complete Llama checkpoint")
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise UserError(f"{directory}: tensor {name} has shape {tuple(tensor.shape)}, the config implies {tuple(expected[name].shape)}")
    model.load_state_dict(state, strict=True)
    model.eval()
    return LoadedModel(model=model, config=config, tokenizer=find_tokenizer(directory), source=directory, kind=kind)
