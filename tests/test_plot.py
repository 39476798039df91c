"""`tinyllama plot`: the curves drawn are the data in metrics.jsonl, several runs share axes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tinyllama_cli.cli import app
from tinyllama_cli.errors import UserError
from tinyllama_cli.plot import build_figure, labels_for, plot_runs, run_series


def write_metrics(run, *, steps=20, lr=3e-4, rate=1000.0, batch_tokens=512, offset=0.0):
    run.mkdir(parents=True)
    lines = []
    for step in range(1, steps + 1):
        lines.append(
            {
                "step": step,
                "loss": 8.0 / step + offset,
                "lr": lr * min(1.0, step / 5),
                "grad_norm": 1.0,
                "tokens_seen": step * batch_tokens,
                "tokens_per_sec": rate + step,
                "mfu": 0.1,
                "elapsed_s": step * 0.5,
            }
        )
        if step % 10 == 0:
            lines.append(
                {"step": step, "val_loss": 9.0 / step + offset, "tokens_seen": step * batch_tokens}
            )
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return run


def test_series_are_the_metrics(tmp_path):
    run = write_metrics(tmp_path / "a")
    s = run_series(run)
    assert s.label == "a"
    assert s.curves["loss"] == (list(range(1, 21)), [8.0 / k for k in range(1, 21)])
    assert s.curves["val_loss"] == ([10, 20], [0.9, 0.45])
    assert s.curves["lr"][1][:6] == pytest.approx([3e-4 * min(1.0, k / 5) for k in range(1, 7)])
    assert s.curves["tokens_per_sec"][1][-1] == 1020.0
    by_tokens = run_series(run, x="tokens")
    assert by_tokens.curves["loss"][0] == [512.0 * k for k in range(1, 21)]
    assert by_tokens.curves["val_loss"][0] == [5120.0, 10240.0]


def test_figure_draws_exactly_the_series_of_every_run(tmp_path):
    runs = [
        run_series(write_metrics(tmp_path / "a")),
        run_series(write_metrics(tmp_path / "b", lr=1e-3, rate=2000.0, offset=0.5)),
    ]
    fig = build_figure(runs)
    loss_ax, lr_ax, tps_ax = fig.axes
    for ax, metrics in (
        (loss_ax, ["loss", "val_loss"]),
        (lr_ax, ["lr"]),
        (tps_ax, ["tokens_per_sec"]),
    ):
        drawn = {line.get_label(): line.get_xydata().tolist() for line in ax.lines}
        expected = {}
        for run in runs:
            for metric in metrics:
                name = {"loss": f"{run.label} (train)", "val_loss": f"{run.label} (val)"}.get(
                    metric, run.label
                )
                xs, ys = run.curves[metric]
                expected[name] = [[x, y] for x, y in zip(xs, ys)]
        assert drawn == expected
        assert [t.get_text() for t in ax.get_legend().get_texts()] == list(expected)


def test_png_is_written(tmp_path):
    import matplotlib.image

    a, b = write_metrics(tmp_path / "run-a"), write_metrics(tmp_path / "run-b", offset=1.0)
    out = tmp_path / "curves.png"
    runs = plot_runs([a, b], out)
    assert [r.label for r in runs] == ["run-a", "run-b"]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(out)
    assert image.shape[0] > 500 and image.shape[1] > 500
    assert not list(tmp_path.glob(".*.tmp"))


def test_same_names_are_told_apart_by_path(tmp_path):
    a, b = tmp_path / "x" / "run", tmp_path / "y" / "run"
    assert labels_for([a, b]) == [str(a), str(b)]
    assert labels_for([a, tmp_path / "z"]) == ["run", "z"]


def test_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no metrics.jsonl"):
        plot_runs([tmp_path / "empty"], tmp_path / "o.png")
    run = write_metrics(tmp_path / "a")
    with pytest.raises(UserError, match=r"\.png"):
        plot_runs([run], tmp_path / "o.jpg")
    (tmp_path / "o.png").write_bytes(b"mine")
    with pytest.raises(UserError, match="--overwrite"):
        plot_runs([run], tmp_path / "o.png")
    assert (tmp_path / "o.png").read_bytes() == b"mine"
    plot_runs([run], tmp_path / "o.png", overwrite=True)
    assert (tmp_path / "o.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(UserError, match="unknown x axis"):
        run_series(run, x="time")
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "metrics.jsonl").write_text('{"hello": 1}\n')
    with pytest.raises(UserError, match="no step"):
        run_series(tmp_path / "odd")


def test_cli(tmp_path):
    a, b = write_metrics(tmp_path / "a"), write_metrics(tmp_path / "b")
    out = tmp_path / "c.png"
    result = CliRunner().invoke(app, ["plot", str(a), str(b), "--out", str(out), "--x", "tokens"])
    assert result.exit_code == 0, result.output
    assert out.is_file() and "2 run(s)" in result.output
    (tmp_path / "nometrics").mkdir()
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "tinyllama_cli",
            "plot",
            str(tmp_path / "nometrics"),
            "--out",
            str(tmp_path / "d.png"),
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert "no metrics.jsonl" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "d.png").exists()


def test_downstream_scores_get_their_own_panel_per_run_and_task(tmp_path):
    run = write_metrics(tmp_path / "a")
    with open(run / "metrics.jsonl", "a") as f:
        f.writelines(
            json.dumps(
                {
                    "step": step,
                    "eval/piqa/acc_norm": step / 100,
                    "eval/arc_easy/acc_norm": step / 50,
                    "tokens_seen": step * 512,
                }
            )
            + "\n"
            for step in (10, 20)
        )
    s = run_series(run)
    assert s.curves["eval/piqa/acc_norm"] == ([10, 20], [0.1, 0.2])
    assert s.curves["loss"][0] == list(range(1, 21))  # the score records are not training steps
    fig = build_figure([s, run_series(write_metrics(tmp_path / "b"))])
    assert len(fig.axes) == 4
    drawn = {line.get_label(): line.get_xydata().tolist() for line in fig.axes[3].lines}
    assert drawn == {
        "a arc_easy/acc_norm": [[10, 0.2], [20, 0.4]],
        "a piqa/acc_norm": [[10, 0.1], [20, 0.2]],
    }
    assert len(build_figure([run_series(write_metrics(tmp_path / "c"))]).axes) == 3
