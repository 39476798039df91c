"""Running tasks (units, tokenizer-sample reads): in this process for one worker (or one task),
else in a pool of spawned processes that report progress through a queue and give up together
when one fails.

A task function runs as `fn(task, report)` here and as `fn(task)` in a worker, where it reports
through `worker_report` (the queue) and stops at its next report once another task has failed.
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_mod
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

Report = Callable[[int, int, int], None]  # (documents, tokens, bytes read) since the last call

# A worker process's link to the main process, set by `init_worker`.
_QUEUE = None
_STOP = None


class Stopped(Exception):
    """Raised in a worker when the main process has asked everyone to stop (another failed)."""


def init_worker(queue, stop) -> None:
    global _QUEUE, _STOP
    _QUEUE, _STOP = queue, stop


def worker_report(documents: int, tokens: int, nbytes: int) -> None:
    """A worker's progress, sent to the main process; raises `Stopped` once it has given up."""
    if _STOP is not None and _STOP.is_set():
        raise Stopped
    if _QUEUE is not None:
        _QUEUE.put((documents, tokens, nbytes))


def run_tasks(
    fn: Callable[..., Any],
    tasks: Sequence,
    workers: int,
    report: Report,
    sizes: Sequence[int] | None = None,
) -> list:
    """`fn` of every task, in the order of `tasks` whatever order they finished in. With `sizes`,
    the largest tasks start first, which keeps the workers busy to the end."""
    if workers == 1 or len(tasks) <= 1:
        return [fn(t, report) for t in tasks]
    ctx = mp.get_context("spawn")  # no fork: the parent may hold threads (rich's refresher)
    q, stop = ctx.Queue(), ctx.Event()
    results: dict[int, Any] = {}
    order = sorted(range(len(tasks)), key=lambda i: -sizes[i]) if sizes else range(len(tasks))
    with ProcessPoolExecutor(
        min(workers, len(tasks)), mp_context=ctx, initializer=init_worker, initargs=(q, stop)
    ) as pool:
        futures = {pool.submit(fn, tasks[i]): i for i in order}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                _drain(q, report)
                for f in done:
                    results[futures[f]] = f.result()
        except BaseException:
            stop.set()  # running workers give up at their next report instead of finishing
            for f in pending:
                f.cancel()
            raise
    _drain(q, report)  # after the workers exited, so their last reports have arrived
    return [results[i] for i in range(len(tasks))]


def _drain(q: mp.Queue, report: Report) -> None:
    while True:
        try:
            report(*q.get_nowait())
        except queue_mod.Empty:
            return
