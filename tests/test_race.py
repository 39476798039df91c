"""benchmarks/race.py's own logic: the peers' token windows are tinyllama's, and the race's
time-to-target reading of a curve."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from tests.train.tokendata import make_tokenizer, write_token_data
from tinyllama_cli.data.dataset import Manifest, TokenStream

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
race = pytest.importorskip("race")


def test_the_peers_windows_are_the_trainers_windows_each_once(tmp_path):
    """litgpt and the Trainer read `race.Windows`: every seq_len + 1 window tinyllama's trainer
    cuts from each source's train stream (shards crossed), each exactly once, in a seeded order."""
    tok = make_tokenizer(tmp_path / "tok.model")
    data = write_token_data(
        tmp_path / "data", tok, {"a": {"train": 9000, "val": 600}, "b": {"train": 5000}}
    )
    seq = 64
    windows = race.Windows(str(data), seq, seed=3)
    got = sorted(tuple(windows.window(i).tolist()) for i in range(len(windows)))
    manifest, want = Manifest.load(data), []
    for name in ("a", "b"):
        stream = TokenStream(manifest, name, "train")
        want += [tuple(stream.read(w * seq, seq + 1)) for w in range(stream.num_windows(seq))]
    assert got == sorted(want)
    again = race.Windows(str(data), seq, seed=3)
    other = race.Windows(str(data), seq, seed=4)
    assert np.array_equal(windows.index, again.index)
    assert not np.array_equal(windows.index, other.index)


def test_time_to_target_is_the_first_checkpoint_at_or_below_it():
    points = [
        {"step": 10, "s": 30.0, "loss": 7.0},
        {"step": 20, "s": 40.0, "loss": 6.0},
        {"step": 30, "s": 50.0, "loss": 6.1},
        {"step": 40, "s": 60.0, "loss": 5.5},
    ]
    run = {"tool": "t", "repeat": 0, "start": 0.0, "end": 65.0, "points": points}
    row = race.summarise(run, 6.0, tokens_per_step=100)
    assert (row["target_s"], row["target_step"], row["target_tokens"]) == (40.0, 20, 2000)
    # 1 s per step after 20 s of start-up: 100 tokens per second.
    assert row["startup_s"] == pytest.approx(20.0)
    assert row["tok_s"] == pytest.approx(100.0)
    assert "target_s" not in race.summarise(run, 5.0, tokens_per_step=100)
