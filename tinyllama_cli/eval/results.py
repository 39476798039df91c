"""What an eval returns: lm-eval's results and, per task, the one number TinyLlama's table shows,
its standard error, the task's chance level and the unigram baseline's number; `--json`'s summary.

Every score has something to compare with, because a tiny model scores near chance and a bare
number says nothing: lm-eval's own `<metric>_stderr`, the chance level of a multiple-choice task
(from the documents lm-eval actually scored) and the unigram baseline (`baseline.py`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyllama_cli.errors import UserError
from tinyllama_cli.eval.tasks import leaf_tasks
from tinyllama_cli.files import write_json as write_json_file
from tinyllama_cli.units import si

# TinyLlama's table: its metric per task and its column title.
TABLE_METRIC = {
    "hellaswag": "acc_norm",
    "openbookqa": "acc_norm",
    "winogrande": "acc",
    "arc_challenge": "acc_norm",
    "arc_easy": "acc_norm",
    "boolq": "acc",
    "piqa": "acc_norm",
}
TITLES = {
    "hellaswag": "HellaSwag",
    "openbookqa": "Obqa",
    "winogrande": "WinoGrande",
    "arc_challenge": "ARC_c",
    "arc_easy": "ARC_e",
    "boolq": "boolq",
    "piqa": "piqa",
}
METRIC_PREFERENCE = ("acc_norm", "acc", "exact_match", "word_perplexity", "perplexity")
ACCURACY = ("acc", "acc_norm")  # the metrics the average (and chance) is about
PERCENT = ("acc", "acc_norm", "exact_match")  # shown in percent; perplexities as they are


@dataclass
class Baseline:
    """The unigram model's table numbers (the same metric per task as the model's), or, with no
    numbers, the one line saying why there is no baseline."""

    scores: dict[str, tuple[str, float]] = field(default_factory=dict)
    stderr: dict[str, float | None] = field(default_factory=dict)
    note: str = ""
    data_dir: str | None = None
    tokens_counted: int = 0
    results: dict[str, Any] | None = None  # lm-eval's results of the baseline run


@dataclass
class EvalResult:
    """lm-eval's full results plus the one number per task TinyLlama's table shows, its standard
    error, the task's chance level and the unigram baseline (None when turned off)."""

    results: dict[str, Any]
    scores: dict[str, tuple[str, float]]  # task -> (metric, value in [0, 1])
    stderr: dict[str, float | None] = field(default_factory=dict)  # lm-eval's <metric>_stderr
    chance: dict[str, float] = field(default_factory=dict)  # multiple-choice acc tasks only
    baseline: Baseline | None = None
    checkpoint: str = ""
    step: int | None = None
    tokens_seen: int | None = None
    samples_per_sec: float = 0.0
    num_samples: int = 0
    threads: tuple[int, str] | None = None  # CPU intra-op threads and why (None on CUDA)

    @property
    def average(self) -> float | None:
        values = [v for m, v in self.scores.values() if m in ACCURACY]
        return sum(values) / len(values) if values else None

    def reference_average(self, values: dict[str, float]) -> float | None:
        """The mean of a reference (chance, unigram) over the tasks `average` covers; None
        unless every one of them has a value (a partial mean would not be comparable)."""
        tasks = [t for t, (m, _) in self.scores.items() if m in ACCURACY]
        if not tasks or any(values.get(t) is None for t in tasks):
            return None
        return sum(values[t] for t in tasks) / len(tasks)

    @property
    def unigram(self) -> dict[str, float]:
        """task -> the unigram baseline's value of the table's metric."""
        return {t: v for t, (_, v) in self.baseline.scores.items()} if self.baseline else {}

    def to_dict(self) -> dict[str, Any]:
        """What `eval --json` prints: the table's numbers (`summary`)."""
        return summary(self)


def eval_result(results: dict[str, Any], task_objects: list[Any], elapsed: float) -> EvalResult:
    """The table's numbers picked out of lm-eval's results of `task_objects` (run in `elapsed`
    seconds): per task its metric, standard error and, for accuracies, the chance level."""
    scores, stderr = {}, {}
    for task in table_names(results["results"], task_objects):
        metrics = results["results"][task]
        picked = pick_metric(task, metrics)
        if picked is not None:
            scores[task] = picked
            stderr[task] = metric_stderr(picked[0], metrics)
    chance = {
        t: c
        for t, c in chance_levels(task_objects).items()
        if t in scores and scores[t][0] in ACCURACY
    }
    num = sum(
        int(n.get("effective", n.get("original", 0))) for n in results.get("n-samples", {}).values()
    )
    return EvalResult(
        results=results,
        scores=scores,
        stderr=stderr,
        chance=chance,
        num_samples=num,
        samples_per_sec=num / elapsed if elapsed > 0 else 0.0,
    )


