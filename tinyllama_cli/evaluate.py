"""`tinyllama eval`: lm-evaluation-harness on native checkpoints (or, for comparison, on lm-eval's
own Hugging Face backend), offline when the data is local, with TinyLlama's tables.

Task resolution. Names are lm-eval task names plus the aliases `arc_e`, `arc_c`, `obqa` and the
group `tinyllama` (the seven tasks of TinyLlama's table). Each of those seven gets a small YAML
in a temporary directory that `include`s lm-eval's built-in task; `--dataset TASK=PATH` adds to
it a local `json`/`parquet` source in the hub dataset's own schema for the split the task scores.
When every requested task is one of these (or in `--tasks-dir`), the TaskManager indexes only
that directory (milliseconds) instead of lm-eval's ~15,000 built-in YAMLs (~10 s).

Offline. If every task has local data, or the hub cannot be reached (a 3 s probe), or the user set
HF_HUB_OFFLINE, the Hugging Face libraries run in offline mode, so nothing waits on network
retries; a task whose data is then neither local nor cached fails with one line naming
`--dataset`.
"""

from __future__ import annotations

import contextlib
import csv
import difflib
import json
import logging
import math
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from tinyllama_cli.devices import resolve_device
from tinyllama_cli.dtypes import TORCH_NAMES, canonical_dtype, parse_dtype
from tinyllama_cli.errors import UserError
from tinyllama_cli.files import write_json as write_json_file
from tinyllama_cli.hardware import set_cpu_threads
from tinyllama_cli.rundir import list_checkpoints, read_state
from tinyllama_cli.units import si

TINYLLAMA_TASKS = ("hellaswag", "openbookqa", "winogrande", "arc_challenge", "arc_easy", "boolq", "piqa")
ALIASES = {"arc_e": "arc_easy", "arc_c": "arc_challenge", "obqa": "openbookqa"}
GROUPS = {"tinyllama": TINYLLAMA_TASKS}
# TinyLlama's table: its metric per task and its column title.
TABLE_METRIC = {"hellaswag": "acc_norm", "openbookqa": "acc_norm", "winogrande": "acc",
                "arc_challenge": "acc_norm", "arc_easy": "acc_norm", "boolq": "acc", "piqa": "acc_norm"}
TITLES = {"hellaswag": "HellaSwag", "openbookqa": "Obqa", "winogrande": "WinoGrande",
          "arc_challenge": "ARC_c", "arc_easy": "ARC_e", "boolq": "boolq", "piqa": "piqa"}
# lm-eval's built-in YAML of each (relative to lm_eval/tasks) and the split it scores.
BUILTIN = {
    "hellaswag": ("hellaswag/hellaswag.yaml", "validation"),
    "openbookqa": ("openbookqa/openbookqa.yaml", "test"),
    "winogrande": ("winogrande/default.yaml", "validation"),
    "arc_challenge": ("arc/arc_challenge.yaml", "test"),
    "arc_easy": ("arc/arc_easy.yaml", "test"),
    "boolq": ("super_glue/boolq/default.yaml", "validation"),
    "piqa": ("piqa/piqa.yaml", "validation"),
    # Perplexity (loglikelihood_rolling) over documents in a `page` field, e.g. held-out text.
    "wikitext": ("wikitext/wikitext.yaml", "test"),
}
DATA_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}
SPLIT_KEYS = {"training_split": "train", "validation_split": "validation", "test_split": "test"}
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


@dataclass
class TaskSetup:
    names: list[str]
    include_paths: list[str]
    local: dict[str, Path] = field(default_factory=dict)


# --- task names ----------------------------------------------------------------------------------


def expand_tasks(spec: str | list[str]) -> list[str]:
    """'tinyllama,arc_e' -> the seven tasks then arc_easy (deduplicated, order kept)."""
    items = spec.split(",") if isinstance(spec, str) else [s for part in spec for s in part.split(",")]
    names: list[str] = []
    for item in (s.strip() for s in items):
        if not item:
            continue
        for name in GROUPS.get(item, (item,)):
            name = ALIASES.get(name, name)
            if name not in names:
                names.append(name)
    if not names:
        raise UserError("no tasks given; pass --tasks, e.g. --tasks tinyllama or --tasks hellaswag,arc_e")
    return names


