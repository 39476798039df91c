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
import time
import warnings
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
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
    torch.set_rng_state(
        torch.frombuffer(bytearray(base64.b64decode(state["torch"])), dtype=torch.uint8)
    )
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(
            torch.frombuffer(bytearray(base64.b64decode(state["cuda"])), dtype=torch.uint8)
        )


def save(
    run_dir: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    world: World,
    keep_last: int,
) -> Path:
    """Write checkpoint `state["step"]` (a collective: every worker calls it)."""
    final, tmp = _start(run_dir, state["step"], world)
    model_sd, optim_sd = get_state_dict(model, optimizer)
    _quiet(dcp.save, {"model": model_sd, "optim": optim_sd}, checkpoint_id=str(tmp))
    _barrier(world)  # every shard is on disk
    if world.is_main:
        _finish(run_dir, tmp, final, {**state, "rng": rng_state()}, keep_last)
    _barrier(world)
    return final


def _start(run_dir: Path, step: int, world: World) -> tuple[Path, Path]:
    """(final, in-progress) directories of checkpoint `step`; the in-progress one made empty."""
    final = rundir.checkpoint_dir(run_dir, step)
    tmp = rundir.in_progress_dir(final)
    if world.is_main:
        files.remove(tmp)  # left by a crash during an earlier save
        tmp.mkdir(parents=True)
    _barrier(world)
    return final, tmp


def _finish(run_dir: Path, tmp: Path, final: Path, state: dict[str, Any], keep_last: int) -> None:
    """Rank 0, once every shard and DCP's .metadata are on disk: state.json last, then the
    rename that makes the checkpoint exist, then pruning of the oldest."""
    rundir.write_state(tmp, state, fsync=True)
    files.publish(tmp, final)  # over the same step saved before (--stop-at-step, then the end)
    files.fsync_dir(final.parent)
    rundir.prune_checkpoints(run_dir, keep_last)


@dataclass
class _Pending:
    """A checkpoint being written in the background."""

    future: Future
    tmp: Path
    final: Path
    state: dict[str, Any]  # state.json as of the step saved (RNG included)
    started: float
    published: bool = False


def async_save_missing() -> str | None:
    """What `AsyncCheckpointer` needs from DCP that this torch does not have (older releases
    lack the stager API), or None."""
    import inspect

    from torch.distributed.checkpoint import staging

    if not hasattr(staging, "DefaultStager") or not hasattr(staging, "StagingOptions"):
        return "torch.distributed.checkpoint.staging.DefaultStager"
    if "async_stager" not in inspect.signature(dcp.async_save).parameters:
        return "dcp.async_save(async_stager=...)"
    return None


class AsyncCheckpointer:
    """`--async-save`: DCP's async_save copies this worker's shards to host memory and writes them
    in a background thread, so the loop does not wait on the file system.

    The rules of `save` still hold: shards go to the in-progress directory, and only rank 0
    writes state.json and renames it, once its future is done. DCP's coordinator (rank 0)
    finishes only after gathering every worker's write results and writing .metadata, so rank 0's
    future being done means every shard is on disk; a kill -9 before that leaves an in-progress
    directory that resume ignores. The background collectives run on a gloo group of their own,
    so they never interleave with the training's. One save is in flight at a time: the next
    one, and the end of training, wait for it.
    """

    def __init__(
        self, run_dir: Path, world: World, keep_last: int, report: Callable[[str], None]
    ) -> None:
        self.run_dir, self.world, self.keep_last, self.report = run_dir, world, keep_last, report
        self.group = dist.new_group(backend="gloo") if world.world_size > 1 else None
        self.pending: _Pending | None = None
        # One stager for the run: it keeps its host copy of the state between saves, so only the
        # first save allocates (and page-faults) it; pinned on CUDA for fast device-to-host copies.
        from torch.distributed.checkpoint.staging import DefaultStager, StagingOptions

        self.stager = DefaultStager(
            StagingOptions(
                use_pinned_memory=world.device.type == "cuda",
                use_shared_memory=False,
                use_async_staging=False,
                use_non_blocking_copy=False,
            )
        )
        if world.world_size == 1:  # `_quiet` cannot reach the writer's thread: for this process
            warnings.filterwarnings("ignore", message=".*save in a single process.*")

    def save(
        self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]
    ) -> None:
        """Start writing checkpoint `state["step"]` (a collective) and return once it is staged."""
        self.wait()
        final, tmp = _start(self.run_dir, state["step"], self.world)
        model_sd, optim_sd = get_state_dict(model, optimizer)
        future = _quiet(
            dcp.async_save,
            {"model": model_sd, "optim": optim_sd},
            checkpoint_id=str(tmp),
            process_group=self.group,
            async_stager=self.stager,
            no_dist=self.world.world_size == 1,
        )
        self.pending = _Pending(
            future, tmp, final, {**state, "rng": rng_state()}, time.perf_counter()
        )

    def poll(self) -> None:
        """Publish the checkpoint in flight if it is complete (rank 0; others have nothing to
        do). Called every step: no communication, no waiting."""
        pending = self.pending
        if pending is None or not self.world.is_main or not pending.future.done():
            return
        if pending.future.exception() is None:  # a failed write is raised by `wait`, on every rank
            self._publish()

    def wait(self) -> None:
        """Block until the checkpoint in flight is written and published (a collective)."""
        if self.pending is None:
            return
        self.pending.future.result()  # raises what the background write raised
        if self.world.is_main:
            self._publish()
        self.pending = None
        _barrier(self.world)

    def _publish(self) -> None:
        """Rank 0: state.json and the rename, once per checkpoint."""
        pending = self.pending
        if pending.published:
            return
        pending.future.result()
        _finish(self.run_dir, pending.tmp, pending.final, pending.state, self.keep_last)
        pending.published = True
        seconds = time.perf_counter() - pending.started
        self.report(f"saved {pending.final} (written in the background in {seconds:.1f} s)")


def load(
    checkpoint: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> dict[str, Any]:
    """Restore model and optimizer (resharded to this world) and RNG; return state.json."""
    model_sd, optim_sd = get_state_dict(model, optimizer)  # also creates the optimizer's state
    sd = {"model": model_sd, "optim": optim_sd}
    safe_dcp.load(sd, checkpoint)  # a downloaded checkpoint runs none of its own code
    set_state_dict(model, optimizer, model_state_dict=sd["model"], optim_state_dict=sd["optim"])
    state = rundir.read_state(checkpoint)
    if "rng" in state:
        set_rng_state(state["rng"])
    return state
