"""The coming steps' micro batches, read in a background thread while the current step runs.

The data order is a pure function of the step (`PretrainData.batch`), so a thread can read
ahead without any coordination: step s's micro batches are samples
[s*G + r*G/W + a*micro, ... + micro) for worker r of W and micro batch a. On CUDA the batches
go to pinned memory, so the host-to-device copy is asynchronous (`non_blocking=True` only
overlaps from pinned memory). Reading is `os.pread` and NumPy, which release the GIL for the
I/O; a step of the training loop is PyTorch kernels, which release it too.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass

import torch

from tinyllama_cli.data.dataset import PretrainData

Batches = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class StepSlice:
    """Which samples one worker trains on per step."""

    global_batch: int
    micro: int
    rank: int
    world_size: int

    @property
    def accum(self) -> int:
        return self.global_batch // (self.micro * self.world_size)

    def first(self, step: int) -> int:
        return step * self.global_batch + self.rank * (self.global_batch // self.world_size)


def read_step(data: PretrainData, where: StepSlice, step: int, pin: bool = False) -> Batches:
    """The micro batches (inputs, targets) of `step` for this worker, in order."""
    first = where.first(step)
    batches = [data.batch(first + a * where.micro, where.micro) for a in range(where.accum)]
    if pin:
        batches = [(x.pin_memory(), y.pin_memory()) for x, y in batches]
    return batches


class Prefetcher:
    """Reads steps [start, end) ahead of the loop, at most `depth` steps in advance."""

    def __init__(
        self,
        data: PretrainData,
        where: StepSlice,
        start: int,
        end: int,
        pin: bool = False,
        depth: int = 2,
    ):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._next = start
        self._thread = threading.Thread(
            target=self._run,
            args=(data, where, start, end, pin),
            name="tinyllama-prefetch",
            daemon=True,
        )
        self._thread.start()

    def _run(self, data: PretrainData, where: StepSlice, start: int, end: int, pin: bool) -> None:
        for step in range(start, end):
            try:
                item: object = (step, read_step(data, where, step, pin))
            except Exception as exc:  # noqa: BLE001 (handed to the loop, which re-raises it there)
                item = (step, exc)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if self._stop.is_set() or isinstance(item[1], Exception):
                return

    def get(self, step: int) -> Batches:
        """The batches of `step`, which must be the next one (the loop never skips a step)."""
        got, batches = self._queue.get()
        if got != step or step != self._next:
            raise RuntimeError(f"prefetcher out of order: asked for step {step}, has {got}")
        if isinstance(batches, Exception):
            raise batches
        self._next += 1
        return batches

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
