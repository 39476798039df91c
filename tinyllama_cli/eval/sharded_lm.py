"""`ShardedLM`: `NativeLM` over a model whose weights are sharded across training workers.

Every worker builds all of lm-eval's requests (lm-eval is told world size 1, so its few-shot
sampling, document order and metric code run exactly as in a single `tinyllama eval`), cuts them
into the same batches `NativeLM` would, scores batches rank, rank + W, ... and all-gathers the
results, so every worker returns every request's score and lm-eval computes the same numbers on
each. FSDP2 all-gathers a block's weights inside its forward, a collective every worker must
join in the same order, so after its share each worker runs empty one-token forward passes
until it has run as many as the busiest one; every worker computes every worker's count from
the batches (`NativeLM.forward_passes`), without a collective between the passes.

The root module's own weights (embeddings, final norm, output head) are gathered once for the
whole scoring by the caller (`live.py`: `unshard()` / `reshard()`): the adapter calls the trunk
and the head directly, not the root's forward, which is where FSDP2 would do it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist

from tinyllama_cli.eval.native_lm import NativeLM
from tinyllama_cli.eval.tokenization import Request


class ShardedLM(NativeLM):
    """A worker's share of the scoring; `rank` of `world_size` workers (torch.distributed)."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        rank: int,
        world_size: int,
        batch_size: int = 16,
        seed: int = 1234,
    ):
        super().__init__(model, tokenizer, batch_size=batch_size, seed=seed)
        self.shard_rank, self.shard_world = rank, world_size
        self.passes_run = 0

    # In a training log a progress bar per evaluation is noise: the trainer prints one row of
    # scores when they are done.
    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        return super().loglikelihood(requests, disable_tqdm=True)

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        return super().loglikelihood_rolling(requests, disable_tqdm=True)

    def _trunk(self, idx: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        self.passes_run += 1
        return super()._trunk(idx, **kwargs)

    def _score_units(
        self, requests: list[Request], units: list[tuple[str, Any]], progress: Callable[[int], Any]
    ) -> dict[int, tuple[float, bool]]:
        """This worker's units, the padding passes, then everyone's results."""
        if self.shard_world == 1:
            return super()._score_units(requests, units, progress)
        # Every worker knows every unit, so each knows all the workers' counts without asking
        # (a collective here would meet a peer's FSDP all-gather: the order must match).
        counts = [
            sum(self.forward_passes(u) for u in units[r :: self.shard_world])
            for r in range(self.shard_world)
        ]
        start = self.passes_run
        mine = super()._score_units(requests, units[self.shard_rank :: self.shard_world], progress)
        if self.passes_run - start != counts[self.shard_rank]:
            raise RuntimeError(
                f"scored with {self.passes_run - start} forward passes, expected "
                f"{counts[self.shard_rank]}: NativeLM.forward_passes is out of date"
            )
        self.pad_forward_passes(max(counts) - counts[self.shard_rank])
        gathered: list[Any] = [None] * self.shard_world
        dist.all_gather_object(gathered, mine)
        return {i: value for part in gathered for i, value in part.items()}

    @torch.no_grad()
    def pad_forward_passes(self, n: int) -> None:
        """`n` one-token forward passes whose output is discarded (they join the collectives)."""
        for _ in range(n):
            self._trunk(torch.zeros((1, 1), dtype=torch.long, device=self.device))

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        raise NotImplementedError(
            "in-training eval scores log-likelihoods; a worker's decoding "
            "length would differ from another's"
        )
