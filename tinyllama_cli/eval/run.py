"""One eval: `evaluate` builds the tasks (their data first, so a missing dataset fails before the
model loads), loads the model as an lm-eval LM (the native adapter, or lm-eval's own HFLM on a
converted copy), runs lm-eval, and scores the unigram baseline on the same task objects.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from tinyllama_cli.devices import resolve_device
from tinyllama_cli.dtypes import TORCH_NAMES, canonical_dtype, parse_dtype
from tinyllama_cli.errors import UserError
from tinyllama_cli.eval.harness import quiet_lm_eval, run_tasks
from tinyllama_cli.eval.offline import decide_offline, offline_mode
from tinyllama_cli.eval.results import Baseline, EvalResult
from tinyllama_cli.eval.tasks import (
    expand_tasks,
    leaf_tasks,
    load_tasks,
    parse_datasets,
    prepare_tasks,
)
from tinyllama_cli.hardware import set_cpu_threads
from tinyllama_cli.rundir import read_state

NO_TOKENIZER = (
    "{source} has no tokenizer.model beside it or in its run directory; copy the tokenizer there"
)


def evaluate(
    checkpoint: str | Path,
    tasks: str | list[str],
    *,
    backend: str = "native",
    num_fewshot: int | None = None,
    limit: float | None = None,
    batch_size: int = 16,
    dtype: str = "fp32",
    device: str | None = None,
    seed: int = 1234,
    datasets: list[str] | dict[str, Path] | None = None,
    tasks_dir: str | Path | None = None,
    log_samples: bool = False,
    bootstrap_iters: int = 100000,
    verbose: bool = False,
    baseline: bool = True,
    baseline_tokens: int | None = None,
    threads: int | None = None,
    prompt_lookup: int | None = None,
    compile: bool = False,
    compile_mode: str = "default",
) -> EvalResult:
    """Evaluate one model (run, checkpoint or HF directory) on lm-eval tasks; with `baseline`,
    also the unigram model of the run's training data on the same tasks (`unigram_baseline`).

    On CPU, `threads` (default: the idle cores, `hardware.set_cpu_threads`) sets torch's
    threads. `prompt_lookup` (native backend) speeds up generation tasks by prompt lookup
    decoding: the same text, from fewer model forwards; `compile` decodes them with the compiled
    static-cache step (decode_step.py), in `compile_mode` ("default" or "max-autotune")."""
    dtype = canonical_dtype(dtype, "--dtype")  # a bad spelling fails before any task is built
    names = expand_tasks(tasks)
    local = datasets if isinstance(datasets, dict) else parse_datasets(datasets)
    device = str(resolve_device(device))  # a string, as lm-eval's HFLM takes it
    threads_used = set_cpu_threads(threads) if device == "cpu" else None
    if compile:
        from tinyllama_cli.decode_step import require_compiler

        require_compiler(device)
    run_options = {
        "num_fewshot": num_fewshot,
        "limit": limit,
        "seed": seed,
        "bootstrap_iters": bootstrap_iters,
    }
    with (
        tempfile.TemporaryDirectory(prefix="tinyllama-eval-") as tmp,
        quiet_lm_eval(verbose),
        offline_mode(decide_offline(names, local)),
    ):
        workdir = Path(tmp)
        (workdir / "tasks").mkdir()
        manager, setup = prepare_tasks(names, local, tasks_dir, workdir / "tasks")
        task_objects = load_tasks(manager, setup)
        lm, loaded = build_lm(
            checkpoint,
            backend,
            dtype,
            device,
            batch_size,
            seed,
            workdir,
            prompt_lookup,
            compile,
            compile_mode,
        )
        result = run_tasks(lm, task_objects, manager, log_samples=log_samples, **run_options)
        if baseline:
            result.baseline = unigram_baseline(
                loaded, task_objects, manager, budget=baseline_tokens, **run_options
            )
    start_state = read_state(loaded.source) if loaded.kind == "native" else {}
    result.checkpoint = str(loaded.source)
    result.threads = threads_used
    result.step = start_state.get("step")
    result.tokens_seen = start_state.get("tokens_seen")
    return result


def build_lm(
    checkpoint: str | Path,
    backend: str,
    dtype: str,
    device: str,
    batch_size: int,
    seed: int,
    workdir: Path,
    prompt_lookup: int | None = None,
    compile: bool = False,
    compile_mode: str = "default",
) -> tuple[Any, Any]:
    """(lm-eval LM, LoadedModel) for the native adapter or lm-eval's HFLM on a converted copy."""
    from tinyllama_cli.load import load_model

    dtype, torch_dtype = parse_dtype(dtype, "--dtype")
    if backend not in ("native", "hf"):
        raise UserError(f"unknown --backend {backend!r}; choose native or hf")
    if backend == "native":
        from tinyllama_cli.eval.native_lm import NativeLM
        from tinyllama_cli.generate import prepare_for_decoding

        loaded = load_model(checkpoint, device=device, dtype=torch_dtype)
        if loaded.tokenizer is None:
            raise UserError(NO_TOKENIZER.format(source=loaded.source))
        # generate's weight preparation: faster generate_until steps, scoring unchanged
        prepare_for_decoding(loaded.model)
        return NativeLM(
            loaded.model,
            loaded.tokenizer,
            batch_size=batch_size,
            seed=seed,
            prompt_lookup=prompt_lookup,
            compile=compile,
            compile_mode=compile_mode,
        ), loaded
    try:
        from lm_eval.models.huggingface import HFLM
    except ImportError as exc:
        raise UserError(
            f"--backend hf needs transformers and accelerate ({exc}); "
            "pip install transformers accelerate"
        ) from None
    from tinyllama_cli.formats.hf import save_hf

    loaded = load_model(checkpoint)
    if loaded.kind == "hf":
        hf_dir = loaded.source
    else:
        if loaded.tokenizer is None:
            raise UserError(NO_TOKENIZER.format(source=loaded.source))
        hf_dir = save_hf(loaded.model, workdir / "hf", loaded.tokenizer, dtype=torch_dtype)
    lm = HFLM(
        pretrained=str(hf_dir), dtype=TORCH_NAMES[dtype], batch_size=batch_size, device=device
    )
    return lm, loaded


