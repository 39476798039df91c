"""Downstream eval inside training: lm-eval tasks scored on the live (sharded) model.

`LiveTasks` resolves the tasks and loads their data once, when training starts (a bad name or
file fails before step 1, as one line), and `score` runs them at a step on every worker through
`ShardedLM`: the same task objects, few-shot, limit and seed each time, lm-eval's own metrics.
The numbers equal `tinyllama eval` on that step's checkpoint (fp32, the same batch size): the
batches are NativeLM's, only divided between the workers. Generation tasks are refused: a
worker's decoding length depends on its text, and FSDP needs every worker in every forward.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from tinyllama_cli.errors import UserError
from tinyllama_cli.eval.harness import quiet_lm_eval, run_tasks
from tinyllama_cli.eval.offline import decide_offline, offline_mode
from tinyllama_cli.eval.results import EvalResult
from tinyllama_cli.eval.tasks import (
    expand_tasks,
    leaf_tasks,
    load_tasks,
    parse_datasets,
    prepare_tasks,
)

BATCH_SIZE = 16  # `tinyllama eval`'s default: the same batches, so the same numbers


class LiveTasks:
    """The tasks of `--eval-tasks`, built once; `score` them on a model at any step."""

    def __init__(
        self,
        tasks: str,
        datasets: str | None = None,
        fewshot: int | None = None,
        limit: int | None = None,
        seed: int = 1234,
    ):
        if limit is not None and limit < 1:
            raise UserError(f"--eval-limit must be at least 1 document per task (got {limit})")
        if fewshot is not None and fewshot < 0:
            raise UserError(f"--eval-fewshot must be >= 0 (got {fewshot})")
        self.names = expand_tasks(tasks)
        self.local = parse_datasets([d for d in (datasets or "").split(",") if d.strip()])
        self.options = {
            "num_fewshot": fewshot,
            "limit": limit,
            "seed": seed,
            "bootstrap_iters": 100000,
        }
        self.offline = decide_offline(self.names, self.local)
        self._dir = tempfile.TemporaryDirectory(prefix="tinyllama-live-eval-")
        workdir = Path(self._dir.name)
        with quiet_lm_eval(False), offline_mode(self.offline):
            self.manager, setup = prepare_tasks(self.names, self.local, None, workdir)
            self.tasks = load_tasks(self.manager, setup)
        generating = [
            t.task_name
            for t in leaf_tasks(self.tasks)
            if getattr(t, "OUTPUT_TYPE", None) == "generate_until"
        ]
        if generating:
            self.close()
            raise UserError(
                f"--eval-tasks {', '.join(generating)} generate text, which training "
                "does not score (workers would decode different lengths); score it "
                "with `tinyllama eval` on a checkpoint"
            )

    def score(
        self,
        model: Any,
        tokenizer: Any,
        rank: int = 0,
        world_size: int = 1,
        autocast: Callable[[], Any] = nullcontext,
    ) -> EvalResult:
        """Every task on `model` (plain, or FSDP2-sharded over `world_size` workers: all of them
        call this); the model is left in training mode."""
        from tinyllama_cli.eval.sharded_lm import ShardedLM

        sharded = hasattr(model, "unshard")  # an FSDP2 root: gather its own weights for the call
        if sharded:
            model.unshard()
        try:
            lm = ShardedLM(
                model, tokenizer, rank, world_size, batch_size=BATCH_SIZE, seed=self.options["seed"]
            )
            with (
                quiet_lm_eval(False),
                offline_mode(self.offline),
                single_process(),
                own_random_state(),
                autocast(),
            ):
                return run_tasks(lm, self.tasks, self.manager, log_samples=False, **self.options)
        finally:
            if sharded:
                model.reshard()
            model.train()

    def close(self) -> None:
        self._dir.cleanup()


@contextmanager
def own_random_state() -> Iterator[None]:
    """lm-eval seeds Python's, NumPy's and torch's global generators; inside training they are
    the run's, so the scoring leaves them as it found them (a run with --eval-tasks draws the
    same numbers afterwards as one without)."""
    import random

    import numpy as np
    import torch

    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        cuda = [torch.cuda.current_device()] if torch.cuda.is_initialized() else []
        with torch.random.fork_rng(devices=cuda):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


@contextmanager
def single_process() -> Iterator[None]:
    """lm-eval returns its results only where LOCAL_RANK is 0 (torchrun's variable), for tensor
    parallel runs; each worker here runs a whole single-process eval, so for the call it is 0."""
    saved = os.environ.get("LOCAL_RANK")
    os.environ["LOCAL_RANK"] = "0"
    try:
        yield
    finally:
        if saved is None:
            del os.environ["LOCAL_RANK"]
        else:
            os.environ["LOCAL_RANK"] = saved


def check_live_tasks(
    tasks: str | None,
    datasets: str | None,
    fewshot: int | None,
    limit: int | None,
    every: int | None,
) -> None:
    """Refuse at set-up what would fail in the loop: unknown tasks, unreadable data, bad counts."""
    if tasks is None:
        if datasets is not None:
            raise UserError("--eval-dataset gives data to --eval-tasks; add --eval-tasks")
        return
    if every is not None and every < 1:
        raise UserError(f"--eval-tasks-every must be at least 1 (got {every})")
    LiveTasks(tasks, datasets, fewshot, limit).close()