def table_names(results: dict[str, Any], task_objects: list[Any]) -> list[str]:
    """The table's columns: each task and group that was asked for, once. A group (`mmlu`) is
    its aggregate, lm-eval's own (its `aggregate_metric_list`), not its 57 subtasks; a group
    lm-eval does not aggregate is shown as its tasks. Every subtask stays in `results`."""
    names: list[str] = []
    for obj in task_objects:
        name = getattr(obj, "task_name", None)
        if name is None:  # a group
            group = obj.name
            aggregated = group in results and pick_metric(group, results[group]) is not None
            members = [group] if aggregated else [t.task_name for t in obj.get_all_tasks()]
        else:
            members = [name]
        names += [n for n in members if n in results and n not in names]
    return names


def pick_metric(task: str, metrics: dict[str, Any]) -> tuple[str, float] | None:
    """TinyLlama's metric for its tasks; otherwise the first of acc_norm, acc, exact_match, ..."""
    wanted = [TABLE_METRIC[task]] if task in TABLE_METRIC else list(METRIC_PREFERENCE)
    for metric in wanted:
        for key, value in metrics.items():
            if key.split(",")[0] == metric and isinstance(value, (int, float)):
                return metric, float(value)
    return None


def metric_stderr(metric: str, metrics: dict[str, Any]) -> float | None:
    """lm-eval's `<metric>_stderr,<filter>` of the picked metric; None where lm-eval wrote "N/A"
    (bootstrap_iters=0, a single document, or a metric without a standard error)."""
    for key, value in metrics.items():
        name, _, _ = key.partition(",")
        if name == f"{metric}_stderr" and isinstance(value, (int, float)) and math.isfinite(value):
            return float(value)
    return None


def chance_levels(task_objects: list[Any]) -> dict[str, float]:
    """task -> the accuracy of picking a choice at random: the mean of 1/len(choices) over the
    documents lm-eval scored (its instances, so --limit counts), for multiple-choice tasks; a
    group's is its tasks' combined as lm-eval combines their scores (`group_chance`)."""
    out, sizes = {}, {}
    for task in leaf_tasks(task_objects):
        if getattr(task, "OUTPUT_TYPE", None) != "multiple_choice" or not task.instances:
            continue
        docs = {inst.doc_id: inst.doc for inst in task.instances}
        out[task.task_name] = sum(1 / len(task.doc_to_choice(d)) for d in docs.values()) / len(docs)
        sizes[task.task_name] = len(docs)
    for group in (o for o in task_objects if not hasattr(o, "task_name")):
        value = group_chance(group, out, sizes)
        if value is not None:
            out[group.name] = value
    return out


def group_chance(group: Any, chance: dict[str, float], sizes: dict[str, int]) -> float | None:
    """A group's chance level: its tasks' mean, weighted by documents when the group's first
    aggregate is (`weight_by_size`, as mmlu's), so it is the chance of the group's own number;
    None unless every task has one."""
    tasks = [t.task_name for t in group.get_all_tasks()]
    if not tasks or any(t not in chance for t in tasks):
        return None
    aggregates = group.aggregate_metric_list or []
    by_size = bool(aggregates) and bool(getattr(aggregates[0], "weight_by_size", False))
    weights = {t: sizes[t] if by_size else 1 for t in tasks}
    return sum(chance[t] * weights[t] for t in tasks) / sum(weights.values())


def summary(result: EvalResult) -> dict[str, Any]:
    """The table's numbers for programs (`--json`): per task the score, its standard error, the
    chance level and the unigram baseline's score (None where there is none)."""
    unigram = result.unigram
    scores = {}
    for task, (metric, value) in result.scores.items():
        scores[task] = {
            "metric": metric,
            "value": value,
            "stderr": result.stderr.get(task),
            "chance": result.chance.get(task),
            "unigram": unigram.get(task),
        }
    base = result.baseline
    return {
        "checkpoint": result.checkpoint,
        "step": result.step,
        "tokens_seen": result.tokens_seen,
        "scores": scores,
        "avg": result.average,
        "chance_avg": result.reference_average(result.chance),
        "unigram": None
        if base is None
        else {
            "avg": result.reference_average(unigram),
            "data_dir": base.data_dir,
            "tokens_counted": base.tokens_counted,
            "note": base.note or None,
        },
        "samples_per_sec": result.samples_per_sec,
    }


def write_json(data: Any, path: str | Path, overwrite: bool = True) -> Path:
    """JSON (lm-eval's non-serialisable values as strings), written atomically."""
    from lm_eval.utils import handle_non_serializable

    path = Path(path)
    if path.exists() and not overwrite:
        raise UserError(f"{path} already exists; choose another --output or pass --overwrite")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_file(path, data, default=handle_non_serializable, ensure_ascii=False)
    return path


def human_tokens(n: int | None) -> str:
    """A token count as the table's `tokens` column shows it: 2.46M, 40.9K, or "-"."""
    if n is None:
        return "-"
    return si(n, ".3g", kilo="K")
