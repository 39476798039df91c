"""Running the units: in this process for one worker (or one unit), else in a pool of spawned
processes that report progress through a queue and give up together when one fails."""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_mod
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from tinyllama_cli.data.prepare.units import Report, UnitTask, init_worker, process_unit


def run_units(tasks: list[UnitTask], workers: int, report: Report) -> list[dict]:
    """The counts of every task, in the order of `tasks` whatever order they finished in."""
    if workers == 1 or len(tasks) <= 1:
        return [process_unit(t, report) for t in tasks]
    ctx = mp.get_context("spawn")  # no fork: the parent may hold threads (rich's refresher)
    q, stop = ctx.Queue(), ctx.Event()
    results: dict[int, dict] = {}
    with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=ctx, initializer=init_worker,
                             initargs=(q, stop)) as pool:
        # Largest files first keeps the workers busy to the end; the outputs' order is fixed later.
        order = sorted(range(len(tasks)), key=lambda i: -tasks[i].unit.size)
        futures = {pool.submit(process_unit, tasks[i]): i for i in order}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                _drain(q, report)
                for f in done:
                    results[futures[f]] = f.result()
        except BaseException:
            stop.set()  # running workers give up at their next batch instead of finishing files
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