def parse_datasets(items: list[str] | None) -> dict[str, Path]:
    """['arc_e=test.jsonl', 'arc_e:train=t.jsonl'] -> {'arc_easy': ..., 'arc_easy:train': ...}."""
    out: dict[str, Path] = {}
    for item in items or []:
        task, sep, path = item.partition("=")
        if not sep or not task or not path:
            raise UserError(f"--dataset {item!r} is not TASK=PATH; e.g. --dataset hellaswag=hellaswag_val.jsonl")
        name, _, split = task.partition(":")
        name = ALIASES.get(name, name)
        file = Path(path).expanduser().resolve()
        if not file.is_file():
            raise UserError(f"--dataset {item}: {path} does not exist; pass a .jsonl or .parquet file")
        if file.suffix not in DATA_BUILDERS:
            raise UserError(f"--dataset {item}: {file.name} is not .jsonl, .json or .parquet")
        if split and split not in SPLIT_KEYS.values():
            raise UserError(f"--dataset {item}: unknown split {split!r}; use train, validation or test")
        out[f"{name}:{split}" if split else name] = file
    return out


def _lm_eval_tasks_dir() -> Path:
    import lm_eval

    return Path(lm_eval.__file__).parent / "tasks"


def _wrapper_yaml(name: str, base_yaml: Path, scored_split: str, local: dict[str, Path]) -> str:
    """A task YAML that includes the built-in one, with local data files if given."""
    lines = [f"include: {json.dumps(str(base_yaml))}", f"task: {name}"]
    if name in local:
        files = {scored_split: local[name]}
        files.update({split: local[f"{name}:{split}"] for split in SPLIT_KEYS.values() if f"{name}:{split}" in local})
        builder = DATA_BUILDERS[local[name].suffix]
        lines += [f"dataset_path: {builder}", "dataset_name: null", "dataset_kwargs:", "  data_files:"]
        lines += [f"    {split}: {json.dumps(str(path))}" for split, path in files.items()]
        lines += [f"{key}: {split if split in files else 'null'}" for key, split in SPLIT_KEYS.items()]
    return "\n".join(lines) + "\n"


def prepare_tasks(names: list[str], local: dict[str, Path], tasks_dir: str | Path | None,
                  workdir: Path) -> tuple[Any, TaskSetup]:
    """A TaskManager that knows every requested name, plus the include paths it indexes."""
    from lm_eval.tasks import TaskManager

    for key in local:
        if key.partition(":")[0] not in names:
            raise UserError(f"--dataset {key} names a task that is not in --tasks ({', '.join(names)})")
    include = [str(workdir)]
    if tasks_dir is not None:
        if not Path(tasks_dir).is_dir():
            raise UserError(f"--tasks-dir {tasks_dir} is not a directory of task YAML files")
        include.append(str(Path(tasks_dir).resolve()))
    builtin_root = _lm_eval_tasks_dir()
    manager = None
    for name in names:
        if name in BUILTIN:
            rel, split = BUILTIN[name]
            yaml_text = _wrapper_yaml(name, builtin_root / rel, split, local)
        elif name in local:  # another built-in task: find its YAML and scored split in the full index
            manager = manager or TaskManager(include_path=include[1:] or None)
            entry = manager.task_index.get(name)
            if entry is None or entry.yaml_path is None or not entry.cfg:
                raise UserError(f"--dataset {name}=...: {name} is not a single lm-eval task YAML; write a task YAML and pass --tasks-dir")
            split = entry.cfg.get("test_split") or entry.cfg.get("validation_split") or "test"
            yaml_text = _wrapper_yaml(name, Path(entry.yaml_path), split, local)
        else:
            continue
        (workdir / f"{name}.yaml").write_text(yaml_text)
    fast = TaskManager(include_path=include, include_defaults=False)
    if all(name in fast.all_tasks for name in names):
        return fast, TaskSetup(names, include, local)
    full = TaskManager(include_path=include)
    unknown = [n for n in names if n not in full.all_tasks]
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(full.all_tasks) + list(ALIASES) + list(GROUPS), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UserError(f"unknown task {unknown[0]!r}{hint}; see `lm-eval ls tasks`, or add YAMLs with --tasks-dir")
    return full, TaskSetup(names, include, local)


