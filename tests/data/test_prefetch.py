"""data/prefetch.py: the background reader yields exactly the loop's batches, in order."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from tinyllama_cli.data.dataset import PretrainData
from tinyllama_cli.data.prefetch import Prefetcher, StepSlice, read_step


@pytest.mark.parametrize("rank, world_size", [(0, 1), (1, 2)])
def test_prefetched_steps_equal_direct_reads(token_data, rank, world_size):
    data = PretrainData(token_data, 16, seed=3)
    where = StepSlice(global_batch=8, micro=2, rank=rank, world_size=world_size)
    assert where.accum == 4 // world_size
    prefetch = Prefetcher(data, where, start=5, end=12)
    try:
        for step in range(5, 12):
            got = prefetch.get(step)
            expected = read_step(data, where, step)
            assert len(got) == where.accum
            for (x, y), (ex, ey) in zip(got, expected):
                assert torch.equal(x, ex) and torch.equal(y, ey)
            first = step * 8 + rank * (8 // world_size)
            assert torch.equal(got[0][0], data.batch(first, 2)[0])
    finally:
        prefetch.close()


def test_a_read_error_reaches_the_loop_and_close_does_not_hang(token_data):
    class Broken(PretrainData):
        def batch(self, first, size):
            if first >= 16:
                raise OSError("disk gone")
            return super().batch(first, size)

    data = Broken(token_data, 16, seed=3)
    prefetch = Prefetcher(data, StepSlice(8, 2, 0, 1), start=0, end=100, depth=1)
    prefetch.get(0)
    prefetch.get(1)
    with pytest.raises(OSError, match="disk gone"):
        prefetch.get(2)
    prefetch.close()
    full = Prefetcher(
        PretrainData(token_data, 16, seed=3), StepSlice(8, 2, 0, 1), start=0, end=1000, depth=1
    )
    time.sleep(0.2)  # the thread now blocks on a full queue
    started = time.perf_counter()
    full.close()
    assert time.perf_counter() - started < 2 and not any(
        t.name == "tinyllama-prefetch" and t.is_alive() for t in threading.enumerate()
    )
