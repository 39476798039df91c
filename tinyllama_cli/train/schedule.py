"""The learning rate as a pure function of the step: cosine (TinyLlama's), WSD, or constant.

    cosine    linear warmup to --lr, cosine to --min-lr at --max-steps (the recipe; its length
              is fixed in advance)
    wsd       warmup-stable-decay: warmup, --lr held flat, then the last D steps decay to
              --min-lr in --decay-shape (D = --decay-steps, or --decay-fraction x --max-steps)
    constant  warmup, then --lr for ever

WSD is the schedule that lets a run be lengthened after the fact: until the decay starts, the lr
does not depend on --max-steps, so `resume --max-steps` only moves the decay later and every
finished step keeps its lr (Hägele et al. 2024, "Scaling Laws and Compute-Optimal Training
Beyond Fixed Training Durations"; MiniCPM). `tinyllama anneal` branches a run into a short decay
that starts from the parent's lr at the branch step (`decay_start_lr`). The decay's last step is
at --min-lr exactly, so an annealed model is the one trained at the end of the decay.

No torch: `setup` checks and reports schedules before any worker starts, and there is no
scheduler state to checkpoint, so resuming cannot shift the schedule.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from tinyllama_cli.config import (
    DECAY_SHAPE_NAMES,
    DEFAULT_DECAY_FRACTION,
    DEFAULT_DECAY_SHAPE,
    Schedule,
)
from tinyllama_cli.errors import UserError

# Each decay shape (`config.DECAY_SHAPE_NAMES`): progress p in (0, 1] -> the fraction of
# (start - min_lr) still left.
DECAY_SHAPES: dict[str, Callable[[float], float]] = {
    "linear": lambda p: 1.0 - p,
    "cosine": lambda p: 0.5 * (1.0 + math.cos(math.pi * p)),
    "1-sqrt": lambda p: 1.0 - math.sqrt(p),
}
assert tuple(DECAY_SHAPES) == DECAY_SHAPE_NAMES


def decay_steps(schedule: Schedule, max_steps: int) -> int:
    """WSD: how many steps the decay takes (--decay-steps, else the fraction of --max-steps,
    at least one step)."""
    if schedule.decay_steps is not None:
        return schedule.decay_steps
    fraction = schedule.decay_fraction
    return max(1, round((DEFAULT_DECAY_FRACTION if fraction is None else fraction) * max_steps))


def decay_start(schedule: Schedule, max_steps: int) -> int:
    """WSD: the first step of the decay (0-based)."""
    return max_steps - decay_steps(schedule, max_steps)


def lr_at(step: int, schedule: Schedule, max_steps: int) -> float:
    """Learning rate of optimizer step `step` (0-based) in a schedule of `max_steps` steps."""
    s = schedule
    kind = s.lr_schedule
    if kind == "wsd" and step >= decay_start(s, max_steps):
        return _decayed(step, s, max_steps)
    if step < s.warmup_steps:
        return s.lr * (step + 1) / s.warmup_steps
    if kind in ("constant", "wsd"):
        return s.lr
    if step >= max_steps:
        return s.min_lr
    progress = (step - s.warmup_steps) / max(1, max_steps - s.warmup_steps)
    return s.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (s.lr - s.min_lr)


def _decayed(step: int, s: Schedule, max_steps: int) -> float:
    """WSD's decay: from `decay_start_lr` (default --lr) to --min-lr, reached at the last step."""
    length = decay_steps(s, max_steps)
    progress = min(1.0, (step - (max_steps - length) + 1) / length)
    start = s.lr if s.decay_start_lr is None else s.decay_start_lr
    return s.min_lr + (start - s.min_lr) * DECAY_SHAPES[s.decay_shape or DEFAULT_DECAY_SHAPE](
        progress
    )


def check_schedule(schedule: Schedule, max_steps: int) -> None:
    """The flags that only WSD reads, and a decay that fits in the run; one line each."""
    s = schedule
    wsd_only = [
        flag
        for flag, value in (
            ("--decay-steps", s.decay_steps),
            ("--decay-fraction", s.decay_fraction),
            ("--decay-shape", s.decay_shape),
            ("--decay-start-lr", s.decay_start_lr),
        )
        if value is not None
    ]
    if s.lr_schedule != "wsd":
        if wsd_only:
            raise UserError(
                f"{', '.join(wsd_only)} set the decay of --lr-schedule wsd, not of "
                f"{s.lr_schedule}; add --lr-schedule wsd or drop them"
            )
        return
    if s.decay_steps is not None and s.decay_fraction is not None:
        raise UserError(
            "give the WSD decay's length once: --decay-steps N or --decay-fraction F, not both"
        )
    if s.decay_fraction is not None and not 0 < s.decay_fraction <= 1:
        raise UserError(f"--decay-fraction must be in (0, 1] (got {s.decay_fraction})")
    if s.decay_steps is not None and not 1 <= s.decay_steps <= max_steps:
        raise UserError(
            f"--decay-steps must be between 1 and --max-steps {max_steps} (got {s.decay_steps})"
        )
    start = decay_start(s, max_steps)
    if s.decay_start_lr is None and start < s.warmup_steps:  # (a branch decays from its own lr)
        raise UserError(
            f"the WSD decay would begin at step {start}, inside the {s.warmup_steps} warmup steps "
            "(the lr would jump up mid-warmup); lower --warmup-steps or shorten the decay"
        )


def describe_change(
    step: int, old: Schedule, old_steps: int, new: Schedule, new_steps: int
) -> str | None:
    """What a resume does to the lr at the step it continues from; None when nothing changes
    there (WSD lengthened in its stable phase: every finished and next step keeps its lr)."""
    before, after = lr_at(step, old, old_steps), lr_at(step, new, new_steps)
    if math.isclose(before, after, rel_tol=1e-12):
        return None
    why = {
        "cosine": "re-stretches the cosine from here",
        "wsd": "moves the WSD decay, which had already begun",
    }.get(new.lr_schedule if new.lr_schedule == old.lr_schedule else "", "changes the schedule")
    return (
        f"the schedule changes at step {step}: lr {before:.3e} -> {after:.3e} (--max-steps "
        f"{old_steps} -> {new_steps} {why}; steps up to {step} are unchanged)"
    )
