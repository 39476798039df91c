"""The training loop: one function, `train(run_dir)`, run by every worker.

Side concerns live elsewhere (data order: data/; FSDP2, precision: distributed.py; AdamW:
optim.py; the lr schedule: schedule.py; checkpoints: checkpoint.py; logging: metrics.py). Per
optimizer step:

    for each micro batch: forward (autocast), backward of loss / accumulation steps
        (FSDP2 reduce-scatters gradients only after the last micro batch)
    clip the global gradient norm, set the step's learning rate, AdamW step
    one small all-reduce: the step's loss and "stop requested" (a signal on any worker)

The step's loss is checked before the optimizer applies it: a NaN/inf stops the run with the
last good checkpoint untouched. SIGTERM/SIGINT finish the current step, save and exit 0.
"""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from tinyllama_cli import rundir
from tinyllama_cli.config import TrainConfig
from tinyllama_cli.data.dataset import PretrainData
from tinyllama_cli.data.prefetch import Batches, Prefetcher, StepSlice
from tinyllama_cli.errors import UserError
from tinyllama_cli.hardware import ThreadGovernor, keep_freed_memory, set_cpu_threads
from tinyllama_cli.rundir import EVAL_PREFIX, checkpoint_step, list_checkpoints
from tinyllama_cli.tokenizer import Tokenizer
from tinyllama_cli.train import checkpoint
from tinyllama_cli.train.build import build_model
from tinyllama_cli.train.distributed import (
    World,
    all_reduce_sum,
    clip_grad_norm,
    dp_shard_size,
    init_world,
    resolve_compile,
    resolve_precision,
    shutdown,
    with_mesh,
)
from tinyllama_cli.train.launch_env import LaunchEnv
from tinyllama_cli.train.metrics import Interval, MetricsLogger, format_row, peak_flops_per_device
from tinyllama_cli.train.optim import build_optimizer, set_lr
from tinyllama_cli.train.schedule import lr_at
from tinyllama_cli.train.setup import Run, check_batch, load_run


def live_tasks(cfg: TrainConfig) -> Any:
    """--eval-tasks resolved and their data loaded (`eval.live.LiveTasks`)."""
    from tinyllama_cli.eval.live import LiveTasks

    d = cfg.downstream
    return LiveTasks(d.eval_tasks, d.eval_dataset, d.eval_fewshot, d.eval_limit)


class StopFlag:
    """Set by SIGTERM/SIGINT; a second SIGINT interrupts at once."""

    def __init__(self) -> None:
        self.signal: str | None = None

    def install(self) -> None:
        self._old = {
            sig: signal.signal(sig, self._handler) for sig in (signal.SIGTERM, signal.SIGINT)
        }

    def uninstall(self) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)

    def _handler(self, signum: int, frame: Any) -> None:
        self.signal = signal.Signals(signum).name
        signal.signal(signal.SIGINT, signal.default_int_handler)


def evaluate(
    model: torch.nn.Module,
    data: PretrainData,
    windows: dict[str, list[int]],
    world: World,
    micro: int,
    autocast: Any,
) -> dict[str, float]:
    """Validation loss per source over the run's windows, and `val_loss`: their mix-weighted mean
    (the loss on the training mixture). Windows are split across workers; every worker runs the
    same number of forward passes (padding rows are ignored), so FSDP never waits on a peer."""
    sums: list[float] = []
    model.eval()
    with torch.no_grad():
        for source, source_windows in windows.items():
            mine = source_windows[world.rank :: world.world_size]
            n_batches = math.ceil(math.ceil(len(source_windows) / world.world_size) / micro)
            loss_sum, count = 0.0, 0.0
            for b in range(n_batches):
                x, y = data.validation_batch(source, mine[b * micro : (b + 1) * micro], micro)
                x, y = x.to(world.device), y.to(world.device)
                with autocast():
                    loss = model(x, y)
                n = int((y != -100).sum())
                loss_sum, count = loss_sum + (float(loss) * n if n else 0.0), count + n
            sums += [loss_sum, count]
    model.train()
    sums = all_reduce_sum(sums, world)
    per_source = {
        s: sums[2 * i] / sums[2 * i + 1] for i, s in enumerate(windows) if sums[2 * i + 1]
    }
    if not per_source:
        return {}
    weight = sum(data.weights[s] for s in per_source)
    return {
        "val_loss": sum(data.weights[s] * v for s, v in per_source.items()) / weight,
        **{f"val_loss/{s}": v for s, v in per_source.items()},
    }


