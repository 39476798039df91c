"""Find and load a model from anywhere one lives: a run directory (its newest complete
checkpoint), one checkpoint directory, or a Hugging Face Llama directory.

Finding is the run dir's rules (`rundir`: complete checkpoints, newest by step number) and the
HF directory's (`formats.hf.is_hf_dir`); reading the weights is the formats' (`formats.native`
reads only the `model.*` entries of a DCP checkpoint, with no process group; `formats.hf`
reads safetensors, never pickled code). This module puts them together for every command that
takes a CKPT: eval, generate, convert and `pretrain --init-from`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from tinyllama_cli import rundir
from tinyllama_cli.config import ModelConfig
from tinyllama_cli.errors import UserError
from tinyllama_cli.formats import hf, native
from tinyllama_cli.model import Llama, empty_model
from tinyllama_cli.tokenizer import Tokenizer


@dataclass
class LoadedModel:
    model: Llama
    config: ModelConfig
    tokenizer: Tokenizer | None
    source: Path  # the checkpoint or HF directory the weights came from
    kind: str  # "native" or "hf"


def resolve_checkpoint(path: str | Path) -> tuple[str, Path]:
    """("native" | "hf", directory holding the weights) for a run, checkpoint or HF directory."""
    path = Path(path)
    if not path.exists():
        raise UserError(
            f"{path} does not exist; pass a run directory, a checkpoint directory or a Hugging "
            "Face model directory"
        )
    if rundir.is_complete(path):
        return "native", path
    if hf.is_hf_dir(path):
        return "hf", path
    if rundir.checkpoints_root(path).is_dir():
        checkpoints = rundir.list_checkpoints(path)
        if not checkpoints:
            raise UserError(
                f"run directory {path} has no complete checkpoint yet; train with --save-every or "
                "wait for the first save"
            )
        return "native", checkpoints[-1]
    if (path / hf.CONFIG_FILE).is_file() and (path / "pytorch_model.bin").is_file():
        raise UserError(
            f"{path} holds pickled pytorch_model.bin weights, which are not loaded for safety; "
            "re-save them as safetensors"
        )
    raise UserError(
        f"{path} is not a model directory (no checkpoints/, state.json + .metadata, or "
        "config.json + model.safetensors)"
    )


def model_config_of(kind: str, directory: Path) -> ModelConfig:
    """The ModelConfig of a directory `resolve_checkpoint` returned, without reading weights."""
    if kind == "native":
        return rundir.checkpoint_model_config(directory)
    return hf.read_model_config(directory)


def find_tokenizer(directory: Path) -> Tokenizer | None:
    """tokenizer.model beside the weights, or in the run directory two levels up."""
    for candidate in (
        rundir.tokenizer_path(directory),
        rundir.tokenizer_path(rundir.run_dir_of(directory)),
    ):
        if candidate.is_file():
            return Tokenizer(candidate)
    return None


def load_model(
    path: str | Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> LoadedModel:
    """Load weights, config and tokenizer from a run, checkpoint or HF directory, in eval mode."""
    kind, directory = resolve_checkpoint(path)
    config = model_config_of(kind, directory)
    tokenizer = find_tokenizer(directory)
    _check_vocabulary(directory, tokenizer, config)
    if kind == "native":
        state = native.read_native_state(directory, config)
    else:
        state = hf.hf_to_native_state_dict(hf.read_hf_state(directory))
    model = empty_model(config, device=device, dtype=dtype)
    _check_tensors(directory, state, model.state_dict())
    model.load_state_dict(state, strict=True)
    model.eval()
    return LoadedModel(model=model, config=config, tokenizer=tokenizer, source=directory, kind=kind)


def _check_vocabulary(directory: Path, tokenizer: Tokenizer | None, config: ModelConfig) -> None:
    """A tokenizer may be smaller than the model's vocabulary (a padded embedding: generation
    masks the unused rows) but never larger: its top ids would have no embedding."""
    if tokenizer is not None and tokenizer.vocab_size > config.vocab_size:
        raise UserError(
            f"{directory}: its tokenizer has {tokenizer.vocab_size} pieces but the model's "
            f"vocabulary is {config.vocab_size}, so some ids have no embedding; put the "
            "tokenizer.model the model was trained with beside it"
        )


def _check_tensors(
    directory: Path, state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]
) -> None:
    """Every tensor the config implies, each of its shape, or one line naming the first miss."""
    missing = sorted(set(expected) - set(state))
    if missing:
        raise UserError(
            f"{directory} lacks tensors "
            f"{', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}; it is not a complete "
            "Llama checkpoint"
        )
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise UserError(
                f"{directory}: tensor {name} has shape {tuple(tensor.shape)}, the config implies "
                f"{tuple(expected[name].shape)}"
            )
