"""Sharded checkpoints with torch.distributed.checkpoint (DCP), written atomically.

    RUN_DIR/checkpoints/step-NNNNNNNN/   .metadata + __R_0.distcp per worker: {"model", "optim"}
                                         + state.json (step, tokens/samples seen, data
                                         fingerprint, model config, RNG state)

Every worker writes its own shard into `step-NNNNNNNN.tmp/`; rank 0 writes state.json last and
renames the directory, so a crash at any moment leaves either no new checkpoint or a complete
one, and `rundir.list_checkpoints` (which needs .metadata and state.json, and orders by step
number) never sees a partial one. DCP reshards on load, so a run saved by 2 workers resumes on
1 or 4. Every name and path, and state.json itself, is `rundir`'s; this module is the torch side.
"""

from __future__ import annotations

import base64
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

from tinyllama_cli import files, rundir
from tinyllama_cli.formats import dcp as safe_dcp
from tinyllama_cli.train.distributed import World


def _quiet(func, *args, **kwargs):
    """DCP warns that it assumes a single process when no group exists: one worker, as intended."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*single process.*")
        return func(*args, **kwargs)


def _barrier(world: World) -> None:
    if world.world_size > 1:
        dist.barrier()


def rng_state() -> dict[str, str]:
    state = {"torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = base64.b64encode(torch.cuda.get_rng_state().numpy().tobytes()).decode()
    return state


def set_rng_state(state: dict[str, str]) -> None:
    torch.set_rng_state(torch.frombuffer(bytearray(base64.b64decode(state["torch"])), dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(torch.frombuffer(bytearray(base64.b64decode(state["cuda"])), dtype=torch.uint8))


def save(run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
         state: dict[str, Any], world: World, keep_last: int) -> Path:
    """Write checkpoint `state["step"]` (a collective: every worker calls it)."""
    final = rundir.checkpoint_dir(run_dir, state["step"])
    tmp = rundir.in_progress_dir(final)
    if world.is_main:
        files.remove(tmp)  # left by a crash during an earlier save
        tmp.mkdir(parents=True)
    _barrier(world)
    model_sd, optim_sd = get_state_dict(model, optimizer)
    _quiet(dcp.save, {"model": model_sd, "optim": optim_sd}, checkpoint_id=str(tmp))
    _barrier(world)  # every shard is on disk
    if world.is_main:
        rundir.write_state(tmp, {**state, "rng": rng_state()}, fsync=True)
        files.publish(tmp, final)  # over the same step saved before (--stop-at-step, then the end)
        files.fsync_dir(final.parent)
        rundir.prune_checkpoints(run_dir, keep_last)
    _barrier(world)
    return final


def load(checkpoint: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore model and optimizer (resharded to this world) and RNG; return state.json."""
    model_sd, optim_sd = get_state_dict(model, optimizer)  # also creates the optimizer's state
    sd = {"model": model_sd, "optim": optim_sd}
    safe_dcp.load(sd, checkpoint)  # a downloaded checkpoint runs none of its own code
    set_state_dict(model, optimizer, model_state_dict=sd["model"], optim_state_dict=sd["optim"])
    state = rundir.read_state(checkpoint)
    if "rng" in state:
        set_rng_state(state["rng"])
    return state

