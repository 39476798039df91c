"""The native format's tensors: writing a native model directory, and reading the model entries
of any native checkpoint (a training run's, or one written here).

    OUT/config.yaml                          {model: ModelConfig fields, source: ...}
    OUT/tokenizer.model                      when the source has one
    OUT/checkpoints/step-00000000/           DCP files holding {"model": Llama.state_dict()}
                                             + state.json (step 0, model_config, source)

A native model directory is a run directory (`rundir`, which names every path here) with one
step-0 checkpoint, so eval, generate, convert and `pretrain --init-from` accept it unchanged;
it is not resumable (its config.yaml has no `train:`). Weights are stored in fp32, the training
precision, so HF -> native -> HF and native -> HF -> native are bit-for-bit. Reading takes only
the `model.*` entries through DCP: no process group, no optimizer state in memory.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from tinyllama_cli import files, rundir
from tinyllama_cli.config import ModelConfig, dump_yaml
from tinyllama_cli.errors import UserError
from tinyllama_cli.model import Llama, empty_model
from tinyllama_cli.tokenizer import Tokenizer


@contextmanager
def _single_process_dcp() -> Iterator[None]:
    """DCP warns that it assumes a single process when no group exists: intended here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(single process|process group).*")
        yield


def save_native(
    model: Llama,
    out_dir: str | Path,
    tokenizer: Tokenizer | None = None,
    source: str = "",
    overwrite: bool = False,
) -> Path:
    """Write `model` as a native model directory at `out_dir` (staged, then renamed)."""
    out_dir = Path(out_dir)
    with files.staged(out_dir, overwrite) as tmp:
        write_native(model, tmp, tokenizer, source)
    return out_dir


def write_native(
    model: Llama, directory: Path, tokenizer: Tokenizer | None = None, source: str = ""
) -> None:
    """Write the native file set into `directory`, which must not exist yet."""
    import torch.distributed.checkpoint as dcp

    checkpoint = rundir.checkpoint_dir(directory, 0)
    checkpoint.mkdir(parents=True)
    state = {
        k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()
    }
    with _single_process_dcp():
        dcp.save({"model": state}, checkpoint_id=str(checkpoint), no_dist=True)
    config = model.config.to_dict()
    rundir.write_state(
        checkpoint,
        {
            "step": 0,
            "tokens_seen": 0,
            "samples_seen": 0,
            "data_fingerprint": None,
            "model_config": config,
            "source": source,
        },
    )
    dump_yaml({"model": config, "source": source}, rundir.config_path(directory))
    if tokenizer is not None:
        files.copy(tokenizer.path, rundir.tokenizer_path(directory))


def read_native_state(checkpoint: Path, config: ModelConfig) -> dict[str, torch.Tensor]:
    """The model's fp32 tensors from a (possibly sharded) DCP checkpoint; no process group
    needed."""
    from tinyllama_cli.formats import dcp as safe_dcp

    state = dict(empty_model(config).state_dict())
    _check_native_shapes(checkpoint, state)
    safe_dcp.load({"model": state}, checkpoint)
    return state


def _check_native_shapes(checkpoint: Path, expected: dict[str, torch.Tensor]) -> None:
    """Compare the checkpoint's recorded tensor shapes with the config's before DCP loads (DCP
    would otherwise fail with a ValueError traceback for a mismatched or incomplete checkpoint)."""
    from tinyllama_cli.formats import dcp as safe_dcp

    stored = safe_dcp.read_metadata(checkpoint).state_dict_metadata
    for name, tensor in expected.items():
        meta = stored.get(f"model.{name}")
        if meta is None or not hasattr(meta, "size"):
            raise UserError(
                f"checkpoint {checkpoint} lacks tensor {name}; it is not a complete Llama "
                "checkpoint"
            )
        if tuple(meta.size) != tuple(tensor.shape):
            raise UserError(
                f"{checkpoint}: tensor {name} has shape {tuple(meta.size)}, the config implies "
                f"{tuple(tensor.shape)}"
            )
