"""Setting a run up: config + data + model -> a complete, checked plan written to RUN_DIR.

`resolve` turns a TrainConfig (flags over YAML) into a checked `Run`, and `create_run_dir`
writes it as the fully resolved config.yaml of a new run dir; `prepare_resume` reloads it,
applies the fields a resumed run may change (those of the `Resume.CHANGE` sections), and
refuses a different value for the others, section by section (the model, the run dir, the data
order), naming what differs; the data itself must have the run's fingerprint. Both run before
any worker starts, so user errors exit 2 with one line. The run dir's paths and files are
`rundir`'s.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyllama_cli import files, rundir
from tinyllama_cli.config import (
    ModelConfig,
    TrainConfig,
    dump_yaml,
    fields_kept_on_resume,
    get_preset,
    load_train_config,
    load_yaml,
    section_fields,
)
from tinyllama_cli.data.dataset import Manifest, PretrainData
from tinyllama_cli.errors import UserError
from tinyllama_cli.train.launch_env import LaunchEnv
from tinyllama_cli.train.schedule import check_schedule, describe_change, lr_at


@dataclass
class Run:
    dir: Path
    train: TrainConfig
    model: ModelConfig
    data_fingerprint: str
    # Things the user should know before training starts (printed by the launcher as warnings).
    notes: list[str] = field(default_factory=list)


def world_size_of(cfg: TrainConfig) -> int:
    """torchrun's WORLD_SIZE when it started this process, else devices x nodes."""
    world = LaunchEnv.read().world_size
    return cfg.launch.devices * cfg.launch.nodes if world is None else world


