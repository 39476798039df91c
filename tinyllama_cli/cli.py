"""The `tinyllama` command line: a table of commands over the package's modules.

Each command parses its flags, calls one module function and prints what it returns: as JSON
(`--json`: the result's `to_dict()`) or through `display`. Checks, defaults and assembly live in
the modules' options, so Python callers get the same behaviour; the pretrain/resume flags are
generated from TrainConfig (`cli_flags`). A `UserError` from any module becomes one red line
and exit status 2.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from tinyllama_cli import __version__, display
from tinyllama_cli.cli_flags import with_train_flags
from tinyllama_cli.config import Resume, sections
from tinyllama_cli.dtypes import accepted as dtype_spellings
from tinyllama_cli.errors import UserError

app = typer.Typer(
    name="tinyllama",
    help=(
        "Pretrain, resume, convert, evaluate and sample small Llama models (the TinyLlama recipe)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

THREADS_HELP = "CPU threads (default: the cores that are idle now, at most torch's count)."
GPUS_HELP = "Shorthand for --devices N --accelerator cuda."


def _version(value: bool) -> None:
    if value:
        print(f"tinyllama {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool | None = typer.Option(
        None, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Pretrain, resume, convert, evaluate and sample small Llama models (the TinyLlama recipe)."""


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


# --- data ----------------------------------------------------------------------------------------