def load_tasks(manager: Any, setup: TaskSetup) -> list[Any]:
    """Build each task (this loads its data), turning unreachable data into one clear error."""
    from datasets.exceptions import DatasetNotFoundError

    tasks = []
    for name in setup.names:
        try:
            loaded = manager.load([name])
        except (ConnectionError, FileNotFoundError, DatasetNotFoundError, TimeoutError) as exc:
            if name in setup.local:
                raise UserError(f"task {name}: cannot read {setup.local[name]} ({type(exc).__name__}: {exc}); check the file's schema") from None
            raise UserError(
                f"the data of task {name} cannot be reached (offline, not in the Hugging Face cache); "
                f"pass --dataset {name}=PATH with a local .jsonl or .parquet copy in the hub dataset's schema"
            ) from None
        except Exception as exc:
            if name in setup.local:
                raise UserError(f"task {name}: {setup.local[name]} does not fit the task ({type(exc).__name__}: {exc}); "
                                "the file must use the hub dataset's own field names") from None
            raise
        tasks.extend(loaded["groups"].values() if loaded["groups"] else loaded["tasks"].values())
    return tasks


# --- offline mode ----------------------------------------------------------------------------------


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hugging Face hub opens within `timeout` seconds."""
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").upper() in ("1", "ON", "YES", "TRUE")


def decide_offline(names: list[str], local: dict[str, Path]) -> bool:
    if _env_true("HF_HUB_OFFLINE") or _env_true("HF_DATASETS_OFFLINE"):
        return True
    if all(name in local for name in names):
        return True
    return not hub_reachable()


@contextlib.contextmanager
def offline_mode(enabled: bool) -> Iterator[None]:
    """Put huggingface_hub, datasets and transformers in offline mode for the block.

    The libraries read the environment at import time, so already-imported modules get their
    flags set too; everything is restored afterwards.
    """
    if not enabled:
        yield
        return
    env_names = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
    saved_env = {k: os.environ.get(k) for k in env_names}
    os.environ.update({k: "1" for k in env_names})
    patches = [("huggingface_hub.constants", "HF_HUB_OFFLINE"), ("datasets.config", "HF_HUB_OFFLINE"),
               ("datasets.config", "HF_DATASETS_OFFLINE")]
    saved_attrs = []
    for module_name, attr in patches:
        module = sys.modules.get(module_name)
        if module is not None and hasattr(module, attr):
            saved_attrs.append((module, attr, getattr(module, attr)))
            setattr(module, attr, True)
    try:
        yield
    finally:
        for module, attr, value in saved_attrs:
            setattr(module, attr, value)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --- running -------------------------------------------------------------------------------------


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


def leaf_tasks(task_objects: list[Any]) -> list[Any]:
    """The tasks themselves: groups replaced by their (recursive) member tasks, each once."""
    out: dict[int, Any] = {}
    for obj in task_objects:
        for task in obj.get_all_tasks() if hasattr(obj, "get_all_tasks") else [obj]:
            out.setdefault(id(task), task)
    return list(out.values())


def chance_levels(task_objects: list[Any]) -> dict[str, float]:
    """task -> the accuracy of picking a choice at random: the mean of 1/len(choices) over the
    documents lm-eval scored (its instances, so --limit counts), for multiple-choice tasks."""
    out = {}
    for task in leaf_tasks(task_objects):
        if getattr(task, "OUTPUT_TYPE", None) != "multiple_choice" or not task.instances:
            continue
        docs = {inst.doc_id: inst.doc for inst in task.instances}
        out[task.task_name] = sum(1 / len(task.doc_to_choice(d)) for d in docs.values()) / len(docs)
    return out


@contextlib.contextmanager
def _quiet_lm_eval(verbose: bool) -> Iterator[None]:
    """lm-eval's INFO/WARNING logs and datasets' progress bars off unless --verbose; lm-eval's
    evaluation progress bars stay (they go to stderr)."""
    import datasets

    loggers = [logging.getLogger(n) for n in ("lm_eval", "lm-eval", "datasets", "transformers")]
    levels = [lg.level for lg in loggers]
    bars = datasets.is_progress_bar_enabled()
    if not verbose:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
        if bars:
            datasets.enable_progress_bars()


def build_lm(checkpoint: str | Path, backend: str, dtype: str, device: str, batch_size: int,
             seed: int, workdir: Path) -> tuple[Any, Any]:
    """(lm-eval LM, LoadedModel) for the native adapter or lm-eval's HFLM on a converted copy."""
    from tinyllama_cli.load import load_model

    dtype, torch_dtype = parse_dtype(dtype, "--dtype")
    if backend not in ("native", "hf"):
        raise UserError(f"unknown --backend {backend!r}; choose native or hf")
    if backend == "native":
        from tinyllama_cli.eval_lm import NativeLM

        loaded = load_model(checkpoint, device=device, dtype=torch_dtype)
        if loaded.tokenizer is None:
            raise UserError(f"{loaded.source} has no tokenizer.model beside it or in its run directory; copy the tokenizer there")
        return NativeLM(loaded.model, loaded.tokenizer, batch_size=batch_size, seed=seed), loaded
    try:
        from lm_eval.models.huggingface import HFLM
    except ImportError as exc:
        raise UserError(f"--backend hf needs transformers and accelerate ({exc}); pip install transformers accelerate") from None
    from tinyllama_cli.formats.hf import save_hf

    loaded = load_model(checkpoint)
    if loaded.kind == "hf":
        hf_dir = loaded.source
    else:
        if loaded.tokenizer is None:
            raise UserError(f"{loaded.source} has no tokenizer.model beside it or in its run directory; copy the tokenizer there")
        hf_dir = save_hf(loaded.model, workdir / "hf", loaded.tokenizer, dtype=torch_dtype)
    lm = HFLM(pretrained=str(hf_dir), dtype=TORCH_NAMES[dtype], batch_size=batch_size, device=device)
    return lm, loaded


