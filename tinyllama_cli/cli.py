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


# --- generate ----------------------------------------------------------------------------------


@app.command()
def generate(
    ckpt: str = typer.Argument(..., help="Run dir (latest checkpoint), checkpoint dir or Hugging Face dir."),
    prompt: Annotated[list[str] | None, typer.Option("--prompt", "-p", help="Prompt text (repeatable; \"\" starts from BOS).")] = None,
    prompt_file: str | None = typer.Option(None, "--prompt-file", help="A file with one prompt per line (batched)."),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens", "-n", help="Tokens to generate per sample at most."),
    temperature: float = typer.Option(0.8, "--temperature", "-t", help="Softmax temperature; 0 = greedy."),
    top_k: int | None = typer.Option(None, "--top-k", help="Sample among the k most likely tokens only."),
    top_p: float | None = typer.Option(None, "--top-p", help="Nucleus sampling: smallest set reaching probability p."),
    repetition_penalty: float = typer.Option(1.0, "--repetition-penalty", help=">1 discourages tokens already present."),
    seed: int | None = typer.Option(None, "--seed", help="Same seed, same text (default: random, reported)."),
    num_samples: int = typer.Option(1, "--num-samples", help="Samples per prompt."),
    stop: Annotated[list[str] | None, typer.Option("--stop", help="End a sample at this string (repeatable).")] = None,
    batch_size: int = typer.Option(8, "--batch-size", help="Rows (prompt x sample) decoded together."),
    truncate: bool = typer.Option(False, "--truncate", help="Drop the oldest prompt tokens that do not fit the context."),
    dtype: str = typer.Option("float32", "--dtype", help="float32, bfloat16 or float16."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    compile_: bool = typer.Option(False, "--compile", help="torch.compile the decode step (CUDA only)."),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads (default: torch's; 1 is often fastest on a busy machine)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print the text only."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object with samples and stats, at the end."),
) -> None:
    """Sample text from a model, streaming tokens as they are produced."""
    from tinyllama_cli import generate as gen

    params = gen.SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                                repetition_penalty=repetition_penalty, seed=seed, stop=list(stop or []))
    view = _GenerateView(num_samples, quiet)
    result, source = gen.run(ckpt, prompt or [], prompt_file, params, num_samples=num_samples, batch_size=batch_size,
                             truncate=truncate, device=device, dtype=dtype, compile=compile_, threads=threads,
                             on_start=None if as_json else view.start,
                             on_text=None if as_json else view.on_text, on_done=None if as_json else view.on_done)
    if as_json:
        print(json.dumps({"model": source, **result.to_dict()}, indent=2))
        return
    view.close()
    if not quiet:
        s = result.stats()
        err_console.print(
            f"{s['new_tokens']} tokens in {s['seconds']:.2f} s: [bold]{s['tokens_per_sec']:.1f} tokens/s[/] "
            f"(prefill {s['prompt_tokens']} tokens in {s['prefill_s']:.3f} s; seed {result.seed})", highlight=False)


class _GenerateView:
    """Terminal display: one sample streams its text straight to stdout; several samples print
    as a block each when finished (a sample's tokens are interleaved with other rows' otherwise)."""

    def __init__(self, num_samples: int, quiet: bool):
        self.num_samples, self.quiet, self.single = num_samples, quiet, False

    def start(self, prompts: list[str], notes: list[str]) -> None:
        for note in notes if not self.quiet else []:
            err_console.print(f"[yellow]note:[/] {note}", highlight=False)
        self.single = len(prompts) * self.num_samples == 1
        if self.single:
            sys.stdout.write(prompts[0])
            sys.stdout.flush()

    def on_text(self, n: int, text: str) -> None:
        if self.single:
            sys.stdout.write(text)
            sys.stdout.flush()

    def on_done(self, sample) -> None:
        if self.single:
            return
        if not self.quiet:
            title = f"prompt {sample.prompt_index + 1}" + (f" · sample {sample.sample_index + 1}" if self.num_samples > 1 else "")
            console.rule(f"{title} · {len(sample.tokens)} tokens · {sample.finish_reason}", style="dim")
        sys.stdout.write(sample.prompt + sample.completion + "\n")
        sys.stdout.flush()

    def close(self) -> None:
        if self.single:
            sys.stdout.write("\n")
            sys.stdout.flush()


# --- entry point -------------------------------------------------------------------------------


def main() -> None:
    """Console-script entry: run the app, turning UserError into one line and exit status 2."""
    try:
        app()
    except UserError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
