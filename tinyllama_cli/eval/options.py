"""`tinyllama eval`'s flags as one value, their checks, and the two calls the command makes.

`run.evaluate` scores one model and `series.evaluate_series` a run's checkpoints; this module is
what sits between those functions and the flags: `--output` must not overwrite a file without
`--overwrite` (checked before any task is built), `--limit` 1 or more is a count and below 1 a
fraction, and the full lm-eval results go to `--output`. Python callers get the same checks as the
command.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinyllama_cli.errors import UserError
from tinyllama_cli.eval.results import EvalResult, write_json
from tinyllama_cli.eval.run import evaluate
from tinyllama_cli.eval.series import SeriesResult, evaluate_series


@dataclass(frozen=True)
class EvalOptions:
    """Everything `tinyllama eval` takes besides the model and the tasks (the flags)."""

    num_fewshot: int | None = None
    limit: float | None = None  # >= 1: samples per task; < 1: a fraction of each task
    batch_size: int = 16
    dtype: str = "fp32"
    device: str | None = None
    seed: int = 1234
    backend: str = "native"
    datasets: list[str] | None = None  # TASK=PATH
    tasks_dir: str | None = None
    output: str | None = None  # lm-eval's full results as JSON
    samples: bool = False  # every sample's inputs and scores in --output
    series_dir: str | None = None  # where a checkpoint series writes (default RUN_DIR/eval)
    overwrite: bool = False
    verbose: bool = False
    threads: int | None = None
    baseline: bool = True
    prompt_lookup: int | None = None  # generation tasks: draft up to N tokens by prompt lookup
    compile: bool = False  # generation tasks: decode_step.py's compiled static-cache step
    compile_mode: str = "default"  # its mode (decode_step.COMPILE_MODES); non-default implies it

    def check(self) -> None:
        """Refuse what would fail only after the evaluation (an --output that exists) and a
        --prompt-lookup the chosen backend cannot use."""
        if self.prompt_lookup is not None and self.prompt_lookup < 1:
            raise UserError(
                f"--prompt-lookup must be at least 1 (tokens drafted per step), "
                f"got {self.prompt_lookup}"
            )
        from tinyllama_cli.decode_step import check_compile_mode  # here: it imports torch

        check_compile_mode(self.compile_mode)
        for flag, given in (
            ("--prompt-lookup", self.prompt_lookup is not None),
            ("--compile", self.compile),
            ("--compile-mode", self.compile_mode != "default"),
        ):
            if given and self.backend != "native":
                raise UserError(
                    f"{flag} speeds up the native backend's generation; "
                    "drop it or use --backend native"
                )
        if self.output and Path(self.output).exists() and not self.overwrite:
            raise UserError(
                f"{self.output} already exists; choose another --output or pass --overwrite"
            )

    def evaluate_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of `evaluate` (and `evaluate_series`) they mean."""
        limit = int(self.limit) if self.limit and self.limit >= 1 else self.limit
        return {
            "num_fewshot": self.num_fewshot,
            "limit": limit,
            "batch_size": self.batch_size,
            "dtype": self.dtype,
            "device": self.device,
            "seed": self.seed,
            "backend": self.backend,
            "datasets": self.datasets,
            "tasks_dir": self.tasks_dir,
            "log_samples": self.samples,
            "verbose": self.verbose,
            "threads": self.threads,
            "baseline": self.baseline,
            "prompt_lookup": self.prompt_lookup,
            "compile": self.compile or self.compile_mode != "default",
            "compile_mode": self.compile_mode,
        }


def evaluate_checkpoint(checkpoint: str | Path, tasks: str, options: EvalOptions) -> EvalResult:
    """One model (run dir: its newest checkpoint), its results written to --output if given."""
    options.check()
    result = evaluate(checkpoint, tasks, **options.evaluate_kwargs())
    if options.output:
        write_json(result.results, options.output, overwrite=True)
    return result


def evaluate_checkpoints(
    run_dir: str | Path,
    tasks: str,
    options: EvalOptions,
    on_checkpoint: Callable[[int, int, Path], None] | None = None,
) -> SeriesResult:
    """Every checkpoint of a run (`--all-checkpoints`): the series files, and --output holding
    each checkpoint's full results under its path."""
    options.check()
    series = evaluate_series(
        run_dir,
        tasks,
        out_dir=options.series_dir,
        overwrite=options.overwrite,
        on_checkpoint=on_checkpoint,
        **options.evaluate_kwargs(),
    )
    if options.output:
        write_json({r.checkpoint: r.results for r in series.rows}, options.output, overwrite=True)
    return series