def unigram_baseline(
    loaded: Any,
    task_objects: list[Any],
    manager: Any,
    *,
    budget: int | None = None,
    **run_options: Any,
) -> Baseline:
    """The unigram model of the run's training data run through lm-eval on the same (already
    built) tasks, same few-shot, limit and seed; a Baseline with only a note when the training
    data cannot be found or read. Generation tasks are left out (it scores log-likelihoods)."""
    from tinyllama_cli.eval.baseline import (
        DEFAULT_BUDGET,
        UnigramLM,
        count_unigrams,
        find_training_data,
    )

    training, note = find_training_data(loaded.source, loaded.kind, loaded.tokenizer)
    if training is None:
        return Baseline(note=note)
    try:
        unigram = count_unigrams(training, loaded.config.vocab_size, budget or DEFAULT_BUDGET)
    except UserError as exc:
        return Baseline(note=str(exc))
    leaves = leaf_tasks(task_objects)
    tasks = [t for t in leaves if getattr(t, "OUTPUT_TYPE", None) != "generate_until"]
    if not tasks:
        return Baseline(note="every task generates text; the unigram model only scores")
    if len(tasks) == len(leaves):  # the same objects, groups included: lm-eval aggregates them
        tasks = task_objects
    lm = UnigramLM(unigram, loaded.tokenizer, loaded.config.block_size)
    run = run_tasks(lm, tasks, manager, log_samples=False, **run_options)
    return Baseline(
        scores=run.scores,
        stderr=run.stderr,
        data_dir=str(unigram.data_dir),
        tokens_counted=unigram.tokens_counted,
        results=run.results,
    )
