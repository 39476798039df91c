"""What the CLI shows a person: rich tables and lines built from the commands' result objects.

Every command's human-readable output is here, so `cli.py` only parses flags, calls one module
function and hands the result to a `show_*` function (or prints `result.to_dict()` as JSON).
The `*_table` functions return renderables, so tests read them without a terminal. Result types
are imported for type checking only and command modules inside the functions that need them:
importing this module imports no torch (`tinyllama models` and `plan` stay fast).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.status import Status
from rich.table import Table

from tinyllama_cli.units import si

if TYPE_CHECKING:
    from tinyllama_cli.average import AverageResult
    from tinyllama_cli.convert.api import ConvertResult
    from tinyllama_cli.data.prepare import PrepareResult
    from tinyllama_cli.data.sample_corpus import CorpusSummary
    from tinyllama_cli.eval import EvalResult, SeriesResult
    from tinyllama_cli.generate import GenerationResult, Sample
    from tinyllama_cli.plan import Memory, Plan
    from tinyllama_cli.plot import RunSeries

# Piped output (logs, CI) gets a wide fixed width instead of rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)


def show_error(exc: Exception) -> None:
    """A user's mistake (`UserError`): one red line on stderr, never wrapped."""
    err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)


def _warn(text: str) -> None:
    err_console.print(f"[bold yellow]warning:[/] {text}", highlight=False)


def status(text: str) -> Status:
    """A spinner on stderr while a command works (`with status(...) as s: ... s.update(...)`)."""
    return err_console.status(text)


# --- sample-corpus -------------------------------------------------------------------------------


def corpus_table(s: CorpusSummary) -> Table:
    """Files, records and estimated tokens of each part of a built-in corpus."""
    table = Table(title=f"Sample corpus in {s.out} ({s.seconds:.1f} s)", box=box.SIMPLE_HEAD)
    for column in ("part", "files", "records", "~tokens"):
        table.add_column(column, justify="left" if column == "part" else "right")
    table.add_row(
        "slimpajama/ (text)",
        str(len(s.slimpajama_files)),
        f"{s.text_documents:,}",
        f"{s.text_tokens:,}",
    )
    table.add_row(
        "  + RedPajamaGithub (code)", "", f"{s.github_documents:,}", f"{s.github_tokens:,}"
    )
    table.add_row(
        "starcoder/python/ (code)",
        str(len(s.starcoder_files)),
        f"{s.code_files:,}",
        f"{s.code_tokens:,}",
    )
    table.add_row("eval/hellaswag.jsonl", "1", f"{s.hellaswag:,}", "")
    table.add_row("eval/arc_easy.jsonl", "1", f"{s.arc_easy:,}", "")
    return table


def show_corpus(s: CorpusSummary) -> None:
    console.print(corpus_table(s))
    console.print(
        f"{len(s.held_out)} modules and topics held out for eval/; details in {s.out}/README.md"
    )


# --- prepare-data / merge-data -------------------------------------------------------------------


def data_table(manifest: dict[str, Any], title: str) -> Table:
    """One row per source of a data dir's manifest: files, documents, tokens, shards, skips."""
    table = Table(title=title, box=box.SIMPLE_HEAD)
    for column in (
        "source",
        "files",
        "docs train",
        "docs val",
        "tokens train",
        "tokens val",
        "shards",
        "skipped",
    ):
        table.add_column(column, justify="left" if column in ("source", "skipped") else "right")
    for name, s in manifest["sources"].items():
        skipped = ", ".join(f"{k} {v:,}" for k, v in s["skipped"].items()) or "-"
        table.add_row(
            name,
            f"{s['files']:,}",
            f"{s['documents']['train']:,}",
            f"{s['documents']['val']:,}",
            f"{s['tokens']['train']:,}",
            f"{s['tokens']['val']:,}",
            str(len(s["shards"]["train"]) + len(s["shards"]["val"])),
            skipped,
        )
    return table


