"""Sharded checkpoints with torch.distributed.checkpoint (DCP), written atomically.

    RUN_DIR/checkpoints/step-NNNNNNNN/   .metadata + __R_0.distcp per worker: {"model", "optim"}
                                         + state.json (step, tokens/samples seen, data
                                         fingerprint, model config, RNG state)

Every worker writes its own shard into `step-NNNNNNNN.tmp/`; rank 0 writes state.json last and
renames the directory, so a crash at any moment leaves either no new checkpoint or a complete
one, and `load.list_checkpoints` (which needs .metadata and state.json, and orders by step
number) never sees a partial one. DCP reshards on load, so a run saved by 2 workers resumes on
1 or 4.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

from tinyllama_cli.load import list_checkpoints
from tinyllama_cli.train.distributed import World


def _quiet(func, *args, **kwargs):
    """DCP warns that it assumes a single process when no group exists: one worker, as intended."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*single process.*")
        return func(*args, **kwargs)


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"step-{step:08d}"


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


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def save(run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
         state: dict[str, Any], world: World, keep_last: int) -> Path:
    """Write checkpoint `state["step"]` (a collective: every worker calls it)."""
    final = checkpoint_dir(run_dir, state["step"])
    tmp = final.with_name(final.name + ".tmp")
    if world.is_main:
        if tmp.exists():
            shutil.rmtree(tmp)  # left by a crash during an earlier save
        tmp.mkdir(parents=True)
    _barrier(world)
    model_sd, optim_sd = get_state_dict(model, optimizer)
    _quiet(dcp.save, {"model": model_sd, "optim": optim_sd}, checkpoint_id=str(tmp))
    _barrier(world)  # every shard is on disk
    if world.is_main:
        _write_json(tmp / "state.json", {**state, "rng": rng_state()})
        if final.exists():  # the same step saved again (e.g. --stop-at-step then the end)
            shutil.rmtree(final)
        tmp.rename(final)
        _fsync_dir(final.parent)
        prune(run_dir, keep_last)
    _barrier(world)
    return final


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def prune(run_dir: Path, keep_last: int) -> None:
    """Delete all but the newest `keep_last` complete checkpoints (0 keeps everything)."""
    if keep_last <= 0:
        return
    for old in list_checkpoints(run_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)


def read_state(checkpoint: Path) -> dict[str, Any]:
    return json.loads((checkpoint / "state.json").read_text())


def load(checkpoint: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore model and optimizer (resharded to this world) and RNG; return state.json."""
    model_sd, optim_sd = get_state_dict(model, optimizer)  # also creates the optimizer's state
    sd = {"model": model_sd, "optim": optim_sd}
    _quiet(dcp.load, sd, checkpoint_id=str(checkpoint))
    set_state_dict(model, optimizer, model_state_dict=sd["model"], optim_state_dict=sd["optim"])
    state = read_state(checkpoint)
    if "rng" in state:
        set_rng_state(state["rng"])
    return state

