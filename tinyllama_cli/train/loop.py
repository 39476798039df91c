"""The training loop: one function, `train(run_dir)`, run by every worker.

Side concerns live elsewhere (data order: data/; FSDP2, precision: distributed.py; AdamW and
the schedule: optim.py; checkpoints: checkpoint.py; logging: metrics.py). Per optimizer step:

    for each micro batch: forward (autocast), backward of loss / accumulation steps
        (FSDP2 reduce-scatters gradients only after the last micro batch)
    clip the global gradient norm, set the step's learning rate, AdamW step
    one small all-reduce: the step's loss and "stop requested" (a signal on any worker)

The step's loss is checked before the optimizer applies it: a NaN/inf stops the run with the
last good checkpoint untouched. SIGTERM/SIGINT finish the current step, save and exit 0.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from tinyllama_cli.data.dataset import PretrainData
from tinyllama_cli.errors import UserError
from tinyllama_cli.load import list_checkpoints
from tinyllama_cli.model import Llama
from tinyllama_cli.train import checkpoint
from tinyllama_cli.train.distributed import (
    World,
    all_reduce_sum,
    clip_grad_norm,
    init_world,
    parallelize,
    resolve_precision,
    shutdown,
)
from tinyllama_cli.train.metrics import MetricsLogger, format_row, peak_flops_per_device
from tinyllama_cli.train.optim import build_optimizer, lr_at, set_lr
from tinyllama_cli.train.rundir import Run, check_batch, load_run


class StopFlag:
    """Set by SIGTERM/SIGINT; a second SIGINT interrupts at once."""

    def __init__(self) -> None:
        self.signal: str | None = None

    def install(self) -> None:
        self._old = {sig: signal.signal(sig, self._handler) for sig in (signal.SIGTERM, signal.SIGINT)}

    def uninstall(self) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)

    def _handler(self, signum: int, frame: Any) -> None:
        self.signal = signal.Signals(signum).name
        signal.signal(signal.SIGINT, signal.default_int_handler)


def build_model(run: Run, world: World, precision: str) -> torch.nn.Module:
    """The same full model on every worker (seeded init, or --init-from weights), then sharded."""
    torch.manual_seed(run.train.seed)
    model = Llama(run.model)
    if run.train.init_from:
        from tinyllama_cli.load import load_model

        loaded = load_model(run.train.init_from)
        model.load_state_dict(loaded.model.state_dict())
        del loaded
    model.train()
    return parallelize(model, world, precision, run.train.compile, run.train.activation_checkpointing)


def evaluate(model: torch.nn.Module, data: PretrainData, windows: list, world: World,
             micro: int, autocast: Any) -> float | None:
    """Mean validation loss over `windows`, split across workers. Every worker runs the same
    number of forward passes (padding rows are ignored), so FSDP never waits on a missing peer."""
    mine = windows[world.rank :: world.world_size]
    n_batches = math.ceil(math.ceil(len(windows) / world.world_size) / micro)
    loss_sum, count = 0.0, 0.0
    model.eval()
    with torch.no_grad():
        for b in range(n_batches):
            x, y = data.validation_batch(mine[b * micro : (b + 1) * micro], micro)
            x, y = x.to(world.device), y.to(world.device)
            with autocast():
                loss = model(x, y)
            n = int((y != -100).sum())
            loss_sum, count = loss_sum + float(loss) * n, count + n
    model.train()
    loss_sum, count = all_reduce_sum([loss_sum, count], world)
    return loss_sum / count if count else None


def train(run_dir: str | Path, accelerator: str = "auto", setup: Callable[[], None] | None = None,
          console: Any = None) -> int:
    """Train (or continue) the run in `run_dir` as one worker; returns the last step done.

    `setup`, if given, is called on rank 0 only, before the others read the run dir (it creates
    the run dir when every worker was started with the pretrain command, e.g. by srun).
    """
    run_dir = Path(run_dir)
    world = init_world(accelerator)
    try:
        if setup is not None:
            if world.is_main:
                setup()
            if world.world_size > 1:
                torch.distributed.barrier()
        return _train(load_run(run_dir), world, console)
    finally:
        shutdown(world)


def _train(run: Run, world: World, console: Any) -> int:
    cfg = run.train
    if world.device.type == "cpu":
        import os

        threads = cfg.num_threads or max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        torch.set_num_threads(threads)
    precision = resolve_precision(cfg.precision, world.device)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32

    def autocast():
        if precision == "bf16":
            return torch.autocast(world.device.type, dtype=torch.bfloat16)
        return nullcontext()

    accum = check_batch(cfg, world.world_size)
    data = PretrainData(cfg.data, cfg.seq_len, cfg.seed, cfg.mix)
    model = build_model(run, world, precision)
    optimizer = build_optimizer(model, cfg, world.device)

    step = 0
    checkpoints = list_checkpoints(run.dir)
    if checkpoints:
        state = checkpoint.load(checkpoints[-1], model, optimizer)
        step = state["step"]
    logger = MetricsLogger(run.dir, world.is_main, step, cfg.tensorboard, cfg.wandb, cfg.wandb_project,
                           {"model": run.model.to_dict(), "train": cfg.to_dict()}, console)
    if checkpoints:
        logger.print(f"resumed from {checkpoints[-1]} (step {step}, world size {world.world_size})")
    stop = StopFlag()
    stop.install()
    try:
        return _loop(run, world, cfg, data, model, optimizer, step, accum, logger, stop, dtype, autocast, precision)
    finally:
        stop.uninstall()
        logger.close()


def _loop(run, world, cfg, data, model, optimizer, step, accum, logger, stop, dtype, autocast, precision) -> int:
    params = [p for p in model.parameters() if p.requires_grad]

    G, micro = cfg.global_batch_size, cfg.micro_batch_size
    per_rank = G // world.world_size
    tokens_per_step = G * cfg.seq_len
    end = min(cfg.max_steps, cfg.stop_at_step or cfg.max_steps)
    flops_per_token = run.model.flops_per_token(cfg.seq_len)
    peak, peak_source = peak_flops_per_device(world.device, cfg.peak_flops, dtype)
    val_windows = data.validation_windows(cfg.eval_samples)
    logger.print(f"training {run.model.name} ({run.model.num_params():,} params) on {world.world_size} "
                 f"{world.device.type} worker(s), {precision}, global batch {G} x {cfg.seq_len} tokens "
                 f"(micro {micro}, accumulation {accum}), steps {step} -> {end} of {cfg.max_steps}; "
                 f"MFU peak {peak:.3g} FLOP/s/device ({peak_source})")

    def state() -> dict[str, Any]:
        return {"step": step, "tokens_seen": step * tokens_per_step, "samples_seen": step * G,
                "data_fingerprint": run.data_fingerprint, "model_config": run.model.to_dict(),
                "world_size": world.world_size}

    def save() -> None:
        path = checkpoint.save(run.dir, model, optimizer, state(), world, cfg.keep_last)
        logger.print(f"saved {path}")

    def validate() -> None:
        val = evaluate(model, data, val_windows, world, micro, autocast)
        if val is not None:
            logger.log({"step": step, "val_loss": val, "tokens_seen": step * tokens_per_step})
            logger.print(f"step {step:>7}  [bold magenta]val loss {val:.4f}[/]")

    interval_start, interval_steps, run_start, start_step = time.perf_counter(), 0, time.perf_counter(), step
    stopped_by = None
    while step < end:
        lr = lr_at(step, cfg, cfg.max_steps)
        base = step * G + world.rank * per_rank
        loss_acc = torch.zeros((), device=world.device)
        for a in range(accum):
            x, y = data.batch(base + a * micro, micro)
            x, y = x.to(world.device, non_blocking=True), y.to(world.device, non_blocking=True)
            if world.world_size > 1:
                model.set_requires_gradient_sync(a == accum - 1)
            with autocast():
                loss = model(x, y)
            (loss / accum).backward()
            loss_acc += loss.detach()
        grad_norm = float(clip_grad_norm(params, cfg.grad_clip))
        loss_sum, stop_votes = all_reduce_sum([float(loss_acc) / accum, 1.0 if stop.signal else 0.0], world)
        loss_value = loss_sum / world.world_size
        if not (math.isfinite(loss_value) and math.isfinite(grad_norm)):
            last = list_checkpoints(run.dir)
            keep = f"the last good checkpoint is {last[-1]}" if last else "no checkpoint was written yet"
            raise UserError(f"non-finite loss or gradient (loss {loss_value}, grad norm {grad_norm}) at "
                            f"step {step + 1}; stopped "
                            f"without saving, {keep}; lower --lr or raise --warmup-steps, then resume")
        set_lr(optimizer, lr)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        interval_steps += 1

        if step % cfg.log_every == 0 or step == end:
            elapsed = time.perf_counter() - interval_start
            tps = interval_steps * tokens_per_step / elapsed
            record = {"step": step, "loss": loss_value, "lr": lr, "grad_norm": grad_norm,
                      "tokens_seen": step * tokens_per_step, "tokens_per_sec": tps,
                      "mfu": tps * flops_per_token / (peak * world.world_size),
                      "elapsed_s": time.perf_counter() - run_start}
            logger.log(record)
            rate = (step - start_step) / (time.perf_counter() - run_start)
            logger.print(format_row(record, cfg.max_steps, (cfg.max_steps - step) / rate if rate else None))
            interval_start, interval_steps = time.perf_counter(), 0
        if cfg.eval_every and step % cfg.eval_every == 0 and step != end:
            validate()
        if stop_votes:
            stopped_by = stop.signal or "a signal on another worker"
            break
        if step % cfg.save_every == 0 and step != end:
            save()
    if step == cfg.max_steps:
        validate()
    save()
    if stopped_by:
        logger.print(f"stopped by {stopped_by} at step {step}; continue with `tinyllama resume {run.dir}`")
    elif step < cfg.max_steps:
        logger.print(f"stopped at --stop-at-step {step}; continue with `tinyllama resume {run.dir}`")
    return step