@contextlib.contextmanager
def _quiet_git_hash() -> Iterator[None]:
    """lm-eval records `git describe --always` of the working directory in its results, with
    git's stderr left on ours: outside a git checkout every eval printed "fatal: not a git
    repository". The same lookup with git's stderr discarded, for the duration of the block."""
    from lm_eval import evaluator
    from lm_eval.loggers.utils import get_commit_from_path

    def quiet_git_commit_hash() -> str | None:
        try:
            out = subprocess.check_output(["git", "describe", "--always"],
                                          stderr=subprocess.DEVNULL)
            return out.strip().decode()
        except (subprocess.CalledProcessError, FileNotFoundError):
            return get_commit_from_path(os.getcwd())

    original = evaluator.get_git_commit_hash
    evaluator.get_git_commit_hash = quiet_git_commit_hash
    try:
        yield
    finally:
        evaluator.get_git_commit_hash = original


def evaluate(checkpoint: str | Path, tasks: str | list[str], *, backend: str = "native",
             num_fewshot: int | None = None, limit: float | None = None, batch_size: int = 16,
             dtype: str = "fp32", device: str | None = None, seed: int = 1234,
             datasets: list[str] | dict[str, Path] | None = None, tasks_dir: str | Path | None = None,
             log_samples: bool = False, bootstrap_iters: int = 100000, verbose: bool = False,
             baseline: bool = True, baseline_tokens: int | None = None,
             threads: int | None = None) -> EvalResult:
    """Evaluate one model (run, checkpoint or HF directory) on lm-eval tasks; with `baseline`,
    also the unigram model of the run's training data on the same tasks (`unigram_baseline`).

    On CPU, `threads` (default: the idle cores, `hardware.set_cpu_threads`) sets torch's threads."""
    dtype = canonical_dtype(dtype, "--dtype")  # a bad spelling fails before any task is built
    names = expand_tasks(tasks)
    local = datasets if isinstance(datasets, dict) else parse_datasets(datasets)
    device = str(resolve_device(device))  # a string, as lm-eval's HFLM takes it
    threads_used = set_cpu_threads(threads) if device == "cpu" else None
    run_options = {"num_fewshot": num_fewshot, "limit": limit, "seed": seed,
                   "bootstrap_iters": bootstrap_iters}
    with tempfile.TemporaryDirectory(prefix="tinyllama-eval-") as tmp, _quiet_lm_eval(verbose), \
            offline_mode(decide_offline(names, local)):
        workdir = Path(tmp)
        (workdir / "tasks").mkdir()
        manager, setup = prepare_tasks(names, local, tasks_dir, workdir / "tasks")
        task_objects = load_tasks(manager, setup)
        lm, loaded = build_lm(checkpoint, backend, dtype, device, batch_size, seed, workdir)
        result = run_tasks(lm, task_objects, manager, log_samples=log_samples, **run_options)
        if baseline:
            result.baseline = unigram_baseline(loaded, task_objects, manager,
                                               budget=baseline_tokens, **run_options)
    start_state = read_state(loaded.source) if loaded.kind == "native" else {}
    result.checkpoint = str(loaded.source)
    result.threads = threads_used
    result.step = start_state.get("step")
    result.tokens_seen = start_state.get("tokens_seen")
    return result


