"""Setting a run up: config + data + model -> a complete, checked plan written to RUN_DIR.

`resolve` turns a TrainConfig (flags over YAML) into a checked `Run`, and `create_run_dir`
writes it as the fully resolved config.yaml of a new run dir; `prepare_resume` reloads it,
applies the flags a resumed run may change, and refuses the ones that would make it a different
run (model, data, data order), naming what differs. Both run before any worker starts, so user
errors exit 2 with one line. The run dir's paths and files are `rundir`'s.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyllama_cli import files, rundir
from tinyllama_cli.config import ModelConfig, TrainConfig, dump_yaml, get_preset, load_train_config
from tinyllama_cli.data.dataset import Manifest, PretrainData
from tinyllama_cli.errors import UserError
from tinyllama_cli.train.launch_env import LaunchEnv

# Fields that define the data order: changing them on resume would replay or skip samples.
ORDER_FIELDS = ("seed", "mix", "seq_len", "global_batch_size", "global_batch_tokens")
# What `resume` cannot change (the model, the data order, where the run lives): no resume flags.
RESUME_FIXED = ORDER_FIELDS + ("model", "vocab_size", "init_from", "out", "overwrite")


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
    return cfg.devices * cfg.nodes if world is None else world


def with_actual_world(cfg: TrainConfig) -> TrainConfig:
    """Under torchrun the world comes from its variables: record it as devices x nodes."""
    env = LaunchEnv.read()
    if env.world_size is None:
        return cfg
    local = env.world_size if env.local_world_size is None else env.local_world_size
    return cfg.replace(devices=local, nodes=max(1, env.world_size // local))


def check_batch(cfg: TrainConfig, world_size: int) -> int:
    """Gradient accumulation steps = global / (micro x world), or a UserError saying how to fix it."""
    per_step = cfg.micro_batch_size * world_size
    if cfg.micro_batch_size < 1 or cfg.global_batch_size < 1:
        raise UserError("--micro-batch-size and --global-batch-size must be at least 1")
    if cfg.global_batch_size % per_step:
        raise UserError(
            f"--global-batch-size {cfg.global_batch_size} is not a multiple of --micro-batch-size "
            f"{cfg.micro_batch_size} x {world_size} worker(s) = {per_step}; change one of them")
    return cfg.global_batch_size // per_step


def _model_config(cfg: TrainConfig, model: ModelConfig | None, manifest: Manifest) -> ModelConfig:
    if cfg.init_from:
        model = init_model_config(cfg.init_from)
    elif model is None:
        model = get_preset(cfg.model)
    vocab = cfg.vocab_size or (model.vocab_size if cfg.init_from else manifest.vocab_size)
    if vocab != model.vocab_size:
        if cfg.init_from:
            raise UserError(f"--vocab-size {vocab} differs from --init-from's vocabulary {model.vocab_size}; drop --vocab-size")
        model = model.replace(vocab_size=vocab)
    if manifest.vocab_size > model.vocab_size:
        raise UserError(f"the data's tokenizer has {manifest.vocab_size} tokens but the model's vocabulary "
                        f"is {model.vocab_size}; raise --vocab-size or use the matching tokenizer")
    return model


def init_model_config(path: str) -> ModelConfig:
    from tinyllama_cli.load import model_config_of, resolve_checkpoint

    return model_config_of(*resolve_checkpoint(path))


def resolve(cfg: TrainConfig, model: ModelConfig | None) -> Run:
    """Fill every default that depends on the data or the model, and check the combination."""
    if not cfg.data:
        raise UserError("no training data: pass --data DATA_DIR (made by `tinyllama prepare-data`)")
    if not cfg.out:
        raise UserError("no run directory: pass --out RUN_DIR")
    manifest = Manifest.load(cfg.data)
    model = _model_config(cfg, model, manifest)
    seq_len = cfg.seq_len or model.block_size
    if not 1 <= seq_len <= model.block_size:
        raise UserError(f"--seq-len {seq_len} must be between 1 and the model's context {model.block_size}")
    cfg = with_actual_world(cfg.replace(seq_len=seq_len, vocab_size=model.vocab_size, model=model.name))
    if cfg.global_batch_tokens is not None:
        if cfg.global_batch_tokens < seq_len or cfg.global_batch_tokens % seq_len:
            raise UserError(f"--global-batch-tokens {cfg.global_batch_tokens} is not a positive multiple of "
                            f"seq_len {seq_len}; pick a multiple (e.g. {seq_len * max(1, cfg.global_batch_tokens // seq_len)})")
        cfg = cfg.replace(global_batch_size=cfg.global_batch_tokens // seq_len)
    tokens_per_step = cfg.global_batch_size * seq_len
    if cfg.max_steps is None:
        if cfg.max_tokens is None:
            raise UserError("give the schedule's length: --max-steps N or --max-tokens N")
        cfg = cfg.replace(max_steps=math.ceil(cfg.max_tokens / tokens_per_step))
    if cfg.max_steps < 1:
        raise UserError(f"--max-steps must be at least 1 (got {cfg.max_steps})")
    for name in ("log_every", "save_every"):
        if getattr(cfg, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1")
    if cfg.eval_every < 0 or cfg.keep_last < 0:
        raise UserError("--eval-every and --keep-last must be >= 0")
    from tinyllama_cli.train.distributed import resolve_accelerator

    resolve_accelerator(cfg.accelerator)  # --gpus without CUDA: say so before creating anything
    check_batch(cfg, world_size_of(cfg))
    data = PretrainData(cfg.data, seq_len, cfg.seed, cfg.mix)  # checks mix, shards and sizes now
    notes = schedule_notes(cfg) + validation_notes(data, cfg)
    return Run(Path(cfg.out), cfg, model, manifest.fingerprint(), notes)


def schedule_notes(cfg: TrainConfig) -> list[str]:
    """Warn about a schedule that is surely not what was meant: warmup as long as the run."""
    if cfg.warmup_steps >= cfg.max_steps:
        from tinyllama_cli.train.optim import lr_at

        return [(f"--warmup-steps {cfg.warmup_steps} >= --max-steps {cfg.max_steps}: the learning rate "
                f"only warms up (to {lr_at(cfg.max_steps - 1, cfg, cfg.max_steps):.2e} of --lr "
                f"{cfg.lr:.2e}) and never decays; lower --warmup-steps (TinyLlama: 2000 of 1.43M steps)")]
    return []


def validation_notes(data: PretrainData, cfg: TrainConfig) -> list[str]:
    """Warn when validation loss will be missing or will not cover every source."""
    if cfg.eval_samples < 1:
        return []
    windows = {name: s.num_windows(cfg.seq_len) for name, s in zip(data.val_names, data.val_streams)
               if name in data.weights}  # the sources the run trains on
    empty = [name for name, n in windows.items() if n == 0]
    if len(empty) == len(windows):
        return [(f"{cfg.data} has no validation data of {cfg.seq_len + 1}+ tokens in any source: no "
                "val_loss will be logged; re-run prepare-data with a larger --val-fraction")]
    if empty:
        return [(f"source(s) {', '.join(empty)} have no validation window of {cfg.seq_len + 1} tokens: "
                f"val_loss covers {', '.join(n for n in windows if n not in empty)} only; re-run "
                "prepare-data with a larger --val-fraction")]
    return []


def write_config(run: Run) -> None:
    """config.yaml: the model, the resolved TrainConfig, the data, and the hardware of this job.

    `hardware` records what `--accelerator auto` resolved to and the world size (rewritten by
    each resume), so `plan --from` can report the devices a run really used; `train.accelerator`
    keeps the user's choice, so a resume elsewhere decides `auto` again.
    """
    from tinyllama_cli.train.distributed import resolve_accelerator

    manifest = Manifest.load(run.train.data)
    data = PretrainData(run.train.data, run.train.seq_len, run.train.seed, run.train.mix)
    dump_yaml({
        "model": run.model.to_dict(),
        "train": run.train.to_dict(),
        "data": {"dir": str(Path(run.train.data).resolve()), "fingerprint": run.data_fingerprint,
                 "weights": data.weights, "tokenizer_sha256": manifest.raw["tokenizer"].get("sha256")},
        "hardware": {"accelerator": resolve_accelerator(run.train.accelerator),
                     "world_size": world_size_of(run.train)},
    }, rundir.config_path(run.dir))


def create_run_dir(run: Run) -> None:
    """A new run dir with config.yaml and tokenizer.model; never overwrites without --overwrite."""
    out = run.dir
    if out.exists() and any(out.iterdir()):
        if not run.train.overwrite:
            raise UserError(f"run directory {out} already exists and is not empty; continue it with "
                            f"`tinyllama resume {out}`, pick another --out, or pass --overwrite")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = Manifest.load(run.train.data).tokenizer_file
    if tokenizer.is_file():
        files.copy(tokenizer, rundir.tokenizer_path(out))
    write_config(run)


def load_run(run_dir: Path) -> Run:
    path = rundir.config_path(run_dir)
    if not path.is_file():
        raise UserError(f"{run_dir} is not a run directory (no config.yaml); start one with `tinyllama pretrain`")
    from tinyllama_cli.config import load_yaml

    raw = load_yaml(path)
    cfg, model = load_train_config(path, {})
    if model is None:
        raise UserError(f"{path} has no model: section; it was not written by `tinyllama pretrain`")
    return Run(run_dir, cfg, model, raw.get("data", {}).get("fingerprint", ""))


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return [f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def resume_schedule_notes(old: TrainConfig, new: TrainConfig, step: int) -> list[str]:
    """Say so when a resume changes the learning rate at the step it continues from: the cosine
    is fixed by --max-steps, so raising it re-stretches the decay from this step on (finished
    steps keep the lr they had; the continuation is exact for everything else)."""
    from tinyllama_cli.train.optim import lr_at

    before, after = lr_at(step, old, old.max_steps), lr_at(step, new, new.max_steps)
    if math.isclose(before, after, rel_tol=1e-12):
        return []
    return [(f"the schedule changes at step {step}: lr {before:.3e} -> {after:.3e} (--max-steps "
            f"{old.max_steps} -> {new.max_steps} re-stretches the cosine from here; steps up to {step} "
            "are unchanged)")]


def prepare_resume(run_dir: str | Path, overrides: dict[str, Any], model_override: ModelConfig | None = None,
                   write: bool = True) -> Run:
    """The saved run with the allowed overrides applied; refuses what would change the run."""
    run = load_run(Path(run_dir))
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if model_override is not None or "model" in overrides or "vocab_size" in overrides:
        new_model = model_override or get_preset(overrides.get("model", run.model.name))
        new_model = new_model.replace(vocab_size=overrides.get("vocab_size", run.model.vocab_size))
        diff = _differences(run.model.to_dict(), new_model.to_dict())
        if diff:
            raise UserError(f"cannot resume {run_dir} with a different model config ({'; '.join(diff)}); "
                            "start a new run with `pretrain --init-from` instead")
    overrides.pop("model", None)
    overrides.pop("vocab_size", None)
    overrides.pop("overwrite", None)
    out = overrides.pop("out", None)
    if out is not None and Path(out).resolve() != run.dir.resolve():
        raise UserError(f"resume continues {run.dir} in place; drop --out {out} (to branch off, use "
                        f"`pretrain --init-from {run.dir} --out {out}`)")
    cfg = run.train
    for name in ORDER_FIELDS:
        if name in overrides and overrides[name] != getattr(cfg, name):
            raise UserError(f"cannot resume {run_dir} with a different {name} ({getattr(cfg, name)!r} -> "
                            f"{overrides[name]!r}): it changes the data order; start a new run instead")
    if overrides.get("max_tokens") is not None and overrides.get("max_steps") is None:
        overrides["max_steps"] = math.ceil(overrides["max_tokens"] / (cfg.global_batch_size * cfg.seq_len))
    # A job chain's --stop-at-step belongs to one job: it is not inherited.
    cfg = load_train_config(None, {**cfg.to_dict(), "stop_at_step": None, **overrides})[0]
    cfg = with_actual_world(cfg.replace(out=str(run.dir)))  # the run dir may have been moved
    manifest = Manifest.load(cfg.data) if Path(cfg.data).exists() else None
    if manifest is None:
        raise UserError(f"the run's data dir {cfg.data} does not exist; pass --data with the same data")
    fingerprint = manifest.fingerprint()
    checkpoints = rundir.list_checkpoints(run.dir)
    state = rundir.read_state(checkpoints[-1]) if checkpoints else {}
    expected = state.get("data_fingerprint", run.data_fingerprint)
    if fingerprint != expected:
        raise UserError(f"cannot resume {run_dir}: data dir {cfg.data} is not the data it was trained on "
                        f"(manifest fingerprint {fingerprint[:12]} != {expected[:12]}); pass --data with the original data dir")
    if state.get("model_config") and ModelConfig.from_dict(state["model_config"]) != run.model:
        diff = _differences(state["model_config"], run.model.to_dict())
        raise UserError(f"cannot resume {run_dir}: config.yaml's model differs from its checkpoint's "
                        f"({'; '.join(diff)}); restore config.yaml's model: section")
    step = state.get("step", 0)
    if cfg.max_steps <= step:
        raise UserError(f"{run_dir} is already at step {step} of --max-steps {cfg.max_steps}; raise "
                        "--max-steps (or --max-tokens) to train further")
    check_batch(cfg, world_size_of(cfg))
    resumed = Run(run.dir, cfg, run.model, fingerprint, resume_schedule_notes(run.train, cfg, step))
    if write:
        write_config(resumed)
    return resumed