def train(
    run_dir: str | Path,
    accelerator: str = "auto",
    setup: Callable[[], None] | None = None,
    console: Any = None,
) -> int:
    """Train (or continue) the run in `run_dir` as one worker; returns the last step done.

    `setup`, if given, is called on rank 0 only, before the others read the run dir (it creates
    the run dir when every worker was started with the pretrain command, e.g. by srun).
    """
    run_dir = Path(run_dir)
    world = init_world(accelerator)
    if setup is not None:
        if world.is_main:
            setup()
        if world.world_size > 1:
            torch.distributed.barrier()
    step = _train(load_run(run_dir), world, console)
    shutdown(world)  # not on errors: a barrier with a dead peer would hide the first error
    return step


def _sharding(world: World) -> str:
    """ " (HSDP: R replicas x S shards)" on a 2-D mesh; FSDP and one worker say nothing more."""
    mesh = world.mesh
    if mesh is None or mesh.ndim == 1:
        return ""
    replicas, shards = mesh.shape
    return f" (HSDP: {replicas} replicas x {shards} shards)"


def _train(run: Run, world: World, console: Any) -> int:
    launch = run.train.launch
    world = with_mesh(
        world, dp_shard_size(launch.dp_shard, world.world_size, launch.devices, launch.nodes)
    )
    trainer = Trainer(run, world, console)
    trainer.stop.install()
    try:
        return trainer.fit()
    finally:
        trainer.stop.uninstall()
        trainer.logger.close()
        if trainer.downstream is not None:
            trainer.downstream.close()


