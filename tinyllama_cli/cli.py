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


# --- convert -----------------------------------------------------------------------------------


@app.command()
def convert(
    src: str = typer.Argument(..., help="A run dir (its newest checkpoint), a checkpoint dir or a Hugging Face Llama dir."),
    to: str = typer.Option(..., "--to", help="Target format: hf, native or gguf."),
    out: str = typer.Option(..., "--out", help="Output directory (for gguf also a path ending in .gguf)."),
    dtype: str | None = typer.Option(None, "--dtype", help="fp32 (default), bf16 or fp16; native is always fp32."),
    max_shard_size: str = typer.Option("5GB", "--max-shard-size", help="HF: split safetensors above this size (2GB, 500MB, 1GiB)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    verify: bool | None = typer.Option(None, "--verify/--no-verify",
                                          help="Load the result and compare logits with the source (default: when transformers is importable)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Convert a model between the native format, Hugging Face Llama and GGUF, verified."""
    from tinyllama_cli.convert.api import convert as run_convert

    if as_json:
        result = run_convert(src, to, out, dtype, max_shard_size, overwrite, verify)
        print(json.dumps(result.to_dict(), indent=2))
        return
    with err_console.status("converting") as status:
        result = run_convert(src, to, out, dtype, max_shard_size, overwrite, verify,
                             on_stage=lambda text: status.update(text))
    table = Table(title=f"{result.source_kind} -> {result.target}", box=box.SIMPLE_HEAD)
    table.add_column("file")
    table.add_column("size", justify="right")
    for f in result.files:
        table.add_row(f["name"], _bytes(f["bytes"]))
    table.add_row("[bold]total[/]", f"[bold]{_bytes(sum(f['bytes'] for f in result.files))}[/]")
    console.print(table)
    console.print(f"wrote {result.out}   dtype {result.dtype}   params {result.params:,}   tokenizer {'yes' if result.tokenizer else 'no'}   "
                  f"{result.seconds:.1f} s", highlight=False)
    v = result.verify
    if v is None:
        console.print("verify: skipped", highlight=False)
    else:
        extra = f"   tokenizer {v.tokenizer}" if v.tokenizer else ""
        extra += f"   max tensor diff {v.max_tensor_diff:.3g}" if v.max_tensor_diff is not None else ""
        console.print(f"verify: [bold green]OK[/]  max |logit diff| {v.max_abs_diff:.3g} (tolerance {v.tolerance:.3g}) on "
                      f"{v.probe_shape[0]}x{v.probe_shape[1]} tokens{extra}\n        {v.method}", highlight=False)


def _bytes(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


# --- entry point -------------------------------------------------------------------------------


def main() -> None:
    """Console-script entry: run the app, turning UserError into one line and exit status 2."""
    try:
        app()
    except UserError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