def sample_corpus(
    out: str = typer.Option(
        ..., "--out", help="Directory to write (must not exist unless --overwrite)."
    ),
    tokens_target: int = typer.Option(
        3_000_000,
        "--tokens-target",
        help="Estimated tokens to write, 7:3 text:code; capped by what the library has.",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the held-out split and the record order."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace DIR if it exists."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable summary."),
) -> None:
    """Write a built-in corpus from the Python standard library (no network), with held-out
    eval files.

    Text goes in SlimPajama's layout, code in Starcoderdata's; eval/ holds small hellaswag,
    arc_easy and wikitext (held-out perplexity) files in the hub schemas."""
    from tinyllama_cli.data.sample_corpus import build_sample_corpus

    with display.status("Reading the standard library..."):
        summary = build_sample_corpus(
            out, tokens_target=tokens_target, overwrite=overwrite, seed=seed
        )
    if as_json:
        _print_json(summary.to_dict())
    else:
        display.show_corpus(summary)


def prepare_data(
    sources: Annotated[
        list[str],
        typer.Argument(
            metavar="[NAME=]PATH...",
            help="Inputs: a file, directory, glob or saved `datasets` dir of "
            ".jsonl(.zst), .json, .parquet, .txt; NAME= names its subfolder.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="The data dir to write.")],
    tokenizer: Annotated[Path | None, typer.Option(help="A SentencePiece .model file.")] = None,
    train_tokenizer: Annotated[
        bool,
        typer.Option(
            "--train-tokenizer", help="Train a Llama-style BPE on a sample of the inputs."
        ),
    ] = False,
    vocab_size: Annotated[int | None, typer.Option(help="Vocabulary of --train-tokenizer.")] = None,
    tokenizer_sample_mb: Annotated[
        float, typer.Option(help="Characters (millions) sampled for --train-tokenizer.")
    ] = 64.0,
    workers: Annotated[
        int,
        typer.Option(
            "--workers", "-w", help="Processes (each tokenizes one input file at a time)."
        ),
    ] = 1,
    val_fraction: Annotated[
        float, typer.Option(help="Share of documents for validation, chosen by a hash of the text.")
    ] = 0.001,
    val_min_docs: Annotated[
        int, typer.Option(help="Floor of validation documents per source (at most a tenth of it).")
    ] = 10,
    text_field: Annotated[
        str | None,
        typer.Option(help="JSON field / column of the text [default: text, else content]."),
    ] = None,
    exclude_meta: Annotated[
        list[str] | None,
        typer.Option(
            metavar="KEY=VALUE",
            help="Skip records whose meta KEY is VALUE (repeatable), e.g. "
            "redpajama_set_name=RedPajamaGithub.",
        ),
    ] = None,
    on_error: Annotated[
        str, typer.Option(help="skip: count and log bad records; fail: stop at the first.")
    ] = "skip",
    decontaminate: Annotated[
        list[Path] | None,
        typer.Option(
            metavar="PATH",
            help="Drop documents sharing an n-word span with this eval file "
            "(repeatable): an lm-eval task .jsonl/.parquet in the hub schema, or .txt/.jsonl "
            "texts.",
        ),
    ] = None,
    decontaminate_ngram: Annotated[
        int, typer.Option(help="Words per span for --decontaminate.")
    ] = 13,
    shard_tokens: Annotated[int, typer.Option(help="Tokens per output shard file.")] = 1 << 27,
    shard_index: Annotated[
        int, typer.Option(help="This job's slice of the input files (0-based).")
    ] = 0,
    num_shards: Annotated[
        int,
        typer.Option(help="Slices the input files are split into (combine them with merge-data)."),
    ] = 1,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing --out dir.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the manifest and run figures as JSON.")
    ] = False,
) -> None:
    """Tokenize text corpora into packed token shards with a manifest (resumable, deterministic)."""
    from tinyllama_cli.data.prepare import PrepareOptions
    from tinyllama_cli.data.prepare import prepare_data as run

    options = PrepareOptions(
        out=out,
        tokenizer=tokenizer,
        train_tokenizer=train_tokenizer,
        vocab_size=vocab_size,
        tokenizer_sample_mb=tokenizer_sample_mb,
        workers=workers,
        val_fraction=val_fraction,
        val_min_docs=val_min_docs,
        text_field=text_field,
        exclude=tuple(exclude_meta or ()),
        on_error=on_error,
        shard_tokens=shard_tokens,
        shard_index=shard_index,
        num_shards=num_shards,
        overwrite=overwrite,
        decontaminate=tuple(decontaminate or ()),
        decontaminate_ngram=decontaminate_ngram,
    )
    try:
        with display.PrepareProgress() as progress:
            result = run(sources, options, progress)
    except KeyboardInterrupt:
        display.show_prepare_interrupted(out)
        raise typer.Exit(130) from None
    if as_json:
        _print_json(result.to_dict())
    else:
        display.show_prepared(result)


def merge_data(
    slices: Annotated[
        list[str],
        typer.Argument(
            metavar="SLICE_DIR...",
            help="The --out dirs of prepare-data --shard-index 0..K-1 --num-shards K.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="The merged data dir to write.")],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing --out dir.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
) -> None:
    """Merge the slices of a multi-job prepare-data run into one data dir."""
    from tinyllama_cli.data.prepare import merge_data as run

    manifest = run(slices, out, overwrite=overwrite)
    if as_json:
        _print_json(manifest)
    else:
        display.show_merged(manifest, slices, out)


# --- pretrain / resume ---------------------------------------------------------------------------


def _finish_training(code: int) -> None:
    """A torchrun/srun worker leaves with os._exit (gloo can abort at interpreter exit); a
    failed launch exits with torchrun's status."""
    from tinyllama_cli.train.launch import end_worker_process

    end_worker_process(code)
    if code:
        raise typer.Exit(code)


@with_train_flags(sections(), panel="Training config (flags override --config)")
def pretrain(
    config: str | None = typer.Option(
        None,
        "--config",
        help="YAML file of TrainConfig fields (flags override it); "
        "`model:` may be a preset or a mapping.",
    ),
    gpus: int | None = typer.Option(None, "--gpus", help=GPUS_HELP),
    **flags: Any,
) -> None:
    """Pretrain a Llama model on a token data dir (FSDP2 over --devices/--gpus workers)."""
    from tinyllama_cli.train.launch import pretrain_from_flags

    _finish_training(pretrain_from_flags(config, flags, gpus=gpus, console=display.console))


@with_train_flags(sections(Resume.CHANGE), panel="What a resumed run may change")
def resume(
    run_dir: str = typer.Argument(..., help="The run directory to continue."),
    gpus: int | None = typer.Option(None, "--gpus", help=GPUS_HELP),
    **flags: Any,
) -> None:
    """Continue a run from its newest complete checkpoint (raise --max-steps, change
    --devices, ...).

    The model, the data order (seed, mix, sequence length, global batch) and the run directory
    are the run's own: they have no flags here. Raising --max-steps re-stretches the cosine from
    the checkpoint's step on (the console says how the lr changes); finished steps are unchanged.
    A WSD run in its flat part only moves its decay later: nothing changes."""
    from tinyllama_cli.train.launch import resume as run_resume

    _finish_training(run_resume(run_dir, flags, console=display.console, gpus=gpus))


@with_train_flags(("launch",), panel="Where the branch trains")
def anneal(
    run_dir: str = typer.Argument(..., help="The run to branch (it is only read)."),
    from_step: int = typer.Option(..., "--from-step", help="Branch at this checkpoint's step."),
    decay_steps: int = typer.Option(..., "--decay-steps", help="Steps of the decay (1+)."),
    out: str = typer.Option(..., "--out", help="The branch's run directory (must not exist)."),
    decay_shape: str | None = typer.Option(
        None,
        "--decay-shape",
        help="linear|cosine|1-sqrt (default: the parent's WSD shape, else 1-sqrt).",
    ),
    min_lr: float | None = typer.Option(
        None, "--min-lr", help="Where the decay ends (default: the parent's)."
    ),
    gpus: int | None = typer.Option(None, "--gpus", help=GPUS_HELP),
    **flags: Any,
) -> None:
    """Branch a run at a checkpoint into a new run dir that decays the lr (the parent is untouched).

    The branch starts from checkpoint --from-step (model, optimizer, RNG) and decays the lr it
    was trained at to --min-lr over --decay-steps steps, on the parent's data order."""
    from tinyllama_cli.train.anneal import AnnealOptions
    from tinyllama_cli.train.anneal import anneal as run_anneal
    from tinyllama_cli.train.launch import with_gpus

    options = AnnealOptions(run_dir, from_step, decay_steps, out, decay_shape, min_lr)
    _finish_training(run_anneal(options, with_gpus(flags, gpus), console=display.console))


def average(
    run_dir: str = typer.Argument(..., help="The run whose newest checkpoints to average."),
    last: int = typer.Option(..., "--last", help="Average the newest K checkpoints (1+)."),
    out: str = typer.Option(..., "--out", help="The model directory to write (must not exist)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Average a run's newest K checkpoints into a model dir (eval, generate, convert take it)."""
    from tinyllama_cli.average import average as run_average

    result = run_average(run_dir, last, out)
    if as_json:
        _print_json(result.to_dict())
    else:
        display.show_averaged(result)


# --- eval ----------------------------------------------------------------------------------------


def eval_command(
    checkpoint: str = typer.Argument(
        ..., help="Run dir (newest checkpoint), checkpoint dir or HF dir."
    ),
    tasks: str = typer.Option(
        "tinyllama",
        "--tasks",
        "-t",
        help="lm-eval task names, comma-separated; aliases arc_e, arc_c, "
        "obqa; group tinyllama = TinyLlama's seven tasks.",
    ),
    num_fewshot: int | None = typer.Option(
        None, "--num-fewshot", help="Few-shot examples (default: the task's, else 0)."
    ),
    limit: float | None = typer.Option(
        None, "--limit", help="At most N samples per task (a fraction if < 1)."
    ),
    batch_size: int = typer.Option(16, "--batch-size", "-b", help="Sequences per forward pass."),
    dtype: str = typer.Option(
        "fp32", "--dtype", help=f"{dtype_spellings()} (fp32: TinyLlama's table)."
    ),
    device: str | None = typer.Option(
        None, "--device", help="cpu, cuda, cuda:N (default: cuda if available)."
    ),
    seed: int = typer.Option(
        1234, "--seed", help="Seed for lm-eval's sampling, few-shot choice and generation."
    ),
    backend: str = typer.Option(
        "native", "--backend", help="native, or hf: lm-eval's own HF model on a converted copy."
    ),
    dataset: list[str] | None = typer.Option(  # noqa: B008
        None,
        "--dataset",
        "-d",
        help="TASK=PATH: local .jsonl/.parquet in the hub dataset's schema (scored split; "
        "TASK:train=PATH for few-shot examples). Repeatable.",
    ),
    tasks_dir: str | None = typer.Option(
        None, "--tasks-dir", help="A directory of extra lm-eval task YAMLs."
    ),
    output: str | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Write lm-eval's full results as JSON here (per checkpoint with --all-checkpoints).",
    ),
    samples: bool = typer.Option(
        False, "--samples", help="Include every sample's inputs and scores in --output."
    ),
    all_checkpoints: bool = typer.Option(
        False,
        "--all-checkpoints",
        help="Evaluate every checkpoint of a run dir: table, JSON, CSV, PNG plots.",
    ),
    series_dir: str | None = typer.Option(
        None, "--series-dir", help="Where --all-checkpoints writes (default RUN_DIR/eval)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
    verbose: bool = typer.Option(False, "--verbose", help="Show lm-eval's own log messages."),
    threads: int | None = typer.Option(None, "--threads", help=THREADS_HELP),
    as_json: bool = typer.Option(
        False, "--json", help="Print the scores as JSON instead of a table."
    ),
    no_baseline: bool = typer.Option(
        False,
        "--no-baseline",
        help="Skip the unigram baseline (token frequencies of the run's training data).",
    ),
    prompt_lookup: int | None = typer.Option(
        None,
        "--prompt-lookup",
        help="Generation tasks: draft up to N tokens a step by prompt lookup (same text).",
    ),
    compile_: bool = typer.Option(
        False,
        "--compile",
        help="Generation tasks: decode with generate's compiled static-cache step "
        "(same text; pays for long generations, docs/generate.md).",
    ),
    compile_mode: str = typer.Option(
        "default",
        "--compile-mode",
        help="Generation tasks: generate's --compile-mode (default or max-autotune; "
        "max-autotune implies --compile).",
    ),
) -> None:
    """Evaluate a model with lm-evaluation-harness (offline with --dataset), TinyLlama's table.

    Beside each score: lm-eval's standard error, the task's chance level and a unigram model of
    the run's training data scored on the same tasks."""
    from tinyllama_cli import eval as ev

    options = ev.EvalOptions(
        num_fewshot=num_fewshot,
        limit=limit,
        batch_size=batch_size,
        dtype=dtype,
        device=device,
        seed=seed,
        backend=backend,
        datasets=dataset,
        tasks_dir=tasks_dir,
        output=output,
        samples=samples,
        series_dir=series_dir,
        overwrite=overwrite,
        verbose=verbose,
        threads=threads,
        baseline=not no_baseline,
        prompt_lookup=prompt_lookup,
        compile=compile_,
        compile_mode=compile_mode,
    )
    if all_checkpoints:
        series = ev.evaluate_checkpoints(
            checkpoint, tasks, options, on_checkpoint=display.show_checkpoint_started
        )
        if as_json:
            _print_json(series.to_records())
        else:
            display.show_series(series)
        return
    result = ev.evaluate_checkpoint(checkpoint, tasks, options)
    if as_json:
        _print_json(result.to_dict())
    else:
        display.show_eval(result, backend, output)


# --- generate ------------------------------------------------------------------------------------


def generate(
    ckpt: str = typer.Argument(
        ..., help="Run dir (latest checkpoint), checkpoint dir or Hugging Face dir."
    ),
    prompt: Annotated[
        list[str] | None,
        typer.Option("--prompt", "-p", help='Prompt text (repeatable; "" starts from BOS).'),
    ] = None,
    prompt_file: str | None = typer.Option(
        None, "--prompt-file", help="A file with one prompt per line (batched)."
    ),
    max_new_tokens: int = typer.Option(
        128, "--max-new-tokens", "-n", help="Tokens to generate per sample at most."
    ),
    temperature: float = typer.Option(
        0.8, "--temperature", "-t", help="Softmax temperature; 0 = greedy."
    ),
    top_k: int | None = typer.Option(
        None, "--top-k", help="Sample among the k most likely tokens only."
    ),
    top_p: float | None = typer.Option(
        None, "--top-p", help="Nucleus sampling: smallest set reaching probability p."
    ),
    repetition_penalty: float = typer.Option(
        1.0, "--repetition-penalty", help=">1 discourages tokens already present."
    ),
    seed: int | None = typer.Option(
        None, "--seed", help="Same seed, same text (default: random, reported)."
    ),
    num_samples: int = typer.Option(1, "--num-samples", help="Samples per prompt."),
    stop: Annotated[
        list[str] | None, typer.Option("--stop", help="End a sample at this string (repeatable).")
    ] = None,
    batch_size: int = typer.Option(
        8, "--batch-size", help="Rows (prompt x sample) decoded together."
    ),
    truncate: bool = typer.Option(
        False, "--truncate", help="Drop the oldest prompt tokens that do not fit the context."
    ),
    dtype: str = typer.Option(
        "auto",
        "--dtype",
        help=f"{dtype_spellings(auto=True)}; auto: bf16 on a bf16 GPU, else fp32.",
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    compile_: bool = typer.Option(
        False,
        "--compile",
        help="Decode with one compiled graph per step over a static KV cache (~1.8x on "
        "CPU; the first compile of a shape takes ~20 s, ~5 s from inductor's disk cache; "
        "docs/generate.md).",
    ),
    compile_mode: str | None = typer.Option(
        None,
        "--compile-mode",
        help="default, or max-autotune: weights frozen into the graph and inductor's own "
        "matrix kernels (faster steps, ~20 s compile per shape in every process, a second "
        "copy of the weights). Implies --compile.",
    ),
    draft: str | None = typer.Option(
        None,
        "--draft",
        help="Speculative decoding with this smaller model (same tokenizer): "
        "greedy text unchanged, sampling keeps its distribution.",
    ),
    draft_tokens: int = typer.Option(
        4, "--draft-tokens", help="Tokens the --draft model proposes per step."
    ),
    prompt_lookup: int | None = typer.Option(
        None,
        "--prompt-lookup",
        help="Speculative decoding without a second model: draft up to "
        "N tokens from n-gram matches in the prompt and text.",
    ),
    threads: int | None = typer.Option(None, "--threads", help=THREADS_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print the text only."),
    as_json: bool = typer.Option(
        False, "--json", help="One JSON object with samples and stats, at the end."
    ),
) -> None:
    """Sample text from a model, streaming tokens as they are produced."""
    from tinyllama_cli import generate as gen

    params = gen.SamplingParams(
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        repetition_penalty=repetition_penalty,
        seed=seed,
        stop=list(stop or []),
    )
    view = display.GenerateView(num_samples, quiet)
    shown = (
        {}
        if as_json
        else {"on_start": view.start, "on_text": view.on_text, "on_done": view.on_done}
    )
    result = gen.run(
        ckpt,
        prompt or [],
        prompt_file,
        params,
        num_samples=num_samples,
        batch_size=batch_size,
        truncate=truncate,
        device=device,
        dtype=dtype,
        compile=compile_ or compile_mode is not None,
        compile_mode=compile_mode or "default",
        threads=threads,
        speculation=gen.SpeculationOptions(draft, draft_tokens, prompt_lookup),
        **shown,
    )
    if as_json:
        _print_json(result.to_dict())
        return
    view.close()
    if not quiet:
        display.show_generation_speed(result)


# --- convert -------------------------------------------------------------------------------------


def convert(
    src: str = typer.Argument(
        ..., help="A run dir (its newest checkpoint), a checkpoint dir or a Hugging Face Llama dir."
    ),
    to: str = typer.Option(..., "--to", help="Target format: hf, native or gguf."),
    out: str = typer.Option(
        ..., "--out", help="Output directory (for gguf also a path ending in .gguf)."
    ),
    dtype: str | None = typer.Option(
        None, "--dtype", help=f"{dtype_spellings()} (default fp32); native is always fp32."
    ),
    max_shard_size: str = typer.Option(
        "5GB", "--max-shard-size", help="HF: split safetensors above this size (2GB, 500MB, 1GiB)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    verify: bool | None = typer.Option(
        None,
        "--verify/--no-verify",
        help="Load the result and compare logits with the source "
        "(default: when transformers is importable).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Convert a model between the native format, Hugging Face Llama and GGUF, verified."""
    from tinyllama_cli.convert.api import convert as run_convert

    if as_json:
        _print_json(run_convert(src, to, out, dtype, max_shard_size, overwrite, verify).to_dict())
        return
    with display.status("converting") as status:
        result = run_convert(
            src, to, out, dtype, max_shard_size, overwrite, verify, on_stage=status.update
        )
    display.show_converted(result)


# --- plot, plan, models --------------------------------------------------------------------------


def plot_command(
    run_dirs: Annotated[
        list[str],
        typer.Argument(metavar="RUN_DIR", help="One or more run directories (metrics.jsonl)."),
    ],
    out: str = typer.Option(..., "--out", "-o", help="The PNG file to write."),
    x: str = typer.Option(
        "step",
        "--x",
        help="x axis: step or tokens (tokens seen; compares runs with different batch sizes).",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out if it exists."),
) -> None:
    """Loss (train and val), learning-rate and throughput curves of one or more runs as a PNG."""
    from tinyllama_cli.plot import plot_runs

    display.show_plot(plot_runs(run_dirs, out, x=x, overwrite=overwrite), out)


def plan_command(
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        help="Preset (default tinyllama-1.1b), YAML config (a run's "
        "config.yaml works), or a parameter count such as "
        "1.1B.",
    ),
    tokens: str | None = typer.Option(
        None,
        "--tokens",
        help="Training tokens: 3T, 300B, 2.5e12. Default: Chinchilla-optimal (20 x params).",
    ),
    gpus: int | None = typer.Option(
        None, "--gpus", help="Number of GPUs (default 1; with --from, the run's world size)."
    ),
    gpu: str | None = typer.Option(
        None,
        "--gpu",
        help="GPU type: a100-40g (default), a100-80g, h100, "
        "h100-pcie, h200, b200, l40s, rtx-3090, rtx-4090, "
        "mi300x. With --from: project the run onto it.",
    ),
    peak_tflops: float | None = typer.Option(
        None, "--peak-tflops", help="Override the GPU's dense bf16 peak, TFLOP/s."
    ),
    gpu_memory_gib: float | None = typer.Option(
        None, "--gpu-memory-gib", help="Override the GPU's memory, GiB."
    ),
    mfu: str | None = typer.Option(
        None,
        "--mfu",
        help="Model FLOPs utilisation, 0.56 or 56% (default: "
        "TinyLlama's measured 56%; x 6/8 with checkpointing).",
    ),
    tokens_per_sec_per_gpu: float | None = typer.Option(
        None, "--tokens-per-sec-per-gpu", help="A measured throughput instead of --mfu."
    ),
    price: float | None = typer.Option(None, "--price", help="Price per GPU-hour, for the cost."),
    seq_len: int | None = typer.Option(
        None, "--seq-len", help="Sequence length (default: the model's block_size)."
    ),
    micro_batch: int | None = typer.Option(
        None, "--micro-batch", help="Sequences per GPU per step (default: the largest that fits)."
    ),
    activation_checkpointing: bool = typer.Option(
        False, "--activation-checkpointing", help="Plan with per-block activation checkpointing."
    ),
    overhead_gib: float = typer.Option(
        2.0, "--overhead-gib", help="Memory for the CUDA context, NCCL and library workspaces, GiB."
    ),
    memory_margin: str = typer.Option(
        "10%",
        "--memory-margin",
        help="GPU memory kept free when choosing the micro batch "
        "(fragmentation, estimate error): 0.1 or 10%.",
    ),
    from_run: str | None = typer.Option(
        None,
        "--from",
        help="A run directory: the rest of it at its measured "
        "throughput and MFU, on its own hardware (or "
        "--gpu's).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Training FLOPs, days, GPU-hours, cost, Chinchilla comparison and FSDP memory per GPU."""
    from tinyllama_cli.plan import PlanOptions, plan_from_options

    result = plan_from_options(
        PlanOptions(
            model=model,
            tokens=tokens,
            gpus=gpus,
            gpu=gpu,
            peak_tflops=peak_tflops,
            gpu_memory_gib=gpu_memory_gib,
            mfu=mfu,
            tokens_per_sec_per_gpu=tokens_per_sec_per_gpu,
            price=price,
            seq_len=seq_len,
            micro_batch=micro_batch,
            activation_checkpointing=activation_checkpointing,
            overhead_gib=overhead_gib,
            memory_margin=memory_margin,
            from_run=from_run,
        )
    )
    if as_json:
        _print_json(result.to_dict())
    else:
        display.show_plan(result)


def models(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """List the model presets with exact parameter counts and training FLOPs per token."""
    from tinyllama_cli.config import describe_presets

    rows = describe_presets()
    if as_json:
        _print_json(rows)
    else:
        display.show_models(rows)


# --- the table -----------------------------------------------------------------------------------

# Every command, in the order `tinyllama --help` lists them.
COMMANDS: dict[str, Callable[..., None]] = {
    "sample-corpus": sample_corpus,
    "prepare-data": prepare_data,
    "merge-data": merge_data,
    "pretrain": pretrain,
    "resume": resume,
    "anneal": anneal,
    "average": average,
    "eval": eval_command,
    "generate": generate,
    "convert": convert,
    "plot": plot_command,
    "plan": plan_command,
    "models": models,
}
for _name, _command in COMMANDS.items():
    app.command(_name)(_command)


def main() -> None:
    """Console-script entry: run the app, turning UserError into one line and exit status 2."""
    if not sys.stderr.isatty():
        # tqdm bars (lm-eval's, datasets', ours in eval) redraw ten times a second; in a log file
        # every redraw stays. tqdm reads TQDM_* overrides when it is imported, which is later.
        os.environ.setdefault("TQDM_MININTERVAL", "30")
    try:
        app()
    except UserError as exc:
        display.show_error(exc)
        sys.exit(2)