def show_data_summary(manifest: dict[str, Any], title: str) -> None:
    console.print(data_table(manifest, title))
    tok = manifest["tokenizer"]
    console.print(
        f"tokenizer: vocab {tok['vocab_size']:,}, sha256 {tok['sha256'][:16]}...; "
        f"dtype {manifest['dtype']}"
    )
    decontamination = manifest.get("decontamination")
    for f in decontamination["files"] if decontamination else ():
        console.print(
            f"decontamination ({decontamination['ngram']}-word spans): {f['file']}: "
            f"{f['documents']:,} documents dropped; {f['texts']:,} eval texts, "
            f"{f['short_texts']:,} shorter than a span"
        )


class PrepareProgress:
    """prepare-data's progress bar on stderr: bytes read with ETA, documents/s and tokens/s.

    Implements `data.prepare.ProgressSink`; use as a context manager around `prepare_data`."""

    def __init__(self, console: Console = err_console):
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[rates]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task: Any = None
        self.documents = 0
        self.tokens = 0
        self.t0 = time.perf_counter()

    def __enter__(self):  # -> Self (typing.Self needs 3.11)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.task is not None:
            self.progress.stop()

    def _add_task(self, text: str, **kw: Any) -> None:
        # Started on the first task, so a run that fails its checks prints only its error.
        self.progress.start()
        self.task = self.progress.add_task(text, rates="", **kw)

    def stage(self, text: str) -> None:
        if self.task is None:
            self._add_task(text, total=None)
        else:
            self.progress.update(self.task, description=text)

    def start(self, total_bytes: int, done_bytes: int, files: int, resumed: int) -> None:
        text = f"tokenizing {files} files" + (f" ({resumed} done before)" if resumed else "")
        if self.task is None:
            self._add_task(text, total=total_bytes, completed=done_bytes)
        else:
            self.progress.update(
                self.task, description=text, total=total_bytes, completed=done_bytes
            )
        self.t0 = time.perf_counter()

    def advance(self, documents: int, tokens: int, nbytes: int) -> None:
        self.documents += documents
        self.tokens += tokens
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        rates = f"{self.documents / elapsed:,.0f} docs/s {self.tokens / elapsed / 1e6:,.2f}M tok/s"
        self.progress.update(self.task, advance=nbytes, rates=rates)


def show_prepared(result: PrepareResult) -> None:
    """The data dir's table, its warnings (stderr) and the run's figures."""
    show_data_summary(result.manifest, f"Prepared {result.out}")
    for warning in result.warnings:
        _warn(warning)
    console.print(
        f"{result.files_processed} files tokenized, {result.files_resumed} resumed; "
        f"{result.tokens_per_s:,.0f} tokens/s; {result.elapsed_s:.1f} s; "
        f"{result.log_lines} lines in {result.out / 'prepare-data.log'}"
    )


def show_prepare_interrupted(out: Path) -> None:
    err_console.print(
        f"interrupted: finished input files are kept in {out}.partial; "
        "rerun the same command to resume"
    )


def show_merged(manifest: dict[str, Any], slices: list[str], out: Path) -> None:
    show_data_summary(manifest, f"Merged {len(slices)} slices into {out}")


# --- eval ----------------------------------------------------------------------------------------


def eval_table(rows: list[EvalResult], tasks: list[str], title: str) -> Table:
    """TinyLlama's layout: one row per checkpoint, its metric per task (in %, ± lm-eval's
    standard error), the average; below a rule, the chance and unigram rows to compare with."""
    from tinyllama_cli.eval import TITLES, human_tokens

    table = Table(title=title, box=box.SIMPLE_HEAD)
    table.add_column("step", justify="right")
    table.add_column("tokens", justify="right")
    metrics = {t: next((r.scores[t][0] for r in rows if t in r.scores), "") for t in tasks}
    for task in tasks:
        table.add_column(f"{TITLES.get(task, task)}\n{metrics[task]}", justify="right")
    table.add_column("avg", justify="right")
    for i, r in enumerate(rows):
        cells = [
            _score_cell(*r.scores[t], r.stderr.get(t)) if t in r.scores else "-" for t in tasks
        ]
        step = "-" if r.step is None else str(r.step)
        table.add_row(
            step,
            human_tokens(r.tokens_seen),
            *cells,
            _percent(r.average),
            end_section=i == len(rows) - 1,
        )
    last = rows[-1]
    references = [("chance", last.chance)]
    if rows[0].baseline is not None:
        references.append(("unigram", rows[0].unigram))
    for name, values in references:
        cells = [_score_cell(metrics[t], values[t]) if t in values else "-" for t in tasks]
        table.add_row(name, "", *cells, _percent(last.reference_average(values)), style="dim")
    return table


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _score_cell(metric: str, value: float, stderr: float | None = None) -> str:
    """Accuracies in percent (TinyLlama's table); perplexities and bits per byte as they are;
    `value ±stderr` when lm-eval gave a standard error."""
    from tinyllama_cli.eval import PERCENT

    percent = metric in PERCENT
    cell = f"{100 * value:.2f}" if percent else f"{value:.3f}"
    if stderr is None:
        return cell
    return cell + (f" ±{100 * stderr:.2f}" if percent else f" ±{stderr:.3g}")


