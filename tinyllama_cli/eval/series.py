"""Every checkpoint of a run: TinyLlama's intermediate-checkpoint table as `series.json`,
`series.csv` and one PNG per task metric (and the average) against tokens seen, with the chance
level and the unigram baseline as horizontal lines. The baseline does not depend on the
checkpoint, so it is scored once, with the first one.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinyllama_cli import files
from tinyllama_cli.errors import UserError
from tinyllama_cli.eval.results import PERCENT, Baseline, EvalResult, write_json
from tinyllama_cli.eval.run import evaluate
from tinyllama_cli.eval.tasks import expand_tasks
from tinyllama_cli.rundir import list_checkpoints


@dataclass
class SeriesResult:
    rows: list[EvalResult]
    tasks: list[str]
    files: list[Path]

    @property
    def baseline(self) -> Baseline | None:
        """The run's unigram baseline (computed once, with the first checkpoint)."""
        return self.rows[0].baseline if self.rows else None

    def to_records(self) -> list[dict[str, Any]]:
        """What `eval --all-checkpoints --json` prints: one record per checkpoint
        (`series_records`)."""
        return series_records(self.rows, self.tasks)


def evaluate_series(
    run_dir: str | Path,
    tasks: str | list[str],
    out_dir: str | Path | None = None,
    on_checkpoint: Callable[[int, int, Path], None] | None = None,
    overwrite: bool = False,
    baseline: bool = True,
    **kwargs: Any,
) -> SeriesResult:
    """Every checkpoint of a run, oldest first, evaluated with `evaluate(**kwargs)`; the series
    written under `out_dir` (default RUN_DIR/eval)."""
    checkpoints = list_checkpoints(run_dir)
    if not checkpoints:
        raise UserError(
            f"{run_dir} has no complete checkpoints/step-*; --all-checkpoints needs a run directory"
        )
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "eval"
    targets = [out / "series.json", out / "series.csv"]
    if not overwrite and any(p.exists() for p in targets):
        raise UserError(
            f"{out} already holds series.json/series.csv; "
            "choose another --series-dir or pass --overwrite"
        )
    rows = []
    for i, checkpoint in enumerate(checkpoints):
        if on_checkpoint is not None:
            on_checkpoint(i, len(checkpoints), checkpoint)
        rows.append(evaluate(checkpoint, tasks, baseline=baseline and i == 0, **kwargs))
    names = [t for t in expand_tasks(tasks) if any(t in r.scores for r in rows)]
    files = write_series(rows, names, out)
    return SeriesResult(rows=rows, tasks=names, files=files)


def series_records(rows: list[EvalResult], tasks: list[str]) -> list[dict[str, Any]]:
    """One record per checkpoint: per task its metric and standard error, then the task's chance
    level and the unigram baseline (the same in every record), then the averages."""
    unigram = rows[0].unigram if rows else {}
    records = []
    for r in rows:
        record: dict[str, Any] = {
            "checkpoint": r.checkpoint,
            "step": r.step,
            "tokens_seen": r.tokens_seen,
        }
        for task in tasks:
            metric, value = r.scores.get(task, ("", None))
            column = f"{task}/{metric}" if metric else task
            record[column] = value
            record[f"{column}_stderr"] = r.stderr.get(task)
            record[f"{task}/chance"] = r.chance.get(task)
            record[f"{task}/unigram"] = unigram.get(task)
        record["avg"] = r.average
        record["avg/chance"] = r.reference_average(r.chance)
        record["avg/unigram"] = r.reference_average(unigram)
        records.append(record)
    return records


def write_series(rows: list[EvalResult], tasks: list[str], out: Path) -> list[Path]:
    """series.json, series.csv and the PNGs under `out`, each written atomically; the paths."""
    out.mkdir(parents=True, exist_ok=True)
    records = series_records(rows, tasks)
    written = [write_json(records, out / "series.json"), _write_csv(records, out / "series.csv")]
    metrics = {t: next(r.scores[t][0] for r in rows if t in r.scores) for t in tasks}
    plots = [(f"{t}/{m}", t, m in PERCENT) for t, m in metrics.items()] + [("avg", "avg", True)]
    return written + plot_series(records, out, plots)


def _write_csv(records: list[dict[str, Any]], path: Path) -> Path:
    with files.replacing(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    return path


def plot_series(
    records: list[dict[str, Any]], out: Path, plots: list[tuple[str, str, bool]]
) -> list[Path]:
    """One PNG per (metric column, prefix, in percent): the metric against tokens seen (step
    when unknown), with the `prefix/chance` and `prefix/unigram` columns as horizontal lines.
    Columns without a value are skipped."""
    use_tokens = all(r["tokens_seen"] is not None for r in records)
    xs = [r["tokens_seen"] if use_tokens else r["step"] for r in records]
    written = []
    for column, prefix, percent in plots:
        points = [
            (x, r[column]) for x, r in zip(xs, records) if r[column] is not None and x is not None
        ]
        if not points:
            continue
        references = {ref: records[0].get(f"{prefix}/{ref}") for ref in ("chance", "unigram")}
        fig = _series_figure(column, points, references, percent, use_tokens)
        path = out / (column.replace("/", "_") + ".png")
        with files.replacing(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
        written.append(path)
    return written


def _series_figure(
    column: str,
    points: list[tuple[float, float]],
    references: dict[str, float | None],
    percent: bool,
    use_tokens: bool,
) -> Any:
    """A matplotlib Figure on the Agg canvas (no pyplot state, no global backend switch): the
    metric's points, its references as horizontal lines (dashed chance, dotted unigram)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    scale = 100 if percent else 1
    ax.plot([p[0] for p in points], [scale * p[1] for p in points], marker="o", label="model")
    for (ref, value), style in zip(references.items(), ("--", ":")):
        if value is not None:
            ax.axhline(scale * value, linestyle=style, color="gray", label=ref)
    ax.set_xlabel("tokens seen" if use_tokens else "step")
    ax.set_ylabel(f"{column} (%)" if percent else column)
    if "perplexity" in column:
        ax.set_yscale("log")  # a unigram's perplexity is orders of magnitude above a model's
    ax.set_title(column)
    ax.grid(alpha=0.3)
    if len(ax.get_lines()) > 1:
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig
