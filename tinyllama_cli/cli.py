"""The `tinyllama` command line: argument parsing, rich output, and errors -> exit codes.

No logic lives here: each command parses its flags, calls one function of a module, and
prints the result. A `UserError` from any module becomes one red line and exit status 2.
"""

from __future__ import annotations

import json
import sys
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


# --- plan --------------------------------------------------------------------------------------


@app.command("plan")
def plan_command(
    model: str | None = typer.Option(None, "--model", "-m",
                                        help="Preset (default tinyllama-1.1b), YAML config (a run's config.yaml works), or a parameter count such as 1.1B."),
    tokens: str | None = typer.Option(None, "--tokens", help="Training tokens: 3T, 300B, 2.5e12. Default: Chinchilla-optimal (20 x params)."),
    gpus: int | None = typer.Option(None, "--gpus", help="Number of GPUs (default 1; with --from, the run's world size)."),
    gpu: str = typer.Option("a100-40g", "--gpu", help="GPU type: a100-40g, a100-80g, h100, h100-pcie, h200, b200, l40s, rtx-3090, rtx-4090, mi300x."),
    peak_tflops: float | None = typer.Option(None, "--peak-tflops", help="Override the GPU's dense bf16 peak, TFLOP/s."),
    gpu_memory_gib: float | None = typer.Option(None, "--gpu-memory-gib", help="Override the GPU's memory, GiB."),
    mfu: str | None = typer.Option(None, "--mfu", help="Model FLOPs utilisation, 0.56 or 56% (default: TinyLlama's measured 56%; x 6/8 with checkpointing)."),
    tokens_per_sec_per_gpu: float | None = typer.Option(None, "--tokens-per-sec-per-gpu", help="A measured throughput instead of --mfu."),
    price: float | None = typer.Option(None, "--price", help="Price per GPU-hour, for the cost."),
    seq_len: int | None = typer.Option(None, "--seq-len", help="Sequence length (default: the model's block_size)."),
    micro_batch: int | None = typer.Option(None, "--micro-batch", help="Sequences per GPU per step (default: the largest that fits)."),
    activation_checkpointing: bool = typer.Option(False, "--activation-checkpointing", help="Plan with per-block activation checkpointing."),
    overhead_gib: float = typer.Option(2.0, "--overhead-gib", help="Memory for the CUDA context, NCCL and fragmentation, GiB."),
    from_run: str | None = typer.Option(None, "--from", help="A run directory: project the rest of it from its measured throughput."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Training FLOPs, days, GPU-hours, cost, Chinchilla comparison and FSDP memory per GPU."""
    from tinyllama_cli import plan as planner

    options = {
        "gpu": gpu, "peak_tflops": peak_tflops, "gpu_memory_gib": gpu_memory_gib,
        "mfu": planner.parse_fraction(mfu) if mfu is not None else None,
        "tokens_per_sec_per_gpu": tokens_per_sec_per_gpu, "price_per_gpu_hour": price,
        "seq_len": seq_len, "micro_batch": micro_batch,
        "activation_checkpointing": activation_checkpointing, "overhead_gib": overhead_gib,
    }
    count = planner.parse_count(tokens, "--tokens") if tokens is not None else None
    if from_run is not None:
        if model is not None:
            raise UserError("--from takes the model from the run's config.yaml; drop --model")
        result = planner.plan_from_run(from_run, tokens=count, gpus=gpus, **options)
    else:
        config, params = planner.resolve_model(model or "tinyllama-1.1b")
        result = planner.plan(planner.PlanRequest(model=config, params=params, tokens=count, gpus=gpus or 1, **options))
    if as_json:
        print(result.to_json())
        return
    for part in planner.render(result):
        console.print(part)


# --- plot --------------------------------------------------------------------------------------


@app.command("plot")
def plot_command(
    run_dirs: Annotated[list[str], typer.Argument(metavar="RUN_DIR", help="One or more run directories (metrics.jsonl).")],
    out: str = typer.Option(..., "--out", "-o", help="The PNG file to write."),
    x: str = typer.Option("step", "--x", help="x axis: step or tokens (tokens seen; compares runs with different batch sizes)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out if it exists."),
) -> None:
    """Loss (train and val), learning-rate and throughput curves of one or more runs as a PNG."""
    from tinyllama_cli.plot import plot_runs

    runs = plot_runs(run_dirs, out, x=x, overwrite=overwrite)
    points = sum(len(xs) for run in runs for xs, _ in run.curves.values())
    console.print(f"wrote {out}: {len(runs)} run(s), {points} points", highlight=False)


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