def _show_eval_notes(result: EvalResult) -> None:
    """What the ± and the reference rows are, in one line; why the unigram cells are "-"."""
    base = result.baseline
    line = "± lm-eval's standard error; chance: 1/choices, mean over the scored documents"
    if base is not None and not base.note:
        line += (
            f"; unigram: token frequencies of {si(base.tokens_counted, '.3g')} training "
            f"tokens ({base.data_dir}), scored by lm-eval like the model"
        )
    console.print(line, markup=False, highlight=False, soft_wrap=True)
    if base is not None and base.note:
        console.print(
            f"unigram baseline: - ({base.note})", markup=False, highlight=False, soft_wrap=True
        )


def show_eval(result: EvalResult, backend: str, output: str | None) -> None:
    """One model's table, the notes under it, and the speed (and where --output went)."""
    console.print(
        eval_table([result], list(result.scores), title=f"lm-eval ({backend}), {result.checkpoint}")
    )
    _show_eval_notes(result)
    console.print(
        f"{result.num_samples} samples, {result.samples_per_sec:.1f} samples/s"
        + (f", {result.threads[0]} CPU thread(s): {result.threads[1]}" if result.threads else "")
        + (f"; full results in {output}" if output else "")
    )


def show_series(series: SeriesResult) -> None:
    """Every checkpoint's row, the notes, and the files written."""
    console.print(eval_table(series.rows, series.tasks, title="Intermediate checkpoints"))
    _show_eval_notes(series.rows[0])
    console.print("wrote " + ", ".join(str(p) for p in series.files))


def show_checkpoint_started(index: int, total: int, path: Path) -> None:
    """`eval --all-checkpoints`' progress, on stderr: [i/n] and the checkpoint."""
    err_console.print(f"[{index + 1}/{total}] {path}")


# --- generate ------------------------------------------------------------------------------------


class GenerateView:
    """Terminal display: one sample streams its text straight to stdout; several samples print
    as a block each when finished (a sample's tokens are interleaved with other rows' otherwise)."""

    def __init__(self, num_samples: int, quiet: bool):
        self.num_samples, self.quiet, self.single = num_samples, quiet, False

    def start(self, prompts: list[str], notes: list[str]) -> None:
        for note in notes if not self.quiet else []:
            err_console.print(f"[yellow]note:[/] {note}", highlight=False)
        self.single = len(prompts) * self.num_samples == 1
        if self.single:
            _write(prompts[0])

    def on_text(self, n: int, text: str) -> None:
        if self.single:
            _write(text)

    def on_done(self, sample: Sample) -> None:
        if self.single:
            return
        if not self.quiet:
            title = f"prompt {sample.prompt_index + 1}" + (
                f" · sample {sample.sample_index + 1}" if self.num_samples > 1 else ""
            )
            console.rule(
                f"{title} · {len(sample.tokens)} tokens · {sample.finish_reason}", style="dim"
            )
        _write(sample.prompt + sample.completion + "\n")

    def close(self) -> None:
        if self.single:
            _write("\n")


def _write(text: str) -> None:
    """Straight to stdout, at once: streamed text is not rich markup and must not wait."""
    sys.stdout.write(text)
    sys.stdout.flush()


