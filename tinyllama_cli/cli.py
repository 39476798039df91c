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


# --- pretrain / resume ------------------------------------------------------------------------


def _train_flags() -> list:
    """One `--flag` per TrainConfig field (None = not given, so the YAML or default stays)."""
    import inspect
    from dataclasses import fields

    from tinyllama_cli.config import TrainConfig

    kinds = {"int": int, "float": float, "str": str, "bool": bool}
    params = []
    for f in fields(TrainConfig):
        kind = next(v for k, v in kinds.items() if k in str(f.type))
        flag = "--" + f.name.replace("_", "-")
        decls = [f"{flag}/--no-{flag[2:]}"] if kind is bool else [flag]
        option = typer.Option(None, *decls, help=f.metadata.get("help"), show_default=False,
                              rich_help_panel="Training config (flags override --config)")
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                        annotation=kind | None))
    return params


def _with_train_flags(func):
    """Give `func(**kwargs)` a signature Typer reads: its own parameters + every TrainConfig flag."""
    import inspect

    own = [p for p in inspect.signature(func).parameters.values() if p.kind != p.VAR_KEYWORD]
    params = own + _train_flags()

    def wrapper(**kwargs):
        return func(**kwargs)

    wrapper.__signature__ = inspect.Signature(params)
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    wrapper.__name__, wrapper.__doc__ = func.__name__, func.__doc__
    return wrapper


def _gpus(flags: dict) -> None:
    gpus = flags.pop("gpus", None)
    if gpus is not None:
        flags["devices"], flags["accelerator"] = gpus, "cuda"


@app.command()
@_with_train_flags
def pretrain(
    config: str | None = typer.Option(None, "--config", help="YAML file of TrainConfig fields "
                                         "(flags override it); `model:` may be a preset or a mapping."),
    gpus: int | None = typer.Option(None, "--gpus", help="Shorthand for --devices N --accelerator cuda."),
    **flags,
) -> None:
    """Pretrain a Llama model on a token data dir (FSDP2 over --devices/--gpus workers)."""
    from tinyllama_cli.config import load_train_config
    from tinyllama_cli.train.launch import end_worker_process
    from tinyllama_cli.train.launch import pretrain as run_pretrain

    flags["gpus"] = gpus
    _gpus(flags)
    cfg, model = load_train_config(config, flags)
    code = run_pretrain(cfg, model, console=console)
    end_worker_process(code)
    if code:
        raise typer.Exit(code)


@app.command()
@_with_train_flags
def resume(
    run_dir: str = typer.Argument(..., help="The run directory to continue."),
    gpus: int | None = typer.Option(None, "--gpus", help="Shorthand for --devices N --accelerator cuda."),
    **flags,
) -> None:
    """Continue a run from its newest complete checkpoint (raise --max-steps, change --devices, ...)."""
    from tinyllama_cli.train.launch import end_worker_process
    from tinyllama_cli.train.launch import resume as run_resume

    flags["gpus"] = gpus
    _gpus(flags)
    code = run_resume(run_dir, flags, console=console)
    end_worker_process(code)
    if code:
        raise typer.Exit(code)


# --- entry point -------------------------------------------------------------------------------


def main() -> None:
    """Console-script entry: run the app, turning UserError into one line and exit status 2."""
    try:
        app()
    except UserError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
