"""lm-eval's `simple_evaluate` on tasks already built, without its process-wide side effects.

lm-eval logs at INFO, shows `datasets`' progress bars, records the working directory's git
commit with git's stderr on ours (outside a checkout every eval printed "fatal: not a git
repository") and runs torch's environment report (pip and other subprocesses, 1.3-8 s) on every
call, where a run of the unigram baseline or of a checkpoint series makes several. Each
adjustment here lasts only for the duration of the call and restores what it changed, so a
Python caller's own logging and lm-eval's other users are left alone.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

from tinyllama_cli.eval.results import EvalResult, eval_result


def run_tasks(
    lm: Any,
    task_objects: list[Any],
    manager: Any,
    *,
    num_fewshot: int | None,
    limit: float | None,
    seed: int,
    log_samples: bool,
    bootstrap_iters: int,
) -> EvalResult:
    """lm_eval.simple_evaluate on already-built tasks; the table's numbers picked out."""
    import lm_eval

    start = time.perf_counter()
    with _quiet_git_hash(), _env_info_once():
        results = lm_eval.simple_evaluate(
            model=lm,
            tasks=task_objects,
            num_fewshot=num_fewshot,
            limit=limit,
            task_manager=manager,
            log_samples=log_samples,
            bootstrap_iters=bootstrap_iters,
            random_seed=seed,
            numpy_random_seed=seed,
            torch_random_seed=seed,
            fewshot_random_seed=seed,
        )
    return eval_result(results, task_objects, time.perf_counter() - start)


@contextlib.contextmanager
def quiet_lm_eval(verbose: bool) -> Iterator[None]:
    """lm-eval's INFO/WARNING logs and datasets' progress bars off unless --verbose; lm-eval's
    evaluation progress bars stay (they go to stderr)."""
    import datasets

    loggers = [logging.getLogger(n) for n in ("lm_eval", "lm-eval", "datasets", "transformers")]
    levels = [lg.level for lg in loggers]
    bars = datasets.is_progress_bar_enabled()
    if not verbose:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
        if bars:
            datasets.enable_progress_bars()


@contextlib.contextmanager
def _quiet_git_hash() -> Iterator[None]:
    """lm-eval records `git describe --always` of the working directory in its results, with
    git's stderr left on ours: outside a git checkout every eval printed "fatal: not a git
    repository". The same lookup with git's stderr discarded, for the duration of the block."""
    from lm_eval import evaluator
    from lm_eval.loggers.utils import get_commit_from_path

    def quiet_git_commit_hash() -> str | None:
        try:
            out = subprocess.check_output(
                ["git", "describe", "--always"], stderr=subprocess.DEVNULL
            )
            return out.strip().decode()
        except (subprocess.CalledProcessError, FileNotFoundError):
            return get_commit_from_path(os.getcwd())

    original = evaluator.get_git_commit_hash
    evaluator.get_git_commit_hash = quiet_git_commit_hash
    try:
        yield
    finally:
        evaluator.get_git_commit_hash = original


@contextlib.contextmanager
def _env_info_once() -> Iterator[None]:
    """lm-eval's `add_env_info` records torch's `get_pretty_env_info()` in every results dict,
    and that report runs pip, conda, nvidia-smi and more in subprocesses (1.3 s on a quiet
    machine, up to 8 s on a busy one). For the duration of the block torch's function answers
    from a per-process cache (`add_env_info` imports it from torch on every call); the rest of
    what `add_env_info` records (versions, the parent directory's git hash) is still looked up
    each time, so the results hold exactly what lm-eval writes."""
    from torch.utils import collect_env

    original = collect_env.get_pretty_env_info
    collect_env.get_pretty_env_info = functools.partial(_pretty_env_info, original)
    try:
        yield
    finally:
        collect_env.get_pretty_env_info = original


@functools.cache
def _pretty_env_info(get_pretty_env_info: Callable[[], str]) -> str:
    """What `get_pretty_env_info()` returned the first time this process called it (an error is
    not cached: lm-eval records its message, as it would have)."""
    return get_pretty_env_info()
