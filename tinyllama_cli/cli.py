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


# --- sample-corpus -----------------------------------------------------------------------------


@app.command("sample-corpus")
def sample_corpus(
    out: str = typer.Option(..., "--out", help="Directory to write (must not exist unless --overwrite)."),
    tokens_target: int = typer.Option(3_000_000, "--tokens-target",
                                      help="Estimated tokens to write, 7:3 text:code; capped by what the library has."),
    seed: int = typer.Option(0, "--seed", help="Seed of the held-out split and the record order."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace DIR if it exists."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable summary."),
) -> None:
    """Write a built-in corpus from the Python standard library (no network): text in
    SlimPajama's layout, code in Starcoderdata's, and small hellaswag/arc_easy files to evaluate on."""
    from tinyllama_cli.data.builtin_corpus import build_sample_corpus

    with err_console.status("Reading the standard library..."):
        s = build_sample_corpus(out, tokens_target=tokens_target, overwrite=overwrite, seed=seed)
    if as_json:
        print(json.dumps(s.to_dict(), indent=2))
        return
    table = Table(title=f"Sample corpus in {s.out} ({s.seconds:.1f} s)", box=box.SIMPLE_HEAD)
    for column in ("part", "files", "records", "~tokens"):
        table.add_column(column, justify="left" if column == "part" else "right")
    table.add_row("slimpajama/ (text)", str(len(s.slimpajama_files)), f"{s.text_documents:,}", f"{s.text_tokens:,}")
    table.add_row("  + RedPajamaGithub (code)", "", f"{s.github_documents:,}", f"{s.github_tokens:,}")
    table.add_row("starcoder/python/ (code)", str(len(s.starcoder_files)), f"{s.code_files:,}", f"{s.code_tokens:,}")
    table.add_row("eval/hellaswag.jsonl", "1", f"{s.hellaswag:,}", "")
    table.add_row("eval/arc_easy.jsonl", "1", f"{s.arc_easy:,}", "")
    console.print(table)
    console.print(f"{len(s.held_out)} modules and topics held out for eval/; details in {s.out}/README.md")


# --- entry point -------------------------------------------------------------------------------


def main() -> None:
    """Console-script entry: run the app, turning UserError into one line and exit status 2."""
    try:
        app()
    except UserError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