def with_actual_world(cfg: TrainConfig) -> TrainConfig:
    """Under torchrun the world comes from its variables: record it as devices x nodes."""
    env = LaunchEnv.read()
    if env.world_size is None:
        return cfg
    local = env.world_size if env.local_world_size is None else env.local_world_size
    return cfg.replace(devices=local, nodes=max(1, env.world_size // local))


def check_batch(cfg: TrainConfig, world_size: int) -> int:
    """Gradient accumulation steps = global / (micro x world), or a UserError saying how to fix
    it."""
    micro, total = cfg.speed.micro_batch_size, cfg.data_order.global_batch_size
    per_step = micro * world_size
    if micro < 1 or total < 1:
        raise UserError("--micro-batch-size and --global-batch-size must be at least 1")
    if total % per_step:
        raise UserError(
            f"--global-batch-size {total} is not a multiple of --micro-batch-size "
            f"{micro} x {world_size} worker(s) = {per_step}; change one of them"
        )
    return total // per_step


def check_job(cfg: TrainConfig) -> None:
    """What this job's launch and speed settings need, checked before any worker starts: the
    accelerator (--gpus without CUDA), the batch over the world, the attention backend, the
    HSDP shard groups, and a torch that can --async-save."""
    from tinyllama_cli.train.distributed import dp_shard_size, resolve_accelerator

    accelerator = resolve_accelerator(cfg.launch.accelerator)
    world = world_size_of(cfg)
    check_batch(cfg, world)
    dp_shard_size(cfg.launch.dp_shard, world, cfg.launch.devices, cfg.launch.nodes)
    if cfg.speed.attention == "flash":
        import importlib.util

        if accelerator != "cuda" or importlib.util.find_spec("flash_attn") is None:
            raise UserError(
                "--attention flash needs flash-attn 2 on CUDA (`pip install "
                "'tinyllama-cli[gpu]'` on a GPU machine); use --attention auto or sdpa"
            )
        if cfg.speed.precision == "fp32":
            raise UserError(
                "--attention flash runs in bf16 only; drop --precision fp32 or use --attention sdpa"
            )
    if cfg.checkpointing.async_save:
        from tinyllama_cli.train.checkpoint import async_save_missing

        missing = async_save_missing()
        if missing:
            raise UserError(
                f"--async-save needs {missing}, which this torch lacks; upgrade torch (2.13 is "
                "tested) or drop --async-save"
            )


def _model_config(cfg: TrainConfig, model: ModelConfig | None, manifest: Manifest) -> ModelConfig:
    choice = cfg.model
    if choice.init_from:
        model = init_model_config(choice.init_from)
    elif model is None:
        model = get_preset(choice.model)
    vocab = choice.vocab_size or (model.vocab_size if choice.init_from else manifest.vocab_size)
    if vocab != model.vocab_size:
        if choice.init_from:
            raise UserError(
                f"--vocab-size {vocab} differs from --init-from's vocabulary {model.vocab_size}; "
                "drop --vocab-size"
            )
        model = model.replace(vocab_size=vocab)
    if manifest.vocab_size > model.vocab_size:
        raise UserError(
            f"the data's tokenizer has {manifest.vocab_size} tokens but the model's vocabulary "
            f"is {model.vocab_size}; raise --vocab-size or use the matching tokenizer"
        )
    return model


def init_model_config(path: str) -> ModelConfig:
    from tinyllama_cli.load import model_config_of, resolve_checkpoint

    return model_config_of(*resolve_checkpoint(path))


def resolve(cfg: TrainConfig, model: ModelConfig | None) -> Run:
    """Fill every default that depends on the data or the model, and check the combination."""
    if not cfg.training.data:
        raise UserError("no training data: pass --data DATA_DIR (made by `tinyllama prepare-data`)")
    if not cfg.run.out:
        raise UserError("no run directory: pass --out RUN_DIR")
    manifest = Manifest.load(cfg.training.data)
    model = _model_config(cfg, model, manifest)
    seq_len = cfg.data_order.seq_len or model.block_size
    if not 1 <= seq_len <= model.block_size:
        raise UserError(
            f"--seq-len {seq_len} must be between 1 and the model's context {model.block_size}"
        )
    cfg = with_actual_world(
        cfg.replace(seq_len=seq_len, vocab_size=model.vocab_size, model=model.name)
    )
    cfg = _schedule_length(_batch_from_tokens(cfg))
    check_schedule(cfg.schedule, cfg.training.max_steps)
    _check_intervals(cfg)
    check_downstream(cfg)
    check_job(cfg)
    order = cfg.data_order
    # Checks the mix, the shards and their sizes now.
    data = PretrainData(cfg.training.data, seq_len, order.seed, order.mix)
    notes = schedule_notes(cfg) + validation_notes(data, cfg)
    return Run(Path(cfg.run.out), cfg, model, manifest.fingerprint(), notes)


def _batch_from_tokens(cfg: TrainConfig) -> TrainConfig:
    """--global-batch-tokens, when given, sets --global-batch-size (in sequences of seq_len)."""
    tokens, seq_len = cfg.data_order.global_batch_tokens, cfg.data_order.seq_len
    if tokens is None:
        return cfg
    if tokens < seq_len or tokens % seq_len:
        raise UserError(
            f"--global-batch-tokens {tokens} is not a positive multiple of seq_len "
            f"{seq_len}; pick a multiple (e.g. {seq_len * max(1, tokens // seq_len)})"
        )
    return cfg.replace(global_batch_size=tokens // seq_len)


def _schedule_length(cfg: TrainConfig) -> TrainConfig:
    """--max-steps, or --max-tokens rounded up to whole steps."""
    training = cfg.training
    if training.max_steps is None:
        if training.max_tokens is None:
            raise UserError("give the schedule's length: --max-steps N or --max-tokens N")
        tokens_per_step = cfg.data_order.global_batch_size * cfg.data_order.seq_len
        cfg = cfg.replace(max_steps=math.ceil(training.max_tokens / tokens_per_step))
    if cfg.training.max_steps < 1:
        raise UserError(f"--max-steps must be at least 1 (got {cfg.training.max_steps})")
    return cfg


def _check_intervals(cfg: TrainConfig) -> None:
    for flag, value in (
        ("--log-every", cfg.logging.log_every),
        ("--save-every", cfg.checkpointing.save_every),
    ):
        if value < 1:
            raise UserError(f"{flag} must be at least 1")
    if cfg.logging.eval_every < 0 or cfg.checkpointing.keep_last < 0:
        raise UserError("--eval-every and --keep-last must be >= 0")


def check_downstream(cfg: TrainConfig) -> None:
    """--eval-tasks: every task known and its data read now, not at the first evaluation."""
    d = cfg.downstream
    if d.eval_tasks is None and d.eval_dataset is None:
        return
    from tinyllama_cli.eval.live import check_live_tasks

    check_live_tasks(d.eval_tasks, d.eval_dataset, d.eval_fewshot, d.eval_limit, d.eval_tasks_every)


def schedule_notes(cfg: TrainConfig) -> list[str]:
    """Warn about a schedule that is surely not what was meant: warmup as long as the run."""
    schedule, max_steps = cfg.schedule, cfg.training.max_steps
    if schedule.warmup_steps >= max_steps:
        return [
            (
                f"--warmup-steps {schedule.warmup_steps} >= --max-steps {max_steps}: the "
                f"learning rate only warms up (to {lr_at(max_steps - 1, schedule, max_steps):.2e} "
                f"of --lr {schedule.lr:.2e}) and never decays; lower --warmup-steps (TinyLlama: "
                "2000 of 1.43M steps)"
            )
        ]
    return []


def validation_notes(data: PretrainData, cfg: TrainConfig) -> list[str]:
    """Warn when validation loss will be missing or will not cover every source."""
    if cfg.logging.eval_samples < 1:
        return []
    seq_len = cfg.data_order.seq_len
    windows = {
        name: s.num_windows(seq_len)
        for name, s in zip(data.val_names, data.val_streams)
        if name in data.weights
    }  # the sources the run trains on
    empty = [name for name, n in windows.items() if n == 0]
    if len(empty) == len(windows):
        return [
            (
                f"{cfg.training.data} has no validation data of {seq_len + 1}+ tokens in any "
                "source: no val_loss will be logged; re-run prepare-data with a larger "
                "--val-fraction"
            )
        ]
    if empty:
        return [
            (
                f"source(s) {', '.join(empty)} have no validation window of {seq_len + 1} "
                f"tokens: val_loss covers {', '.join(n for n in windows if n not in empty)} "
                "only; re-run prepare-data with a larger --val-fraction"
            )
        ]
    return []


def write_config(run: Run) -> None:
    """config.yaml: the model, the resolved TrainConfig, the data, and the hardware of this job.

    `train` holds the TrainConfig's fields flat (`TrainConfig.to_dict`), as every earlier
    version wrote it. `hardware` records what `--accelerator auto` resolved to and the world
    size (rewritten by each resume), so `plan --from` can report the devices a run really used;
    `train.accelerator` keeps the user's choice, so a resume elsewhere decides `auto` again. A
    branch's `branch:` (`tinyllama anneal`) is kept.
    """
    from tinyllama_cli.train.distributed import resolve_accelerator

    cfg = run.train
    manifest = Manifest.load(cfg.training.data)
    order = cfg.data_order
    data = PretrainData(cfg.training.data, order.seq_len, order.seed, order.mix)
    path = rundir.config_path(run.dir)
    branch = load_yaml(path).get(rundir.BRANCH_KEY) if path.is_file() else None
    dump_yaml(
        {
            "model": run.model.to_dict(),
            "train": cfg.to_dict(),
            "data": {
                "dir": str(Path(cfg.training.data).resolve()),
                "fingerprint": run.data_fingerprint,
                "weights": data.weights,
                "tokenizer_sha256": manifest.raw["tokenizer"].get("sha256"),
            },
            "hardware": {
                "accelerator": resolve_accelerator(cfg.launch.accelerator),
                "world_size": world_size_of(cfg),
            },
            **({rundir.BRANCH_KEY: branch} if branch else {}),
        },
        path,
    )


def create_run_dir(run: Run) -> None:
    """A new run dir with config.yaml and tokenizer.model; never overwrites without --overwrite."""
    out = run.dir
    if out.exists() and any(out.iterdir()):
        if not run.train.run.overwrite:
            raise UserError(
                f"run directory {out} already exists and is not empty; continue it "
                f"with `tinyllama resume {out}`, pick another --out, or pass "
                "--overwrite"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = Manifest.load(run.train.training.data).tokenizer_file
    if tokenizer.is_file():
        files.copy(tokenizer, rundir.tokenizer_path(out))
    write_config(run)


def load_run(run_dir: Path) -> Run:
    """A run dir's config.yaml as a Run: written by this version (or any earlier one: its
    `train:` fields are flat, as they always were)."""
    path = rundir.config_path(run_dir)
    if not path.is_file():
        raise UserError(
            f"{run_dir} is not a run directory (no config.yaml); start one with "
            "`tinyllama pretrain`"
        )
    raw = load_yaml(path)
    cfg, model = load_train_config(path, {})
    if model is None:
        raise UserError(f"{path} has no model: section; it was not written by `tinyllama pretrain`")
    return Run(run_dir, cfg, model, raw.get("data", {}).get("fingerprint", ""))


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return [
        f"{k} {old.get(k)!r} -> {new.get(k)!r}"
        for k in sorted(set(old) | set(new))
        if old.get(k) != new.get(k)
    ]


def resume_schedule_notes(old: TrainConfig, new: TrainConfig, step: int) -> list[str]:
    """Say so when a resume changes the learning rate at the step it continues from: the cosine
    is fixed by --max-steps, so raising it re-stretches the decay from this step on, while WSD
    in its flat part only moves the decay later (finished steps keep the lr they had; the
    continuation is exact for everything else)."""
    change = describe_change(
        step, old.schedule, old.training.max_steps, new.schedule, new.training.max_steps
    )
    return [] if change is None else [change]


# --- what a resume keeps: one check per Resume.KEEP section --------------------------------------


def _keep_model(
    run: Run, run_dir: str | Path, overrides: dict[str, Any], model_override: ModelConfig | None
) -> None:
    """The `model` section: the architecture (preset or mapping, vocabulary) and the weights the
    run started from are its own."""
    if model_override is not None or "model" in overrides or "vocab_size" in overrides:
        new_model = model_override or get_preset(overrides.get("model", run.model.name))
        new_model = new_model.replace(vocab_size=overrides.get("vocab_size", run.model.vocab_size))
        diff = _differences(run.model.to_dict(), new_model.to_dict())
        if diff:
            raise UserError(
                f"cannot resume {run_dir} with a different model config "
                f"({'; '.join(diff)}); start a new run with `pretrain --init-from` "
                "instead"
            )
    init_from = overrides.get("init_from")
    if init_from is not None and init_from != run.train.model.init_from:
        raise UserError(
            f"cannot resume {run_dir} with a different init_from "
            f"({run.train.model.init_from!r} -> {init_from!r}): its weights come from "
            "its checkpoints; start a new run with `pretrain --init-from` instead"
        )


def _keep_run_dir(
    run: Run, run_dir: str | Path, overrides: dict[str, Any], model_override: ModelConfig | None
) -> None:
    """The `run` section: a resume continues RUN_DIR in place (`overwrite` only applies when
    pretrain creates a run dir)."""
    out = overrides.get("out")
    if out is not None and Path(out).resolve() != run.dir.resolve():
        raise UserError(
            f"resume continues {run.dir} in place; drop --out {out} (to branch off, "
            f"use `pretrain --init-from {run.dir} --out {out}`)"
        )


def _keep_data_order(
    run: Run, run_dir: str | Path, overrides: dict[str, Any], model_override: ModelConfig | None
) -> None:
    """The `data_order` section: another value would replay or skip samples."""
    saved = run.train.to_dict()
    for name in section_fields("data_order"):
        if name in overrides and overrides[name] != saved[name]:
            raise UserError(
                f"cannot resume {run_dir} with a different {name} ({saved[name]!r} -> "
                f"{overrides[name]!r}): it changes the data order; start a new run "
                "instead"
            )


# Every Resume.KEEP section's check, in the order they run (a resume changing two things names
# the first); tests/train/test_train_config.py checks that no KEEP section is missing.
KEEP_CHECKS = {"model": _keep_model, "run": _keep_run_dir, "data_order": _keep_data_order}


def prepare_resume(
    run_dir: str | Path,
    overrides: dict[str, Any],
    model_override: ModelConfig | None = None,
    write: bool = True,
) -> Run:
    """The saved run with the allowed overrides applied; refuses what would change the run.

    The fields of the Resume.KEEP sections are checked against the run (`KEEP_CHECKS`) and
    then left as they are; those of the Resume.CHANGE sections are applied.
    """
    run = load_run(Path(run_dir))
    overrides = {k: v for k, v in overrides.items() if v is not None}
    for check in KEEP_CHECKS.values():
        check(run, run_dir, overrides, model_override)
    kept = fields_kept_on_resume()
    changes = {k: v for k, v in overrides.items() if k not in kept}
    order = run.train.data_order
    if changes.get("max_tokens") is not None and changes.get("max_steps") is None:
        changes["max_steps"] = math.ceil(
            changes["max_tokens"] / (order.global_batch_size * order.seq_len)
        )
    # A job chain's --stop-at-step belongs to one job: it is not inherited. --dp-shard is a shape
    # of the job's workers: kept while --devices and --nodes are, back to its default otherwise.
    launch = run.train.launch
    reshaped = any(
        changes.get(k, getattr(launch, k)) != getattr(launch, k) for k in ("devices", "nodes")
    )
    reset = {"stop_at_step": None, **({"dp_shard": None} if reshaped else {})}
    cfg = load_train_config(None, {**run.train.to_dict(), **reset, **changes})[0]
    cfg = with_actual_world(cfg.replace(out=str(run.dir)))  # the run dir may have been moved
    checkpoints = rundir.list_checkpoints(run.dir)
    state = rundir.read_state(checkpoints[-1]) if checkpoints else {}
    fingerprint = _check_data(run, run_dir, cfg, state)
    step = _checkpoint_step(run, run_dir, cfg, state)
    check_schedule(cfg.schedule, cfg.training.max_steps)
    check_downstream(cfg)
    check_job(cfg)
    resumed = Run(run.dir, cfg, run.model, fingerprint, resume_schedule_notes(run.train, cfg, step))
    if write:
        write_config(resumed)
    return resumed


def _check_data(run: Run, run_dir: str | Path, cfg: TrainConfig, state: dict[str, Any]) -> str:
    """The data at --data (or where the run had it) must be the data the run trained on (the
    newest checkpoint's `state`, else config.yaml, says which); its fingerprint."""
    data = cfg.training.data
    manifest = Manifest.load(data) if Path(data).exists() else None
    if manifest is None:
        raise UserError(f"the run's data dir {data} does not exist; pass --data with the same data")
    fingerprint = manifest.fingerprint()
    expected = state.get("data_fingerprint", run.data_fingerprint)
    if fingerprint != expected:
        raise UserError(
            f"cannot resume {run_dir}: data dir {data} is not the data it was trained "
            f"on (manifest fingerprint {fingerprint[:12]} != {expected[:12]}); pass "
            "--data with the original data dir"
        )
    return fingerprint


def _checkpoint_step(run: Run, run_dir: str | Path, cfg: TrainConfig, state: dict[str, Any]) -> int:
    """The step the run continues from (the newest checkpoint's `state`), after checking that
    the checkpoint holds config.yaml's model and that the schedule goes further."""
    if state.get("model_config") and ModelConfig.from_dict(state["model_config"]) != run.model:
        diff = _differences(state["model_config"], run.model.to_dict())
        raise UserError(
            f"cannot resume {run_dir}: config.yaml's model differs from its "
            f"checkpoint's ({'; '.join(diff)}); restore config.yaml's model: section"
        )
    step = state.get("step", 0)
    if cfg.training.max_steps <= step:
        raise UserError(
            f"{run_dir} is already at step {step} of --max-steps "
            f"{cfg.training.max_steps}; raise --max-steps (or --max-tokens) to train "
            "further"
        )
    return step
