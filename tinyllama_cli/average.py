"""`tinyllama average`: the uniform average of a run's newest K checkpoints, as a model dir.

Averaging the weights of the last checkpoints of a run at a high lr approximates what a decay
would give, for free (Sanyal et al. 2023, "Early Weight Averaging"; LAWA): a finished-looking
model from a run that is still training. The output is the native model dir that `convert --to
native` writes (`formats.native.save_native`: one step-0 checkpoint, config.yaml with `model:`
and `source:`), so eval, generate, convert and `pretrain --init-from` take it unchanged.

Exactness: the weights are summed in fp64, one checkpoint at a time (only the running sum and
one checkpoint are in memory), divided by K and rounded once to fp32; averaging one checkpoint
gives it back bit for bit. Everything is checked before a weight is read, and the directory
appears only when complete (`files.staged`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from tinyllama_cli import files, rundir
from tinyllama_cli.errors import UserError
from tinyllama_cli.formats.native import read_native_state, save_native
from tinyllama_cli.load import find_tokenizer
from tinyllama_cli.model import empty_model


@dataclass
class AverageResult:
    """What `average` wrote: the checkpoints averaged (step and tokens seen) and where."""

    run_dir: str
    out: str
    steps: list[int]
    tokens_seen: list[int | None]
    params: int
    tokenizer: bool
    seconds: float = 0.0
    source: str = field(default="")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def newest_checkpoints(run_dir: str | Path, last: int) -> list[Path]:
    """The newest `last` complete checkpoints of a run, oldest first; or one line saying why not."""
    run_dir = Path(run_dir)
    if last < 1:
        raise UserError(f"--last must be at least 1 (got {last})")
    if not rundir.checkpoints_root(run_dir).is_dir():
        raise UserError(
            f"{run_dir} is not a run directory (no checkpoints/); pass one written "
            "by `tinyllama pretrain`"
        )
    found = rundir.list_checkpoints(run_dir)
    if len(found) < last:
        raise UserError(
            f"{run_dir} has {len(found)} complete checkpoint(s), fewer than --last "
            f"{last}; lower --last (or keep more with --keep-last)"
        )
    return found[-last:]


def average(run_dir: str | Path, last: int, out: str | Path) -> AverageResult:
    """Average the newest `last` checkpoints of `run_dir` into a model dir at `out`."""
    started = time.perf_counter()
    out = Path(out)
    files.check_new_path(out, overwrite=False)
    checkpoints = newest_checkpoints(run_dir, last)
    config = rundir.checkpoint_model_config(checkpoints[-1])  # a run keeps its model (resume)
    total: dict[str, torch.Tensor] = {}
    for checkpoint in checkpoints:
        try:
            state = read_native_state(checkpoint, config)
        except FileNotFoundError:
            raise UserError(
                f"{checkpoint} was deleted while it was read (the run's training pruned it: "
                "--keep-last); nothing was written; average again"
            ) from None
        for name, tensor in state.items():
            if name in total:
                total[name] += tensor.double()
            else:
                total[name] = tensor.double()
    model = empty_model(config)
    model.load_state_dict({name: (t / last).float() for name, t in total.items()})
    steps = [rundir.checkpoint_step(c) for c in checkpoints]
    source = f"average of {Path(run_dir).resolve()} steps {', '.join(map(str, steps))}"
    tokenizer = find_tokenizer(checkpoints[-1])
    save_native(model, out, tokenizer, source)
    return AverageResult(
        run_dir=str(run_dir),
        out=str(out),
        steps=steps,
        tokens_seen=[rundir.read_state(c).get("tokens_seen") for c in checkpoints],
        params=config.num_params(),
        tokenizer=tokenizer is not None,
        seconds=time.perf_counter() - started,
        source=source,
    )
