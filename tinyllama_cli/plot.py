"""Training curves as a PNG: `tinyllama plot RUN_DIR [RUN_DIR ...] --out FILE.png`.

Three panels share the x axis (optimizer step or tokens seen): loss (train as a line,
validation as markers), learning rate, and throughput; a fourth, downstream scores, when a run
logged `--eval-tasks` (`eval/<task>/<metric>`, one marker style per task). Several runs share the
same axes, each in one colour named by its run directory (a branch from `tinyllama anneal` beside
its parent). `run_series` returns exactly the data that is drawn,
so it can be checked without looking at pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyllama_cli import files
from tinyllama_cli.errors import UserError
from tinyllama_cli.rundir import EVAL_PREFIX, metrics_path, read_metrics

# metric name in metrics.jsonl -> the panel it goes to
PANELS = {"loss": "loss", "val_loss": "loss", "lr": "learning rate", "tokens_per_sec": "tokens/s"}
DOWNSTREAM = "downstream"  # the panel of every eval/<task>/<metric> curve
X_AXES = {"step": "step", "tokens": "tokens_seen"}


def panel_of(metric: str) -> str:
    return DOWNSTREAM if metric.startswith(EVAL_PREFIX) else PANELS[metric]


@dataclass
class RunSeries:
    """One run's curves: metric -> (xs, ys), only the records that carry that metric."""

    label: str
    run_dir: str
    curves: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)


def run_series(run_dir: str | Path, x: str = "step", label: str | None = None) -> RunSeries:
    """The curves of one run from its metrics.jsonl: train loss, val loss, lr, tokens/s.

    A record contributes a point to a curve when it has both the x field and that metric, so
    validation records (step, val_loss, tokens_seen) and training records sit on the same axis.
    """
    if x not in X_AXES:
        raise UserError(f"unknown x axis {x!r}; choose one of: {', '.join(X_AXES)}")
    key = X_AXES[x]
    records = read_metrics(run_dir)
    series = RunSeries(label=label or Path(run_dir).name or str(run_dir), run_dir=str(run_dir))
    downstream = sorted({k for r in records for k in r if k.startswith(EVAL_PREFIX)})
    for metric in [*PANELS, *downstream]:
        points = [
            (r[key], r[metric]) for r in records if _number(r.get(key)) and _number(r.get(metric))
        ]
        if points:
            series.curves[metric] = ([float(a) for a, _ in points], [float(b) for _, b in points])
    if not series.curves:
        raise UserError(
            f"{metrics_path(run_dir)} has no {key} with loss, val_loss, lr or tokens_per_sec; "
            "is it a metrics file written by `tinyllama pretrain`?"
        )
    return series


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def labels_for(run_dirs: list[str | Path]) -> list[str]:
    """Legend names: the run directories' names, or their paths as given when names clash."""
    names = [Path(d).resolve().name for d in run_dirs]
    if len(set(names)) == len(names):
        return names
    return [str(d) for d in run_dirs]


def build_figure(runs: list[RunSeries], x: str = "step") -> Any:
    """A matplotlib Figure on the Agg canvas (no display, no global backend switch) with loss,
    learning-rate and throughput axes."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = ["loss", "learning rate", "tokens/s"]
    scores = sorted({m for run in runs for m in run.curves if panel_of(m) == DOWNSTREAM})
    panels += [DOWNSTREAM] if scores else []
    fig = Figure(figsize=(8, 3 * len(panels)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, sharex=True)
    by_panel = dict(zip(panels, axes))
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, run in enumerate(runs):
        color = colors[i % len(colors)]
        for metric, (xs, ys) in run.curves.items():
            ax = by_panel[panel_of(metric)]
            if metric in scores:
                marker = "osD^v<>"[scores.index(metric) % 7]
                ax.plot(
                    xs,
                    ys,
                    f"{marker}-",
                    color=color,
                    markersize=4,
                    label=f"{run.label} {metric[len(EVAL_PREFIX) :]}",
                )
            elif metric == "val_loss":
                ax.plot(xs, ys, "o--", color=color, markersize=4, label=f"{run.label} (val)")
            else:
                name = f"{run.label} (train)" if metric == "loss" else run.label
                ax.plot(xs, ys, "-", color=color, linewidth=1.2, label=name)
    for title, ax in by_panel.items():
        ax.set_ylabel(title)
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend(fontsize="small")
    by_panel["tokens/s"].set_ylim(bottom=0)  # throughput dips read as fractions of the whole
    by_panel["learning rate"].ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    axes[-1].set_xlabel("tokens seen" if x == "tokens" else "step")
    fig.suptitle("Training curves")
    return fig


def plot_runs(
    run_dirs: list[str | Path], out: str | Path, x: str = "step", overwrite: bool = False
) -> list[RunSeries]:
    """Read every run, draw them on shared axes and write a PNG atomically; returns the series."""
    if not run_dirs:
        raise UserError("give at least one run directory to plot")
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise UserError(f"--out {out} must end in .png")
    if out.exists() and not overwrite:
        raise UserError(f"{out} already exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise UserError(f"the folder of --out {out} does not exist; create it first")
    runs = [run_series(d, x=x, label=name) for d, name in zip(run_dirs, labels_for(run_dirs))]
    fig = build_figure(runs, x=x)
    with files.replacing(out) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return runs


__all__ = ["RunSeries", "build_figure", "labels_for", "plot_runs", "run_series"]