def run_tasks(lm: Any, task_objects: list[Any], manager: Any, *, num_fewshot: int | None,
              limit: float | None, seed: int, log_samples: bool, bootstrap_iters: int) -> EvalResult:
    """lm_eval.simple_evaluate on already-built tasks; the table's numbers picked out."""
    import time

    import lm_eval

    start = time.perf_counter()
    with _quiet_git_hash():
        results = lm_eval.simple_evaluate(
            model=lm, tasks=task_objects, num_fewshot=num_fewshot, limit=limit,
            task_manager=manager, log_samples=log_samples, bootstrap_iters=bootstrap_iters,
            random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed,
            fewshot_random_seed=seed,
        )
    elapsed = time.perf_counter() - start
    scores, stderr = {}, {}
    for task, metrics in results["results"].items():
        picked = pick_metric(task, metrics)
        if picked is not None:
            scores[task] = picked
            stderr[task] = metric_stderr(picked[0], metrics)
    chance = {t: c for t, c in chance_levels(task_objects).items()
              if t in scores and scores[t][0] in ACCURACY}
    num = sum(int(n.get("effective", n.get("original", 0))) for n in results.get("n-samples", {}).values())
    return EvalResult(results=results, scores=scores, stderr=stderr, chance=chance, num_samples=num,
                      samples_per_sec=num / elapsed if elapsed > 0 else 0.0)


