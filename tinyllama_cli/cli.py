"""The `tinyllama` command line: argument parsing, rich output, and errors -> exit codes.

No logic lives here: each command parses its flags, calls one function of a module, and
prints the result. A `UserError` from any module becomes one red line and exit status 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

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


# --- prepare-data ------------------------------------------------------------------------------


@app.command("prepare-data")
def prepare_data(
    sources: Annotated[list[str], typer.Argument(
        metavar="[NAME=]PATH...", help="Inputs: a file, directory, glob or saved `datasets` dir of "
        ".jsonl(.zst), .json, .parquet, .txt; NAME= names its subfolder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The data dir to write.")],
    tokenizer: Annotated[Path | None, typer.Option(help="A SentencePiece .model file.")] = None,
    train_tokenizer: Annotated[bool, typer.Option(
        "--train-tokenizer", help="Train a Llama-style BPE on a sample of the inputs.")] = False,
    vocab_size: Annotated[int | None, typer.Option(help="Vocabulary of --train-tokenizer.")] = None,
    tokenizer_sample_mb: Annotated[float, typer.Option(
        help="Characters (millions) sampled for --train-tokenizer.")] = 64.0,
    workers: Annotated[int, typer.Option("--workers", "-w",
                                         help="Processes (each tokenizes one input file at a time).")] = 1,
    val_fraction: Annotated[float, typer.Option(
        help="Share of documents for validation, chosen by a hash of the text.")] = 0.001,
    text_field: Annotated[str | None, typer.Option(
        help="JSON field / column of the text [default: text, else content].")] = None,
    exclude_meta: Annotated[list[str] | None, typer.Option(
        metavar="KEY=VALUE", help="Skip records whose meta KEY is VALUE (repeatable), e.g. "
        "redpajama_set_name=RedPajamaGithub.")] = None,
    on_error: Annotated[str, typer.Option(
        help="skip: count and log bad records; fail: stop at the first.")] = "skip",
    shard_tokens: Annotated[int, typer.Option(help="Tokens per output shard file.")] = 1 << 27,
    shard_index: Annotated[int, typer.Option(help="This job's slice of the input files (0-based).")] = 0,
    num_shards: Annotated[int, typer.Option(
        help="Slices the input files are split into (combine them with merge-data).")] = 1,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out dir.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest and run figures as JSON.")] = False,
) -> None:
    """Tokenize text corpora into packed token shards with a manifest (resumable, deterministic)."""
    from tinyllama_cli.data.prepare import PrepareOptions
    from tinyllama_cli.data.prepare import prepare_data as run
    from tinyllama_cli.data.progress import RichProgress

    options = PrepareOptions(
        out=out, tokenizer=tokenizer, train_tokenizer=train_tokenizer, vocab_size=vocab_size,
        tokenizer_sample_mb=tokenizer_sample_mb, workers=workers, val_fraction=val_fraction,
        text_field=text_field, exclude=_key_values(exclude_meta or [], "--exclude-meta"),
        on_error=on_error, shard_tokens=shard_tokens, shard_index=shard_index, num_shards=num_shards,
        overwrite=overwrite,
    )
    try:
        with RichProgress(err_console) as progress:
            result = run(sources, options, progress)
    except KeyboardInterrupt:
        err_console.print(f"interrupted: finished input files are kept in {out}.partial; "
                          "rerun the same command to resume")
        raise typer.Exit(130) from None
    if as_json:
        print(json.dumps({"out": str(result.out), "files_processed": result.files_processed,
                          "files_resumed": result.files_resumed, "elapsed_s": result.elapsed_s,
                          "tokens_per_s": result.tokens_per_s, "log_lines": result.log_lines,
                          "manifest": result.manifest}, indent=2))
        return
    _print_data_summary(result.manifest, f"Prepared {result.out}")
    console.print(f"{result.files_processed} files tokenized, {result.files_resumed} resumed; "
                  f"{result.tokens_per_s:,.0f} tokens/s; {result.elapsed_s:.1f} s; "
                  f"{result.log_lines} lines in {result.out / 'prepare-data.log'}")


@app.command("merge-data")
def merge_data(
    slices: Annotated[list[str], typer.Argument(
        metavar="SLICE_DIR...", help="The --out dirs of prepare-data --shard-index 0..K-1 --num-shards K.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The merged data dir to write.")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out dir.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
) -> None:
    """Merge the slices of a multi-job prepare-data run into one data dir."""
    from tinyllama_cli.data.prepare import merge_data as run

    manifest = run(slices, out, overwrite=overwrite)
    if as_json:
        print(json.dumps(manifest, indent=2))
        return
    _print_data_summary(manifest, f"Merged {len(slices)} slices into {out}")


def _key_values(items: list[str], flag: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"{flag} takes KEY=VALUE, not {item!r}")
        pairs.append((key, value))
    return tuple(pairs)


def _print_data_summary(manifest: dict, title: str) -> None:
    table = Table(title=title, box=box.SIMPLE_HEAD)
    for column in ("source", "files", "docs train", "docs val", "tokens train", "tokens val", "shards", "skipped"):
        table.add_column(column, justify="left" if column in ("source", "skipped") else "right")
    for name, s in manifest["sources"].items():
        skipped = ", ".join(f"{k} {v:,}" for k, v in s["skipped"].items()) or "-"
        table.add_row(name, f"{s['files']:,}", f"{s['documents']['train']:,}", f"{s['documents']['val']:,}",
                      f"{s['tokens']['train']:,}", f"{s['tokens']['val']:,}",
                      str(len(s["shards"]["train"]) + len(s["shards"]["val"])), skipped)
    console.print(table)
    tok = manifest["tokenizer"]
    console.print(f"tokenizer: vocab {tok['vocab_size']:,}, sha256 {tok['sha256'][:16]}...; dtype {manifest['dtype']}")


# --- entry point -------------------------------------------------------------------------------


def main() -> None:
    """Console-script entry: run the app, turning UserError into one line and exit status 2."""
    try:
        app()
    except UserError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