def show_generation_speed(result: GenerationResult) -> None:
    """Tokens, time and speed on stderr (stdout carries only the text)."""
    s = result.stats()
    err_console.print(
        f"{s['new_tokens']} tokens in {s['seconds']:.2f} s: [bold]{s['tokens_per_sec']:.1f} "
        f"tokens/s[/] (prefill {s['prompt_tokens']} tokens in {s['prefill_s']:.3f} s; "
        f"seed {result.seed}"
        + (f"; {s['threads']} CPU thread(s): {s['threads_reason']}" if s["threads"] else "")
        + ")",
        highlight=False,
    )
    if s["compiled"]:
        made = ", ".join(
            f"batch {c['batch']} x {c['length']} positions"
            + (f", {c['width']} tokens a step" if c["width"] > 1 else "")
            + f" in {c['seconds']:.1f} s"
            + {True: " (inductor cache hit)", False: " (compiled from scratch)", None: ""}[
                c["cache_hit"]
            ]
            for c in s["compiled"]
        )
        err_console.print(f"compiled decode step: {made}; not in the time above", highlight=False)
    if s["speculation"] is not None:
        rate = f"{s['acceptance_rate']:.0%}" if s["acceptance_rate"] is not None else "none"
        err_console.print(
            f"{s['speculation']}: {s['accepted']} of {s['drafted']} drafted tokens accepted "
            f"({rate}; up to {s['draft_tokens']} a step), {s['target_forwards']} model forwards",
            highlight=False,
        )


# --- convert -------------------------------------------------------------------------------------


def convert_table(result: ConvertResult) -> Table:
    """The files written and their sizes, with the total."""
    table = Table(title=f"{result.source_kind} -> {result.target}", box=box.SIMPLE_HEAD)
    table.add_column("file")
    table.add_column("size", justify="right")
    for f in result.files:
        table.add_row(f["name"], _bytes(f["bytes"]))
    table.add_row("[bold]total[/]", f"[bold]{_bytes(sum(f['bytes'] for f in result.files))}[/]")
    return table


def show_converted(result: ConvertResult) -> None:
    """The files, what was written, and the verification (or that it was skipped)."""
    console.print(convert_table(result))
    console.print(
        f"wrote {result.out}   dtype {result.dtype}   params {result.params:,}   "
        f"tokenizer {'yes' if result.tokenizer else 'no'}   {result.seconds:.1f} s",
        highlight=False,
    )
    v = result.verify
    if v is None:
        console.print("verify: skipped", highlight=False)
        return
    extra = f"   tokenizer {v.tokenizer}" if v.tokenizer else ""
    extra += f"   max tensor diff {v.max_tensor_diff:.3g}" if v.max_tensor_diff is not None else ""
    console.print(
        f"verify: [bold green]OK[/]  max |logit diff| {v.max_abs_diff:.3g} (tolerance "
        f"{v.tolerance:.3g}) on {v.probe_shape[0]}x{v.probe_shape[1]} tokens{extra}\n"
        f"        {v.method}",
        highlight=False,
    )


