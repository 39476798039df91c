"""The `tinyllama` command line: argument parsing, rich output, and errors -> exit codes.

No logic lives here: each command parses its flags, calls one function of a module, and
prints the result. A `UserError` from any module becomes one red line and exit status 2.
"""

from __future__ import annotations

import json
import sys
from typing import Optional

import typer
from rich.console import Console
from rich import box
from rich.table import Table

from tinyllama_cli import __version__
from tinyllama_cli.errors import UserError

app = typer.Typer(
    name="tinyllama",
    help="Pretrain, resume, convert, evaluate and sample small Llama models (the TinyLlama recipe).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
# Piped output (logs, CI) gets a wide fixed width instead of rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)


def _version(value: bool) -> None:
    if value:
        print(f"tinyllama {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True,
                                           help="Print the version and exit."),
) -> None:
    """Pretrain, resume, convert, evaluate and sample small Llama models (the TinyLlama recipe)."""


# --- models ------------------------------------------------------------------------------------


@app.command()
def models(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """List the model presets with exact parameter counts and training FLOPs per token."""
    from tinyllama_cli.config import PRESETS

    rows = [
        {
            "name": c.name, "n_layer": c.n_layer, "n_embd": c.n_embd, "n_head": c.n_head,
            "n_kv_head": c.n_kv_head, "intermediate_size": c.intermediate_size,
            "vocab_size": c.vocab_size, "block_size": c.block_size, "params": c.num_params(),
            "flops_per_token": c.flops_per_token(),
        }
        for c in PRESETS.values()
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="Model presets", box=box.SIMPLE_HEAD)
    for column in ("preset", "layers", "width", "heads", "kv", "ffn", "vocab", "ctx", "params", "FLOPs/tok"):
        table.add_column(column, justify="left" if column == "preset" else "right")
    for r in rows:
        table.add_row(
            r["name"], str(r["n_layer"]), str(r["n_embd"]), str(r["n_head"]), str(r["n_kv_head"]),
            str(r["intermediate_size"]), str(r["vocab_size"]), str(r["block_size"]),
            f"{r['params']:,}", _si(r["flops_per_token"]),
        )
    console.print(table)
    console.print("FLOPs/token = 6 x (params - input embedding) + 12 x layers x width x context (torchtitan's convention)")


def _si(x: float) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= scale:
            return f"{x / scale:.2f} {unit}"
    return f"{x:.0f}"


# --- eval --------------------------------------------------------------------------------------


@app.command("eval")
def eval_command(
    checkpoint: str = typer.Argument(..., help="Run dir (newest checkpoint), checkpoint dir or HF dir."),
    tasks: str = typer.Option("tinyllama", "--tasks", "-t",
                              help="lm-eval task names, comma-separated; aliases arc_e, arc_c, obqa; "
                                   "group tinyllama = TinyLlama's seven tasks."),
    num_fewshot: int | None = typer.Option(None, "--num-fewshot", help="Few-shot examples (default: the task's, else 0)."),
    limit: float | None = typer.Option(None, "--limit", help="At most N samples per task (a fraction if < 1)."),
    batch_size: int = typer.Option(16, "--batch-size", "-b", help="Sequences per forward pass."),
    dtype: str = typer.Option("float32", "--dtype", help="float32 (TinyLlama's table), bfloat16 or float16."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, cuda:N (default: cuda if available)."),
    seed: int = typer.Option(1234, "--seed", help="Seed for lm-eval's sampling, few-shot choice and generation."),
    backend: str = typer.Option("native", "--backend", help="native, or hf: lm-eval's own HF model on a converted copy."),
    dataset: list[str] | None = typer.Option(None, "--dataset", "-d",  # noqa: B008
                                                help="TASK=PATH: local .jsonl/.parquet in the hub dataset's schema "
                                                     "(scored split; TASK:train=PATH for few-shot examples). Repeatable."),
    tasks_dir: str | None = typer.Option(None, "--tasks-dir", help="A directory of extra lm-eval task YAMLs."),
    output: str | None = typer.Option(None, "--output", "-o", help="Write lm-eval's full results as JSON here (per checkpoint with --all-checkpoints)."),
    samples: bool = typer.Option(False, "--samples", help="Include every sample's inputs and scores in --output."),
    all_checkpoints: bool = typer.Option(False, "--all-checkpoints",
                                         help="Evaluate every checkpoint of a run dir: table, JSON, CSV, PNG plots."),
    series_dir: str | None = typer.Option(None, "--series-dir", help="Where --all-checkpoints writes (default RUN_DIR/eval)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
    verbose: bool = typer.Option(False, "--verbose", help="Show lm-eval's own log messages."),
    as_json: bool = typer.Option(False, "--json", help="Print the scores as JSON instead of a table."),
) -> None:
    """Evaluate a model with lm-evaluation-harness (offline with --dataset), TinyLlama's table."""
    from pathlib import Path

    from tinyllama_cli import evaluate as ev

    if output and Path(output).exists() and not overwrite:
        raise UserError(f"{output} already exists; choose another --output or pass --overwrite")
    options = {"num_fewshot": num_fewshot, "limit": int(limit) if limit and limit >= 1 else limit,
               "batch_size": batch_size, "dtype": dtype, "device": device, "seed": seed, "backend": backend,
               "datasets": dataset, "tasks_dir": tasks_dir, "log_samples": samples, "verbose": verbose}
    if all_checkpoints:
        series = ev.evaluate_series(
            checkpoint, tasks, out_dir=series_dir, overwrite=overwrite,
            on_checkpoint=lambda i, n, path: err_console.print(f"[{i + 1}/{n}] {path}"), **options)
        records = ev.series_records(series.rows, series.tasks)
        if output:
            ev.write_json({r.checkpoint: r.results for r in series.rows}, output, overwrite=True)
        if as_json:
            print(json.dumps(records, indent=2))
        else:
            console.print(_eval_table(series.rows, series.tasks, ev, title="Intermediate checkpoints"))
            console.print("wrote " + ", ".join(str(p) for p in series.files))
        return
    result = ev.evaluate(checkpoint, tasks, **options)
    if output:
        ev.write_json(result.results, output, overwrite=True)
    if as_json:
        print(json.dumps({"checkpoint": result.checkpoint, "step": result.step, "tokens_seen": result.tokens_seen,
                          "scores": {t: {"metric": m, "value": v} for t, (m, v) in result.scores.items()},
                          "avg": result.average, "samples_per_sec": result.samples_per_sec}, indent=2))
        return
    console.print(_eval_table([result], list(result.scores), ev, title=f"lm-eval ({backend}), {result.checkpoint}"))
    console.print(f"{result.num_samples} samples, {result.samples_per_sec:.1f} samples/s"
                  + (f"; full results in {output}" if output else ""))


def _eval_table(rows, tasks: list[str], ev, title: str) -> Table:
    """TinyLlama's layout: one row per checkpoint, its metric per task (in %), then the average."""
    table = Table(title=title, box=box.SIMPLE_HEAD)
    table.add_column("step", justify="right")
    table.add_column("tokens", justify="right")
    for task in tasks:
        metric = next((r.scores[task][0] for r in rows if task in r.scores), "")
        table.add_column(f"{ev.TITLES.get(task, task)}\n{metric}", justify="right")
    table.add_column("avg", justify="right")
    for r in rows:
        cells = [f"{100 * r.scores[t][1]:.2f}" if t in r.scores else "-" for t in tasks]
        avg = f"{100 * r.average:.2f}" if r.average is not None else "-"
        table.add_row("-" if r.step is None else str(r.step), ev.human_tokens(r.tokens_seen), *cells, avg)
    return table


# --- entry point -------------------------------------------------------------------------------


def main() -> None:
    """Console-script entry: run the app, turning UserError into one line and exit status 2."""
    try:
        app()
    except UserError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
