"""The lr schedules (`train/schedule.py`): WSD's shape, lengthening it, and the flag checks."""

from __future__ import annotations

import itertools
import math

import pytest

from tinyllama_cli.config import DECAY_SHAPE_NAMES, Schedule, TrainConfig
from tinyllama_cli.errors import UserError
from tinyllama_cli.train.schedule import (
    DECAY_SHAPES,
    check_schedule,
    decay_start,
    decay_steps,
    describe_change,
    lr_at,
)


def wsd(**changes) -> Schedule:
    return TrainConfig.of(
        lr=1e-3, min_lr=1e-4, warmup_steps=10, lr_schedule="wsd", **changes
    ).schedule


def test_wsd_warms_up_holds_then_decays_to_min_lr_at_the_last_step():
    s = wsd(decay_steps=20)
    lrs = [lr_at(step, s, 100) for step in range(100)]
    assert lrs[:10] == pytest.approx([1e-3 * (k + 1) / 10 for k in range(10)])
    assert lrs[9:80] == [1e-3] * 71  # flat until the decay's first step, 80
    assert all(a > b for a, b in itertools.pairwise(lrs[79:]))  # strictly down
    assert lrs[99] == 1e-4 and lr_at(100, s, 100) == 1e-4 and lr_at(500, s, 100) == 1e-4
    # 1-sqrt by default: halfway through the decay (progress 10/20) 1 - sqrt(0.5) of the gap is left
    assert lrs[89] == pytest.approx(1e-4 + (1 - math.sqrt(0.5)) * 9e-4)


@pytest.mark.parametrize(
    "shape, left", [("linear", 0.5), ("cosine", 0.5), ("1-sqrt", 1 - math.sqrt(0.5))]
)
def test_each_decay_shape_at_the_halfway_point(shape, left):
    s = wsd(decay_steps=20, decay_shape=shape)
    assert lr_at(89, s, 100) == pytest.approx(1e-4 + left * 9e-4)
    assert lr_at(99, s, 100) == pytest.approx(1e-4)


def test_the_shapes_are_the_names_configs_accept():
    assert tuple(DECAY_SHAPES) == DECAY_SHAPE_NAMES


def test_decay_fraction_sets_the_length_and_defaults_to_a_fifth():
    assert (
        decay_steps(wsd(decay_fraction=0.1), 1000),
        decay_start(wsd(decay_fraction=0.1), 1000),
    ) == (100, 900)
    assert decay_steps(wsd(), 1000) == 200
    assert decay_steps(wsd(decay_fraction=0.001), 100) == 1  # never zero steps


def test_decay_start_lr_starts_the_decay_below_the_peak():
    s = wsd(decay_steps=4, decay_start_lr=5e-4, decay_shape="linear")
    assert [lr_at(step, s, 20) for step in range(16, 20)] == pytest.approx(
        [1e-4 + 4e-4 * f for f in (0.75, 0.5, 0.25, 0.0)]
    )


def test_lengthening_wsd_keeps_every_step_before_the_old_decay():
    short, long = wsd(decay_steps=20), wsd(decay_steps=20)
    assert [lr_at(k, short, 100) for k in range(80)] == [lr_at(k, long, 400) for k in range(80)]
    assert describe_change(60, short, 100, long, 400) is None
    fraction = wsd(decay_fraction=0.2)  # the decay grows with the run, and still starts later
    assert [lr_at(k, fraction, 100) for k in range(80)] == [
        lr_at(k, fraction, 400) for k in range(80)
    ]
    cosine = TrainConfig.of(lr=1e-3, min_lr=1e-4, warmup_steps=10).schedule  # the contrast
    assert lr_at(60, cosine, 100) != lr_at(60, cosine, 400)
    assert "re-stretches the cosine" in describe_change(60, cosine, 100, cosine, 400)


def test_lengthening_wsd_inside_its_decay_is_reported():
    s = wsd(decay_steps=20)
    assert "moves the WSD decay, which had already begun" in describe_change(90, s, 100, s, 400)


def test_constant_holds_the_peak_after_warmup():
    s = TrainConfig.of(lr=1e-3, min_lr=1e-4, warmup_steps=2, lr_schedule="constant").schedule
    assert [lr_at(k, s, 10) for k in (0, 1, 2, 9, 50)] == [5e-4, 1e-3, 1e-3, 1e-3, 1e-3]


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"decay_steps": 5}, "--decay-steps set the decay of --lr-schedule wsd, not of cosine"),
        ({"lr_schedule": "constant", "decay_shape": "linear"}, "--decay-shape set the decay"),
        ({"lr_schedule": "wsd", "decay_steps": 5, "decay_fraction": 0.1}, "not both"),
        ({"lr_schedule": "wsd", "decay_fraction": 1.5}, "--decay-fraction must be in (0, 1]"),
        (
            {"lr_schedule": "wsd", "decay_steps": 0},
            "--decay-steps must be between 1 and --max-steps 100",
        ),
        ({"lr_schedule": "wsd", "decay_steps": 101}, "--decay-steps must be between 1"),
        (
            {"lr_schedule": "wsd", "warmup_steps": 30, "decay_fraction": 0.8},
            "the WSD decay would begin at step 20, inside the 30 warmup steps",
        ),
    ],
)
def test_bad_schedule_flags_are_one_line_errors(changes, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_schedule(TrainConfig.of(**changes).schedule, 100)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"lr_schedule": "linear"}, "--lr-schedule 'linear' is not one of cosine, wsd, constant"),
        ({"decay_shape": "sqrt"}, "--decay-shape 'sqrt' is not one of linear, cosine, 1-sqrt"),
    ],
)
def test_misspelt_names_fail_when_the_config_is_built(changes, message):
    with pytest.raises(UserError, match=message):
        TrainConfig.of(**changes)