def unigram_baseline(loaded: Any, task_objects: list[Any], manager: Any, *,
                     budget: int | None = None, **run_options: Any) -> Baseline:
    """The unigram model of the run's training data run through lm-eval on the same (already
    built) tasks, same few-shot, limit and seed; a Baseline with only a note when the training
    data cannot be found or read. Generation tasks are left out (it scores log-likelihoods)."""
    from tinyllama_cli.eval_baseline import (
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
    tasks = [t for t in leaf_tasks(task_objects)
             if getattr(t, "OUTPUT_TYPE", None) != "generate_until"]
    if not tasks:
        return Baseline(note="every task generates text; the unigram model only scores")
    lm = UnigramLM(unigram, loaded.tokenizer, loaded.config.block_size)
    run = run_tasks(lm, tasks, manager, log_samples=False, **run_options)
    return Baseline(scores=run.scores, stderr=run.stderr, data_dir=str(unigram.data_dir),
                    tokens_counted=unigram.tokens_counted, results=run.results)


def summary(result: EvalResult) -> dict[str, Any]:
    """The table's numbers for programs (`--json`): per task the score, its standard error, the
    chance level and the unigram baseline's score (None where there is none)."""
    unigram = result.unigram
    scores = {}
    for task, (metric, value) in result.scores.items():
        scores[task] = {"metric": metric, "value": value, "stderr": result.stderr.get(task),
                        "chance": result.chance.get(task), "unigram": unigram.get(task)}
    base = result.baseline
    return {
        "checkpoint": result.checkpoint, "step": result.step, "tokens_seen": result.tokens_seen,
        "scores": scores, "avg": result.average,
        "chance_avg": result.reference_average(result.chance),
        "unigram": None if base is None else {
            "avg": result.reference_average(unigram), "data_dir": base.data_dir,
            "tokens_counted": base.tokens_counted, "note": base.note or None},
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


# --- checkpoint series ---------------------------------------------------------------------------


@dataclass
class SeriesResult:
    rows: list[EvalResult]
    tasks: list[str]
    files: list[Path]

    @property
    def baseline(self) -> Baseline | None:
        """The run's unigram baseline (computed once, with the first checkpoint)."""
        return self.rows[0].baseline if self.rows else None

    def to_records(self) -> list[dict[str, Any]]:
        """What `eval --all-checkpoints --json` prints: one record per checkpoint
        (`series_records`)."""
        return series_records(self.rows, self.tasks)


def evaluate_series(run_dir: str | Path, tasks: str | list[str], out_dir: str | Path | None = None,
                    on_checkpoint: Callable[[int, int, Path], None] | None = None,
                    overwrite: bool = False, baseline: bool = True, **kwargs: Any) -> SeriesResult:
    """Every checkpoint of a run, oldest first: TinyLlama's intermediate-checkpoint table as
    JSON, CSV and one PNG per task metric (and the average) against tokens seen. The unigram
    baseline does not depend on the checkpoint: it runs once, with the first one."""
    checkpoints = list_checkpoints(run_dir)
    if not checkpoints:
        raise UserError(f"{run_dir} has no complete checkpoints/step-*; --all-checkpoints needs a run directory")
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "eval"
    targets = [out / "series.json", out / "series.csv"]
    if not overwrite and any(p.exists() for p in targets):
        raise UserError(f"{out} already holds series.json/series.csv; choose another --series-dir or pass --overwrite")
    rows = []
    for i, checkpoint in enumerate(checkpoints):
        if on_checkpoint is not None:
            on_checkpoint(i, len(checkpoints), checkpoint)
        rows.append(evaluate(checkpoint, tasks, baseline=baseline and i == 0, **kwargs))
    names = [t for t in expand_tasks(tasks) if any(t in r.scores for r in rows)]
    files = write_series(rows, names, out)
    return SeriesResult(rows=rows, tasks=names, files=files)


def series_records(rows: list[EvalResult], tasks: list[str]) -> list[dict[str, Any]]:
    """One record per checkpoint: per task its metric and standard error, then the task's chance
    level and the unigram baseline (the same in every record), then the averages."""
    unigram = rows[0].unigram if rows else {}
    records = []
    for r in rows:
        record: dict[str, Any] = {"checkpoint": r.checkpoint, "step": r.step, "tokens_seen": r.tokens_seen}
        for task in tasks:
            metric, value = r.scores.get(task, ("", None))
            column = f"{task}/{metric}" if metric else task
            record[column] = value
            record[f"{column}_stderr"] = r.stderr.get(task)
            record[f"{task}/chance"] = r.chance.get(task)
            record[f"{task}/unigram"] = unigram.get(task)
        record["avg"] = r.average
        record["avg/chance"] = r.reference_average(r.chance)
        record["avg/unigram"] = r.reference_average(unigram)
        records.append(record)
    return records


def write_series(rows: list[EvalResult], tasks: list[str], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    records = series_records(rows, tasks)
    files = [write_json(records, out / "series.json")]
    tmp = out / "series.csv.tmp"
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    tmp.replace(out / "series.csv")
    files.append(out / "series.csv")
    metrics = {t: next(r.scores[t][0] for r in rows if t in r.scores) for t in tasks}
    plots = [(f"{t}/{m}", t, m in PERCENT) for t, m in metrics.items()] + [("avg", "avg", True)]
    return files + plot_series(records, out, plots)


def plot_series(records: list[dict[str, Any]], out: Path,
                plots: list[tuple[str, str, bool]]) -> list[Path]:
    """One PNG per (metric column, prefix, in percent): the metric against tokens seen (step when
    unknown), with the `prefix/chance` and `prefix/unigram` columns as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    use_tokens = all(r["tokens_seen"] is not None for r in records)
    xs = [r["tokens_seen"] if use_tokens else r["step"] for r in records]
    files = []
    for column, prefix, percent in plots:
        points = [(x, r[column]) for x, r in zip(xs, records) if r[column] is not None and x is not None]
        if not points:
            continue
        scale = 100 if percent else 1
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot([p[0] for p in points], [scale * p[1] for p in points], marker="o", label="model")
        for ref, style in (("chance", "--"), ("unigram", ":")):
            value = records[0].get(f"{prefix}/{ref}")
            if value is not None:
                ax.axhline(scale * value, linestyle=style, color="gray", label=ref)
        ax.set_xlabel("tokens seen" if use_tokens else "step")
        ax.set_ylabel(f"{column} (%)" if percent else column)
        if "perplexity" in column:
            ax.set_yscale("log")  # a unigram's perplexity is orders of magnitude above a model's
        ax.set_title(column)
        ax.grid(alpha=0.3)
        if len(ax.get_lines()) > 1:
            ax.legend(fontsize="small")
        fig.tight_layout()
        path = out / (column.replace("/", "_") + ".png")
        tmp = path.with_name(path.stem + ".tmp.png")
        fig.savefig(tmp, dpi=100)
        plt.close(fig)
        tmp.replace(path)
        files.append(path)
    return files


def human_tokens(n: int | None) -> str:
    if n is None:
        return "-"
    return si(n, ".3g", kilo="K")