def cpu_threads(num_threads: int | None) -> tuple[int, str, ThreadGovernor | None]:
    """(threads, why, governor) for this CPU worker, set in torch: --num-threads; else for one
    worker the idle cores (`hardware.set_cpu_threads`: a thread on a core another process holds
    stalls the rest), re-decided as the load changes (`hardware.ThreadGovernor`); and for
    several on one machine an equal share of the cores (they start together, so none can tell
    another worker's start-up from a foreign load)."""
    per_node = LaunchEnv.read().workers_here()
    if num_threads is not None or per_node == 1:
        cores = torch.get_num_threads()
        threads, why = set_cpu_threads(num_threads)
        adapts = num_threads is None and why != "OMP_NUM_THREADS"
        return threads, why, ThreadGovernor(cores, threads) if adapts else None
    threads = max(1, (os.cpu_count() or 1) // per_node)
    torch.set_num_threads(threads)
    return threads, f"{os.cpu_count()} CPUs / {per_node} workers", None


class Trainer:
    """One worker's model, optimizer, data and logger, and the loop over them."""

    def __init__(self, run: Run, world: World, console: Any = None):
        cfg = self.cfg = run.train
        self.run, self.world = run, world
        # Before the model exists: the allocator settings apply to what is allocated after them.
        self.memory = keep_freed_memory() if world.device.type == "cpu" else None
        self.threads = cpu_threads(cfg.launch.num_threads) if world.device.type == "cpu" else None
        self.precision = resolve_precision(cfg.speed.precision, world.device)
        self.accum = check_batch(cfg, world.world_size)
        order = cfg.data_order
        self.data = PretrainData(cfg.training.data, order.seq_len, order.seed, order.mix)
        self.val_windows = self.data.validation_windows(cfg.logging.eval_samples)
        # Listed once: the compile decision needs the step this job starts at before the model
        # exists, and the load below needs the same checkpoint.
        checkpoints = list_checkpoints(run.dir)
        resumes_at = (checkpoint_step(checkpoints[-1]) or 0) if checkpoints else 0
        self.compile = resolve_compile(
            cfg.speed.compile, world.device, self.precision, self._job_micro_batches(resumes_at)
        )
        self.model = build_model(run, world, self.precision, self.compile[0])
        self.optimizer = build_optimizer(self.model, cfg.optimizer, cfg.schedule, world.device)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.step, self.interval = 0, Interval()
        if checkpoints:
            state = checkpoint.load(checkpoints[-1], self.model, self.optimizer)
            self.step, self.interval = state["step"], Interval.from_dict(state.get("log_interval"))
        log = cfg.logging
        self.logger = MetricsLogger(
            run.dir,
            world.is_main,
            self.step,
            log.tensorboard,
            log.wandb,
            log.wandb_project,
            {"model": run.model.to_dict(), "train": cfg.to_dict()},
            console,
        )
        if checkpoints:
            self.logger.print(
                f"resumed from {checkpoints[-1]} (step {self.step}, world size {world.world_size})"
            )
        self.stop = StopFlag()
        self.background = (
            checkpoint.AsyncCheckpointer(
                run.dir, world, cfg.checkpointing.keep_last, self.logger.print
            )
            if cfg.checkpointing.async_save
            else None
        )
        self.tokens_per_step = order.global_batch_size * order.seq_len
        self.downstream = live_tasks(cfg) if cfg.downstream.eval_tasks else None  # before step 1
        self.eval_tokenizer = (
            Tokenizer(rundir.tokenizer_path(run.dir)) if self.downstream is not None else None
        )

    def _retune_threads(self) -> tuple[int, int] | None:
        """Follow the other processes' load on the cores (default threads only); (old, new)
        when the count changed."""
        governor = self.threads[2] if self.threads else None
        change = governor.update() if governor is not None else None
        if change is None:
            return None
        old, new, foreign = change
        self.logger.print(
            f"CPU threads {old} -> {new}: other processes used {foreign:.1f} CPUs since the "
            "last look (--num-threads N fixes the count)"
        )
        return old, new

    def _job_micro_batches(self, start: int) -> int:
        """Micro batches this job runs on each worker: from step `start` (the latest
        checkpoint's, read before the model is built) to its end, times the accumulation."""
        training = self.cfg.training
        end = min(training.max_steps, training.stop_at_step or training.max_steps)
        return max(0, end - start) * self.accum

    def autocast(self) -> Any:
        if self.precision == "bf16":
            return torch.autocast(self.world.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def train_step(self, batches: Batches) -> tuple[float, float, bool]:
        """One optimizer step over this worker's micro batches of the global batch.

        Returns (mean loss over all workers, global grad norm, whether any worker got a signal)."""
        cfg, world, model = self.cfg, self.world, self.model
        loss_acc = torch.zeros((), device=world.device)
        for a, (x, y) in enumerate(batches):
            x, y = x.to(world.device, non_blocking=True), y.to(world.device, non_blocking=True)
            if world.world_size > 1:  # reduce-scatter gradients only after the last micro batch
                model.set_requires_gradient_sync(a == self.accum - 1)
            with self.autocast():
                loss = model(x, y)
            (loss / self.accum).backward()
            loss_acc += loss.detach()
        grad_norm = float(clip_grad_norm(self.params, cfg.optimizer.grad_clip))
        loss_sum, stop_votes = all_reduce_sum(
            [float(loss_acc) / self.accum, 1.0 if self.stop.signal else 0.0], world
        )
        loss_value = loss_sum / world.world_size
        if not (math.isfinite(loss_value) and math.isfinite(grad_norm)):
            last = list_checkpoints(self.run.dir)
            keep = (
                f"the last good checkpoint is {last[-1]}"
                if last
                else "no checkpoint was written yet"
            )
            raise UserError(
                f"non-finite loss or gradient (loss {loss_value}, grad norm {grad_norm}) at step "
                f"{self.step + 1}; stopped without saving, {keep}; lower --lr or raise "
                "--warmup-steps, then resume"
            )
        set_lr(self.optimizer, lr_at(self.step, cfg.schedule, cfg.training.max_steps))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return loss_value, grad_norm, bool(stop_votes)

    def save(self, last: bool) -> None:
        """Checkpoint this step: in the background with --async-save, except the job's `last`
        save, which is written before training returns."""
        state = {
            "step": self.step,
            "tokens_seen": self.step * self.tokens_per_step,
            "samples_seen": self.step * self.cfg.data_order.global_batch_size,
            "data_fingerprint": self.run.data_fingerprint,
            "model_config": self.run.model.to_dict(),
            "world_size": self.world.world_size,
            "log_interval": self.interval.to_dict(),
        }
        if self.background is not None:
            if not last:
                self.background.save(self.model, self.optimizer, state)
                return
            self.background.wait()
        path = checkpoint.save(
            self.run.dir,
            self.model,
            self.optimizer,
            state,
            self.world,
            self.cfg.checkpointing.keep_last,
        )
        self.logger.print(f"saved {path}")

    def validate(self) -> None:
        val = evaluate(
            self.model,
            self.data,
            self.val_windows,
            self.world,
            self.cfg.speed.micro_batch_size,
            self.autocast,
        )
        if val:
            self.logger.log(
                {"step": self.step, **val, "tokens_seen": self.step * self.tokens_per_step}
            )
            sources = "  ".join(f"{k.split('/', 1)[1]} {v:.4f}" for k, v in val.items() if "/" in k)
            self.logger.print(
                f"step {self.step:>7}  [bold magenta]val loss {val['val_loss']:.4f}[/]  ({sources})"
            )

    def _tasks_due(self, step: int) -> bool:
        every = self.cfg.downstream.eval_tasks_every or self.cfg.logging.eval_every
        return bool(every and step % every == 0) or step == self.cfg.training.max_steps

    def score_tasks(self) -> None:
        """--eval-tasks on the live model, every worker its share; rank 0 logs
        `eval/<task>/<metric>` (what `tinyllama eval` reports for this step's checkpoint)."""
        result = self.downstream.score(
            self.model, self.eval_tokenizer, self.world.rank, self.world.world_size, self.autocast
        )
        scores = {
            f"{EVAL_PREFIX}{task}/{metric}": value
            for task, (metric, value) in result.scores.items()
        }
        self.logger.log(
            {"step": self.step, **scores, "tokens_seen": self.step * self.tokens_per_step}
        )
        shown = "  ".join(f"{key[len(EVAL_PREFIX) :]} {value:.4f}" for key, value in scores.items())
        self.logger.print(f"step {self.step:>7}  [bold cyan]eval[/]  {shown}")

    def _print_start(self, end: int, peak: float, peak_source: str) -> None:
        """What is trained on what, the batch, the steps of this job, threads and MFU peak."""
        cfg, world, model = self.cfg, self.world, self.run.model
        order = cfg.data_order
        self.logger.print(
            f"training {model.name} ({model.num_params():,} params) on {world.world_size} "
            f"{world.device.type} worker(s){_sharding(world)}, {self.precision}, global batch "
            f"{order.global_batch_size} x {order.seq_len} tokens (micro "
            f"{cfg.speed.micro_batch_size}, accumulation {self.accum}), steps {self.step} -> "
            f"{end} of {cfg.training.max_steps}"
            + (
                f"; {self.threads[0]} CPU thread(s) per worker ({self.threads[1]})"
                if self.threads
                else ""
            )
            + (f"; {self.memory}" if self.memory else "")
            + f"; MFU peak {peak:.3g} FLOP/s/device ({peak_source})"
            + f"; compile {'on' if self.compile[0] else 'off'} ({self.compile[1]})"
        )

    def fit(self) -> int:
        """Train to --max-steps (or --stop-at-step, or a signal); returns the last step done."""
        cfg, world = self.cfg, self.world
        max_steps = cfg.training.max_steps
        end = min(max_steps, cfg.training.stop_at_step or max_steps)
        peak, peak_source = peak_flops_per_device(
            world.device, cfg.logging.peak_flops, self.precision, torch.get_num_threads()
        )
        flops_per_token = self.run.model.flops_per_token(cfg.data_order.seq_len)
        self._print_start(end, peak, peak_source)
        start_step, run_start = self.step, time.perf_counter()
        where = StepSlice(
            cfg.data_order.global_batch_size,
            cfg.speed.micro_batch_size,
            world.rank,
            world.world_size,
        )
        prefetch = Prefetcher(self.data, where, self.step, end, pin=world.device.type == "cuda")
        try:
            stopped = self._loop(end, prefetch, peak, flops_per_token, start_step, run_start)
        finally:
            prefetch.close()
        if stopped:
            self.logger.print(
                f"stopped by {self.stop.signal or 'a signal on another worker'} at step "
                f"{self.step}; continue with `tinyllama resume {self.run.dir}`"
            )
        elif self.step < max_steps:
            self.logger.print(
                f"stopped at --stop-at-step {self.step}; continue with `tinyllama resume "
                f"{self.run.dir}`"
            )
        return self.step

    def _loop(
        self,
        end: int,
        prefetch: Prefetcher,
        peak: float,
        flops_per_token: int,
        start_step: int,
        run_start: float,
    ) -> bool:
        """Steps until `end` or a stop signal; returns whether a signal stopped it."""
        cfg, world = self.cfg, self.world
        max_steps = cfg.training.max_steps
        stopped = False
        while self.step < end:
            lr = lr_at(self.step, cfg.schedule, max_steps)
            started = time.perf_counter()  # waiting for data counts as training time
            loss, grad_norm, stopped = self.train_step(prefetch.get(self.step))
            self.interval.add(loss, time.perf_counter() - started)
            step = self.step
            if step % cfg.logging.log_every == 0 or step == end:
                now = time.perf_counter()
                tps = self.interval.steps * self.tokens_per_step / self.interval.seconds
                record = {
                    "step": step,
                    "loss": self.interval.mean_loss,
                    "lr": lr,
                    "grad_norm": grad_norm,
                    "tokens_seen": step * self.tokens_per_step,
                    "tokens_per_sec": tps,
                    "mfu": tps * flops_per_token / (peak * world.world_size),
                    "elapsed_s": now - run_start,
                }
                if world.device.type == "cuda":  # this worker's high-water mark since the start
                    record["peak_mem_gib"] = torch.cuda.max_memory_allocated(world.device) / 2**30
                self.logger.log(record)
                rate = (step - start_step) / (now - run_start)
                self.logger.print(format_row(record, max_steps, (max_steps - step) / rate))
                change = self._retune_threads()
                if change is not None and cfg.logging.peak_flops is None:
                    peak = peak / change[0] * change[1]  # the CPU peak is per thread x threads
                if (
                    step % cfg.logging.log_every == 0
                ):  # an early end (--stop-at-step) keeps the interval open
                    self.interval = Interval()
            # Validation depends only on the step, so interrupted and uninterrupted runs log the
            # same.
            eval_every = cfg.logging.eval_every
            if (eval_every and step % eval_every == 0) or step == max_steps:
                self.validate()
            if self.background is not None:
                self.background.poll()
            if self.downstream is not None and self._tasks_due(step):
                self.score_tasks()
            if step % cfg.checkpointing.save_every == 0 or step == end or stopped:
                self.save(last=step == end or stopped)
            if stopped:
                break
        return stopped
