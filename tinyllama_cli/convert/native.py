"""Write a model as a native model directory: the run-dir layout with one step-0 checkpoint.

    OUT/config.yaml                          {model: ModelConfig fields, source: ...}
    OUT/tokenizer.model                      when the source has one
    OUT/checkpoints/step-00000000/           DCP files holding {"model": Llama.state_dict()}
                                             + state.json (step 0, model_config, source)

It is exactly what `load.load_model` reads from a training run, so eval, generate, convert and
`pretrain --init-from` accept it unchanged. Weights are stored in fp32, the training precision,
so HF -> native -> HF and native -> HF -> native are bit-for-bit.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import torch

from tinyllama_cli.config import dump_yaml
from tinyllama_cli.files import staged
from tinyllama_cli.model import Llama
from tinyllama_cli.tokenizer import Tokenizer

CHECKPOINT_NAME = "step-00000000"


def save_native(model: Llama, out_dir: str | Path, tokenizer: Tokenizer | None = None,
                source: str = "", overwrite: bool = False) -> Path:
    """Write `model` as a native model directory at `out_dir` (staged, then renamed)."""
    out_dir = Path(out_dir)
    with staged(out_dir, overwrite) as tmp:
        write_native(model, tmp, tokenizer, source)
    return out_dir


def write_native(model: Llama, directory: Path, tokenizer: Tokenizer | None = None, source: str = "") -> None:
    """Write the native file set into `directory`, which must not exist yet."""
    import torch.distributed.checkpoint as dcp

    checkpoint = directory / "checkpoints" / CHECKPOINT_NAME
    checkpoint.mkdir(parents=True)
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    with warnings.catch_warnings():  # single-process save: DCP says so, and it is intended
        warnings.filterwarnings("ignore", message=".*(single process|process group).*")
        dcp.save({"model": state}, checkpoint_id=str(checkpoint), no_dist=True)
    config = model.config.to_dict()
    (checkpoint / "state.json").write_text(json.dumps({
        "step": 0, "tokens_seen": 0, "samples_seen": 0, "data_fingerprint": None,
        "model_config": config, "source": source,
    }, indent=2) + "\n")
    dump_yaml({"model": config, "source": source}, directory / "config.yaml")
    if tokenizer is not None:
        shutil.copyfile(tokenizer.path, directory / "tokenizer.model")
