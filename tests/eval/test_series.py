"""Checkpoint series: series.json, series.csv and PNGs over every checkpoint; the baseline once."""

from __future__ import annotations

import json

import pytest

from tests.eval.files import dataset_args
from tinyllama_cli.errors import UserError


def test_checkpoint_series_table(env, tmp_path):
    from tinyllama_cli.eval import evaluate_series

    out = tmp_path / "series"
    series = evaluate_series(
        env["run"],
        "arc_e,piqa",
        out_dir=out,
        datasets=dataset_args(env, ["arc_easy", "piqa"]),
        bootstrap_iters=0,
        batch_size=4,
    )
    assert [r.step for r in series.rows] == [10, 20]
    assert [r.tokens_seen for r in series.rows] == [40960, 81920]
    records = json.loads((out / "series.json").read_text())
    assert [r["tokens_seen"] for r in records] == [40960, 81920]
    assert json.loads(json.dumps(series.to_records())) == records  # what --json prints
    per_task = [
        f"{t}/{c}"
        for t in ("arc_easy", "piqa")
        for c in ("acc_norm", "acc_norm_stderr", "chance", "unigram")
    ]
    assert list(records[0]) == [
        "checkpoint",
        "step",
        "tokens_seen",
        *per_task,
        "avg",
        "avg/chance",
        "avg/unigram",
    ]
    assert records[0]["arc_easy/chance"] == 0.25 and records[0]["piqa/chance"] == 0.5
    assert records[0]["arc_easy/unigram"] is None  # the fixture run names no training data
    for rec, row in zip(records, series.rows):
        assert rec["avg"] == pytest.approx((rec["arc_easy/acc_norm"] + rec["piqa/acc_norm"]) / 2)
        assert rec["piqa/acc_norm"] == row.results["results"]["piqa"]["acc_norm,none"]
    csv_lines = (out / "series.csv").read_text().splitlines()
    assert csv_lines[0].startswith("checkpoint,step,tokens_seen") and len(csv_lines) == 3
    for name in ("arc_easy_acc_norm.png", "piqa_acc_norm.png", "avg.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(UserError, match="--overwrite"):
        evaluate_series(env["run"], "piqa", out_dir=out, datasets=dataset_args(env, ["piqa"]))


def test_checkpoint_series_computes_the_baseline_once(unigram_env, tmp_path):
    from tinyllama_cli.eval import evaluate_series

    series = evaluate_series(
        unigram_env["run"], "tiny_mc", out_dir=tmp_path, tasks_dir=unigram_env["tasks"]
    )
    assert series.rows[0].baseline is not None and series.rows[1].baseline is None
    assert series.baseline is series.rows[0].baseline
    records = json.loads((tmp_path / "series.json").read_text())
    for rec in records:
        assert rec["tiny_mc/chance"] == pytest.approx(13 / 36) and rec[
            "avg/chance"
        ] == pytest.approx(13 / 36)
        assert rec["tiny_mc/unigram"] == pytest.approx(1 / 3) and rec[
            "avg/unigram"
        ] == pytest.approx(1 / 3)
        assert rec["tiny_mc/acc_norm_stderr"] > 0 or rec["tiny_mc/acc_norm"] in (0, 1)
    assert (tmp_path / "series.csv").read_text().splitlines()[0].split(",")[3:] == [
        "tiny_mc/acc_norm",
        "tiny_mc/acc_norm_stderr",
        "tiny_mc/chance",
        "tiny_mc/unigram",
        "avg",
        "avg/chance",
        "avg/unigram",
    ]
