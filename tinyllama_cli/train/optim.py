"""AdamW and TinyLlama's learning-rate schedule (linear warmup, cosine decay to min_lr).

The learning rate is a pure function of the step, set on the optimizer before every step, so
the schedule has no state of its own to checkpoint and resuming cannot shift it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from tinyllama_cli.config import Optimizer, Schedule


def build_optimizer(model: nn.Module, cfg: Optimizer, schedule: Schedule,
                    device: torch.device) -> torch.optim.AdamW:
    """AdamW over every parameter, as TinyLlama does (weight decay on all of them), fp32 state;
    its lr is the schedule's peak until `set_lr` sets the step's.

    Fused on CUDA (one kernel for the whole update); the default implementation on CPU.
    """
    return torch.optim.AdamW(
        model.parameters(), lr=schedule.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps,
        weight_decay=cfg.weight_decay, fused=device.type == "cuda" or None,
    )


def lr_at(step: int, schedule: Schedule, max_steps: int) -> float:
    """Learning rate of optimizer step `step` (0-based): warmup to lr, cosine to min_lr, then
    flat. `max_steps` is the schedule's length (a resume compares two)."""
    s = schedule
    if step < s.warmup_steps:
        return s.lr * (step + 1) / s.warmup_steps
    if step >= max_steps:
        return s.min_lr
    progress = (step - s.warmup_steps) / max(1, max_steps - s.warmup_steps)
    return s.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (s.lr - s.min_lr)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
