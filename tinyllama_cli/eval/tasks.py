"""Task resolution: names, aliases, groups, the generated task YAMLs, building the tasks.

Names are lm-eval task names plus the aliases `arc_e`, `arc_c`, `obqa` and the group `tinyllama`
(the seven tasks of TinyLlama's table). Each of those seven gets a small YAML in a temporary
directory that `include`s lm-eval's built-in task; `--dataset TASK=PATH` adds to it a local
`json`/`parquet` source in the hub dataset's own schema for the split the task scores. When every
requested task is one of these (or in `--tasks-dir`), the TaskManager indexes only that directory
(milliseconds) instead of lm-eval's ~15,000 built-in YAMLs (~10 s).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyllama_cli.errors import UserError

TINYLLAMA_TASKS = (
    "hellaswag",
    "openbookqa",
    "winogrande",
    "arc_challenge",
    "arc_easy",
    "boolq",
    "piqa",
)
ALIASES = {"arc_e": "arc_easy", "arc_c": "arc_challenge", "obqa": "openbookqa"}
GROUPS = {"tinyllama": TINYLLAMA_TASKS}
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


@dataclass
class TaskSetup:
    """The requested task names, the directories their TaskManager indexes, the local files."""

    names: list[str]
    include_paths: list[str]
    local: dict[str, Path] = field(default_factory=dict)


def expand_tasks(spec: str | list[str]) -> list[str]:
    """'tinyllama,arc_e' -> the seven tasks then arc_easy (deduplicated, order kept)."""
    if isinstance(spec, str):
        items = spec.split(",")
    else:
        items = [s for part in spec for s in part.split(",")]
    names: list[str] = []
    for item in (s.strip() for s in items):
        if not item:
            continue
        for name in GROUPS.get(item, (item,)):
            name = ALIASES.get(name, name)
            if name not in names:
                names.append(name)
    if not names:
        raise UserError(
            "no tasks given; pass --tasks, e.g. --tasks tinyllama or --tasks hellaswag,arc_e"
        )
    return names


def parse_datasets(items: list[str] | None) -> dict[str, Path]:
    """['arc_e=test.jsonl', 'arc_e:train=t.jsonl'] -> {'arc_easy': ..., 'arc_easy:train': ...}."""
    out: dict[str, Path] = {}
    for item in items or []:
        task, sep, path = item.partition("=")
        if not sep or not task or not path:
            raise UserError(
                f"--dataset {item!r} is not TASK=PATH; e.g. --dataset hellaswag=hellaswag_val.jsonl"
            )
        name, _, split = task.partition(":")
        name = ALIASES.get(name, name)
        file = Path(path).expanduser().resolve()
        if not file.is_file():
            raise UserError(
                f"--dataset {item}: {path} does not exist; pass a .jsonl or .parquet file"
            )
        if file.suffix not in DATA_BUILDERS:
            raise UserError(f"--dataset {item}: {file.name} is not .jsonl, .json or .parquet")
        if split and split not in SPLIT_KEYS.values():
            raise UserError(
                f"--dataset {item}: unknown split {split!r}; use train, validation or test"
            )
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
        files.update(
            {
                split: local[f"{name}:{split}"]
                for split in SPLIT_KEYS.values()
                if f"{name}:{split}" in local
            }
        )
        builder = DATA_BUILDERS[local[name].suffix]
        lines += [
            f"dataset_path: {builder}",
            "dataset_name: null",
            "dataset_kwargs:",
            "  data_files:",
        ]
        lines += [f"    {split}: {json.dumps(str(path))}" for split, path in files.items()]
        lines += [
            f"{key}: {split if split in files else 'null'}" for key, split in SPLIT_KEYS.items()
        ]
    return "\n".join(lines) + "\n"


def prepare_tasks(
    names: list[str], local: dict[str, Path], tasks_dir: str | Path | None, workdir: Path
) -> tuple[Any, TaskSetup]:
    """A TaskManager that knows every requested name, plus the include paths it indexes."""
    from lm_eval.tasks import TaskManager

    for key in local:
        if key.partition(":")[0] not in names:
            raise UserError(
                f"--dataset {key} names a task that is not in --tasks ({', '.join(names)})"
            )
    include = [str(workdir)]
    if tasks_dir is not None:
        if not Path(tasks_dir).is_dir():
            raise UserError(f"--tasks-dir {tasks_dir} is not a directory of task YAML files")
        include.append(str(Path(tasks_dir).resolve()))
    _write_wrappers(names, local, include[1:], workdir)
    fast = TaskManager(include_path=include, include_defaults=False)
    if all(name in fast.all_tasks for name in names):
        return fast, TaskSetup(names, include, local)
    full = TaskManager(include_path=include)
    unknown = [n for n in names if n not in full.all_tasks]
    if unknown:
        known = list(full.all_tasks) + list(ALIASES) + list(GROUPS)
        close = difflib.get_close_matches(unknown[0], known, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UserError(
            f"unknown task {unknown[0]!r}{hint}; see `lm-eval ls tasks`, "
            "or add YAMLs with --tasks-dir"
        )
    return full, TaskSetup(names, include, local)


def _write_wrappers(
    names: list[str], local: dict[str, Path], extra_dirs: list[str], workdir: Path
) -> None:
    """One wrapper YAML in `workdir` per known task and per other task given local data (its
    YAML and scored split looked up in lm-eval's full index, which then is built once)."""
    from lm_eval.tasks import TaskManager

    builtin_root = _lm_eval_tasks_dir()
    manager = None
    for name in names:
        if name in BUILTIN:
            rel, split = BUILTIN[name]
            yaml_text = _wrapper_yaml(name, builtin_root / rel, split, local)
        elif name in local:
            manager = manager or TaskManager(include_path=extra_dirs or None)
            entry = manager.task_index.get(name)
            if entry is None or entry.yaml_path is None or not entry.cfg:
                raise UserError(
                    f"--dataset {name}=...: {name} is not a single lm-eval task "
                    "YAML; write a task YAML and pass --tasks-dir"
                )
            split = entry.cfg.get("test_split") or entry.cfg.get("validation_split") or "test"
            yaml_text = _wrapper_yaml(name, Path(entry.yaml_path), split, local)
        else:
            continue
        (workdir / f"{name}.yaml").write_text(yaml_text)


def load_tasks(manager: Any, setup: TaskSetup) -> list[Any]:
    """Build each task (this loads its data), turning unreachable data into one clear error."""
    from datasets.exceptions import DatasetNotFoundError

    tasks = []
    for name in setup.names:
        try:
            loaded = manager.load([name])
        except (ConnectionError, FileNotFoundError, DatasetNotFoundError, TimeoutError) as exc:
            if name in setup.local:
                raise UserError(
                    f"task {name}: cannot read {setup.local[name]} "
                    f"({type(exc).__name__}: {exc}); check the file's schema"
                ) from None
            raise UserError(
                f"the data of task {name} cannot be reached (offline, not in the Hugging Face "
                f"cache); pass --dataset {name}=PATH with a local .jsonl or .parquet copy in the "
                "hub dataset's schema"
            ) from None
        except Exception as exc:
            if name in setup.local:
                raise UserError(
                    f"task {name}: {setup.local[name]} does not fit the task "
                    f"({type(exc).__name__}: {exc}); "
                    "the file must use the hub dataset's own field names"
                ) from None
            raise
        tasks.extend(loaded["groups"].values() if loaded["groups"] else loaded["tasks"].values())
    return tasks


def leaf_tasks(task_objects: list[Any]) -> list[Any]:
    """The tasks themselves: groups replaced by their (recursive) member tasks, each once."""
    out: dict[int, Any] = {}
    for obj in task_objects:
        for task in obj.get_all_tasks() if hasattr(obj, "get_all_tasks") else [obj]:
            out.setdefault(id(task), task)
    return list(out.values())