def _bytes(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


# --- average -------------------------------------------------------------------------------------


def average_table(result: AverageResult) -> Table:
    """The checkpoints averaged: step and tokens seen, oldest first."""
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("step", justify="right")
    table.add_column("tokens seen", justify="right")
    for step, tokens in zip(result.steps, result.tokens_seen, strict=True):
        table.add_row(str(step), "-" if tokens is None else si(tokens, ".3g"))
    return table


def show_averaged(result: AverageResult) -> None:
    console.print(average_table(result))
    console.print(
        f"uniform average of {len(result.steps)} checkpoint(s): wrote {result.out}   "
        f"params {result.params:,}   tokenizer "
        f"{'yes' if result.tokenizer else 'no'}   {result.seconds:.1f} s",
        highlight=False,
    )


# --- plot ----------------------------------------------------------------------------------------


def show_plot(runs: list[RunSeries], out: str) -> None:
    points = sum(len(xs) for run in runs for xs, _ in run.curves.values())
    console.print(f"wrote {out}: {len(runs)} run(s), {points} points", highlight=False)


# --- plan ----------------------------------------------------------------------------------------


def plan_tables(p: Plan) -> list[RenderableType]:
    """Rich tables for people: run, compute, Chinchilla, memory and (with --from) progress."""
    c, ch, unit = p.compute, p.chinchilla, p.device
    out: list[RenderableType] = [
        _two_columns(
            "Run",
            [
                ("model", f"{p.model} ({p.params:,} parameters)"),
                ("tokens", f"{_count(p.tokens)} ({p.tokens_source})"),
                ("hardware", _hardware(p)),
                ("sequence length", str(c.seq_len) if c.seq_len else "-"),
            ],
        )
    ]
    out.append(
        _two_columns(
            "Compute",
            [
                ("FLOPs per token", _flop(c.flops_per_token)),
                ("training FLOPs", f"{c.total_flops:.3e}"),
                (
                    "MFU",
                    f"{c.mfu:.1%} ({c.mfu_source})" if c.mfu is not None else f"- ({c.mfu_source})",
                ),
                (f"tokens/s per {unit}", f"{c.tokens_per_sec_per_gpu:,.0f}"),
                ("tokens/s in all", f"{c.tokens_per_sec:,.0f}"),
                ("wall clock", f"{c.days:,.1f} days ({c.seconds / 3600:,.1f} h)"),
                (f"{unit}-hours", _hours(c.gpu_hours)),
                (
                    "cost",
                    _money(c.cost) if c.cost is not None else f"- (give --price per {unit}-hour)",
                ),
            ],
        )
    )
    out.append(
        _two_columns(
            "Chinchilla (Hoffmann et al. 2022, approach 1)",
            [
                ("tokens per parameter", f"{ch.tokens_per_param:,.1f}"),
                (
                    "Chinchilla-optimal tokens",
                    (
                        f"{_count(ch.optimal_tokens)} (reached in "
                        f"{ch.days_to_optimal_tokens * 24:,.1f} h)"
                    ),
                ),
                ("multiple of optimal", f"{ch.multiple_of_optimal:,.1f}x"),
                ("compute C = 6ND", f"{ch.compute_6nd:.3e} FLOPs"),
                (
                    "optimal model for C",
                    (
                        f"{_count(ch.optimal_params_for_compute)} parameters on "
                        f"{_count(ch.optimal_tokens_for_compute)} tokens"
                    ),
                ),
            ],
        )
    )
    if p.memory is not None:
        out.append(_memory_table(p.memory, p.gpus, p.gpu))
    elif p.hardware == "run":
        out.append(
            f"memory: not planned for the run's own {p.gpu} devices; add --gpu NAME "
            "to see its micro batch in that GPU's memory"
        )
    else:
        out.append("memory: needs an architecture; pass a preset or a config file as --model")
    if p.progress is not None:
        out.append(_progress_table(p))
    return out


def show_plan(p: Plan) -> None:
    for part in plan_tables(p):
        console.print(part)


def _two_columns(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, show_header=False, title_justify="left")
    table.add_column("what")
    table.add_column("value", justify="right")
    for row in rows:
        table.add_row(*row)
    return table


def _count(x: float) -> str:
    return si(x, ".3g", small_spec=".3g")


def _flop(x: float) -> str:
    return si(x, ".3f", " ", giga="G", unit="FLOP")


def _hours(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:,.2f}"


def _money(x: float | None) -> str:
    if x is None:
        return "-"
    return f"${x:,.0f}" if x >= 100 else f"${x:,.2f}"


def _gib(x: float) -> str:
    from tinyllama_cli.plan import GIB

    return f"{x / GIB:.2f} GiB"


def _hardware(p: Plan) -> str:
    """The Run table's hardware line: given, the run's own (--from), or a projection onto a GPU."""
    if p.hardware == "run":
        peak = (
            f"; its mfu is against {p.peak_tflops:.3g} TFLOP/s per {p.device}"
            if p.peak_tflops
            else ""
        )
        return f"{p.gpus} x {p.gpu} (the run's own{peak})"
    line = f"{p.gpus} x {p.gpu} ({p.peak_tflops:g} TFLOP/s bf16)"
    if p.hardware == "projection" and p.run_hardware is not None:
        line += (
            f": a projection; the run used {p.run_hardware.world_size} x "
            f"{p.run_hardware.accelerator}"
        )
    return line


def _progress_table(p: Plan) -> Table:
    g, unit = p.progress, p.device
    assert g is not None
    rows = [
        ("step", f"{g.step:,}"),
        (
            "tokens seen",
            (f"{_count(g.tokens_seen)} of {_count(g.target_tokens)} ({g.fraction_done:.2%})"),
        ),
        ("measured tokens/s", f"{g.tokens_per_sec:,.0f} ({g.throughput_source})"),
    ]
    at = ""
    if p.hardware == "projection":
        rows.append(
            ("projected tokens/s", f"{g.remaining_tokens_per_sec:,.0f} on {p.gpus} x {p.gpu}")
        )
        at = " at the projected rate"
    rows += [
        (
            "remaining",
            (
                f"{_count(g.remaining_tokens)} tokens, {g.remaining_days:,.2f} days "
                f"({g.remaining_s / 3600:,.1f} h){at}"
            ),
        ),
        (f"remaining {unit}-hours", _hours(g.remaining_gpu_hours)),
        ("remaining cost", _money(g.remaining_cost)),
    ]
    return _two_columns(f"Progress of {g.run_dir}", rows)


def _memory_table(m: Memory, gpus: int, gpu: str) -> Table:
    chosen = " (chosen)"
    sharding = f"FSDP full sharding over {gpus}" if gpus > 1 else "one GPU, no sharding"
    table = Table(
        title=f"Memory per GPU: {sharding}, bf16 compute, flash attention; "
        f"micro batch {m.micro_batch} x {m.seq_len} ({m.micro_batch_source})",
        box=box.SIMPLE_HEAD,
        title_justify="left",
    )
    table.add_column("")
    table.add_column(
        "no checkpointing" + ("" if m.activation_checkpointing else chosen), justify="right"
    )
    table.add_column(
        "activation checkpointing" + (chosen if m.activation_checkpointing else ""), justify="right"
    )
    sharded = " (sharded)" if gpus > 1 else ""
    in_flight = "bf16 weights/gradients in flight" if gpus > 1 else "bf16 weight copies (autocast)"
    same = [
        (f"fp32 parameters{sharded}", m.params_fp32),
        (f"fp32 gradients{sharded}", m.grads_fp32),
        (f"AdamW moments{sharded}", m.adamw_state),
        (in_flight, m.bf16_buffers),
        ("fused-loss buffers", m.loss_buffers),
        ("CUDA context, NCCL, workspaces", m.overhead),
    ]
    for name, value in same:
        table.add_row(name, _gib(value), _gib(value))
    table.add_row("activations", _gib(m.activations), _gib(m.activations_checkpointed))
    table.add_row("total", _gib(m.total), _gib(m.total_checkpointed))
    table.add_row(f"capacity ({gpu})", _gib(m.capacity), _gib(m.capacity))
    margin = f"safety margin ({m.margin_fraction:.0%}, --memory-margin)"
    table.add_row(margin, _gib(m.margin), _gib(m.margin))
    yes_no = {True: "[green]yes[/]", False: "[red]no[/]"}
    table.add_row("fits (total + margin)", yes_no[m.fits], yes_no[m.fits_checkpointed])
    table.add_row(
        "largest micro batch that fits", str(m.max_micro_batch), str(m.max_micro_batch_checkpointed)
    )
    return table


# --- models --------------------------------------------------------------------------------------


def models_table(rows: list[dict[str, Any]]) -> Table:
    """`config.describe_presets()` as a table (FLOPs per token with a G suffix)."""
    table = Table(title="Model presets", box=box.SIMPLE_HEAD)
    for column in (
        "preset",
        "layers",
        "width",
        "heads",
        "kv",
        "ffn",
        "vocab",
        "ctx",
        "params",
        "FLOPs/tok",
    ):
        table.add_column(column, justify="left" if column == "preset" else "right")
    for r in rows:
        table.add_row(
            r["name"],
            str(r["n_layer"]),
            str(r["n_embd"]),
            str(r["n_head"]),
            str(r["n_kv_head"]),
            str(r["intermediate_size"]),
            str(r["vocab_size"]),
            str(r["block_size"]),
            f"{r['params']:,}",
            si(r["flops_per_token"], ".2f", " ", giga="G"),
        )
    return table


def show_models(rows: list[dict[str, Any]]) -> None:
    console.print(models_table(rows))
    console.print(
        "FLOPs/token = 6 x (params - input embedding) + 12 x layers x width x context "
        "(torchtitan's convention)"
    )
    console.print(
        "vocab: the preset's; pretrain uses the data's tokenizer size unless --vocab-size is given"
    )
