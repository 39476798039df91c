"""AdamW, and setting the step's learning rate on it.

The learning rate is a pure function of the step (`schedule.lr_at`), set on the optimizer
before every step, so the schedule has no state of its own to checkpoint and resuming cannot
shift it.
"""

from __future__ import annotations

import torch
from torch import nn

from tinyllama_cli.config import Optimizer, Schedule


def build_optimizer(
    model: nn.Module, cfg: Optimizer, schedule: Schedule, device: torch.device
) -> torch.optim.AdamW:
    """AdamW over every parameter, as TinyLlama does (weight decay on all of them), fp32 state;
    its lr is the schedule's peak until `set_lr` sets the step's.

    Fused on every device: one kernel for the whole update. On CPU torch's default is a Python
    loop of per-parameter ops, which `benchmarks/bench_optimizer.py` measured 6.5x slower than
    the fused kernel on the cpu-bench model (see benchmarks/README.md).
    """
    return torch.optim.AdamW(
        model.parameters(),
        lr=schedule.lr,
        betas=(cfg.beta1, cfg.beta2),
        eps=cfg.eps,
        weight_decay=cfg.weight_decay,
        fused=True,
    )


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
