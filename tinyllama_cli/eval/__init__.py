"""`tinyllama eval`: lm-evaluation-harness on native checkpoints (or, for comparison, on
lm-eval's own Hugging Face backend), offline when the data is local, with TinyLlama's tables.

One module per concern, imported one way (top to bottom):

- `options`: the command's flags as one value and its two calls (`--output` checked first)
- `series`: every checkpoint of a run -> series.json, series.csv, PNGs
- `run`: `evaluate` -- tasks, then the model as an lm-eval LM, lm-eval, the unigram baseline
- `harness`: lm-eval's `simple_evaluate` without its process-wide side effects
- `results`: `EvalResult`, the table's metric per task, standard errors, chance, `summary`
- `tasks` (names, aliases, groups, generated YAMLs) and `offline` (the offline switch)
- `native_lm` (`NativeLM`) and `baseline` (`UnigramLM`), over `tokenization` (`LlamaTokenLM`)

Importing the package loads neither torch nor lm-eval: `NativeLM` and `UnigramLM` subclass
lm-eval's `TemplateLM`, so they are imported when first asked for (`__getattr__` below), and the
CLI's argument checks fail fast.
"""

from __future__ import annotations

from typing import Any

from tinyllama_cli.eval.options import EvalOptions, evaluate_checkpoint, evaluate_checkpoints
from tinyllama_cli.eval.results import (
    PERCENT,
    TITLES,
    Baseline,
    EvalResult,
    human_tokens,
    summary,
    write_json,
)
from tinyllama_cli.eval.run import evaluate
from tinyllama_cli.eval.series import SeriesResult, evaluate_series, series_records
from tinyllama_cli.eval.tasks import ALIASES, GROUPS, TINYLLAMA_TASKS, expand_tasks, parse_datasets

__all__ = [
    "ALIASES",
    "GROUPS",
    "PERCENT",
    "TINYLLAMA_TASKS",
    "TITLES",
    "Baseline",
    "EvalOptions",
    "EvalResult",
    "NativeLM",
    "SeriesResult",
    "UnigramLM",
    "evaluate",
    "evaluate_checkpoint",
    "evaluate_checkpoints",
    "evaluate_series",
    "expand_tasks",
    "human_tokens",
    "parse_datasets",
    "series_records",
    "summary",
    "write_json",
]


def __getattr__(name: str) -> Any:
    """`NativeLM` and `UnigramLM` on first use (they import torch and lm-eval)."""
    if name == "NativeLM":
        from tinyllama_cli.eval.native_lm import NativeLM

        return NativeLM
    if name == "UnigramLM":
        from tinyllama_cli.eval.baseline import UnigramLM

        return UnigramLM
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
