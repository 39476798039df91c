"""`tinyllama anneal`: branch a run at one of its checkpoints into a short decay of the lr.

A model trained at a high lr is not finished until its lr has come down; with this a run trains
as long as the budget allows and yields a finished model from any checkpoint:

    RUN_DIR/checkpoints/step-N  ->  BRANCH_DIR/ (config.yaml, tokenizer.model,
                                                 checkpoints/step-N: a copy)

The branch is an ordinary run dir whose schedule is WSD with `decay_steps` M, `max_steps` N + M and
`decay_start_lr` = the lr the parent trained checkpoint N at, so it decays from where the parent was
to --min-lr over M steps. Training it is `resume`'s job: it starts from the copied checkpoint
(model, optimizer, RNG), and the data order is a function of the step, so the branch trains on
exactly the samples the parent would have (its first loss is the parent's at step N + 1). The parent
is only read. Everything is checked, and the branch is built under a temporary name (`files.staged`)
and checked again as a resume would be (data, schedule, batch), before it appears; bad input writes
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinyllama_cli import files, rundir
from tinyllama_cli.config import DEFAULT_DECAY_SHAPE, dump_yaml, load_yaml
from tinyllama_cli.errors import UserError
from tinyllama_cli.train.schedule import lr_at
from tinyllama_cli.train.setup import Run, load_run, prepare_resume


@dataclass(frozen=True)
class AnnealOptions:
    """anneal's flags, as typed; `check` refuses what would branch nothing or overwrite."""

    run_dir: str | Path
    from_step: int
    decay_steps: int
    out: str | Path
    decay_shape: str | None = None  # None: the parent's (when WSD), else the default shape
    min_lr: float | None = None  # None: the parent's

    def check(self) -> tuple[Run, Path]:
        """(the parent, its checkpoint at --from-step), or one line naming the problem."""
        if self.decay_steps < 1:
            raise UserError(f"--decay-steps must be at least 1 (got {self.decay_steps})")
        files.check_new_path(Path(self.out), overwrite=False)
        parent = load_run(Path(self.run_dir))
        _check_not_saving(parent.dir)
        checkpoint = rundir.checkpoint_dir(parent.dir, self.from_step)
        if not rundir.is_complete(checkpoint):
            steps = [rundir.checkpoint_step(c) for c in rundir.list_checkpoints(parent.dir)]
            raise UserError(
                f"{parent.dir} has no complete checkpoint at step {self.from_step}; "
                f"its checkpoints are at steps {', '.join(map(str, steps)) or 'none'}: "
                "pass one of them to --from-step"
            )
        return parent, checkpoint


def _check_not_saving(run_dir: Path) -> None:
    """A `step-N.tmp` is a save in progress (or one a crash left): the parent is being written."""
    root = rundir.checkpoints_root(run_dir)
    saving = sorted(root.glob("*.tmp")) if root.is_dir() else []
    if saving:
        raise UserError(
            f"{saving[0]} is a checkpoint still being written (or left by a crash); "
            "wait for the save to finish, or remove it if no training is running, "
            "then branch"
        )


def _check_decays(parent: Run, options: AnnealOptions) -> None:
    """The lr must come down: --min-lr below the lr checkpoint N was trained at."""
    start = parent_lr(parent, options.from_step)
    end = parent.train.schedule.min_lr if options.min_lr is None else options.min_lr
    if end >= start:
        raise UserError(
            f"checkpoint {options.from_step} was trained at lr {start:.3e}, not above "
            f"--min-lr {end:.3e}: there is nothing to decay; pick an earlier "
            "--from-step or a lower --min-lr"
        )


def branch_config(parent: Run, options: AnnealOptions) -> dict[str, Any]:
    """The branch's TrainConfig fields: the parent's, with the decay from step N to N + M."""
    train = parent.train
    schedule = train.schedule
    shape = options.decay_shape or (schedule.decay_shape if schedule.lr_schedule == "wsd" else None)
    return {
        **train.to_dict(),
        "out": str(Path(options.out)),
        "overwrite": False,
        "max_steps": options.from_step + options.decay_steps,
        "max_tokens": None,
        "stop_at_step": None,
        "lr_schedule": "wsd",
        "decay_steps": options.decay_steps,
        "decay_fraction": None,
        "decay_shape": shape,
        "min_lr": schedule.min_lr if options.min_lr is None else options.min_lr,
        "decay_start_lr": parent_lr(parent, options.from_step),
    }


def parent_lr(parent: Run, step: int) -> float:
    """The lr checkpoint `step` was trained at: that of its last step (the `lr` logged at
    `step`), where the decay starts. A branch where a WSD parent's own decay begins is therefore
    that decay, step for step."""
    return lr_at(max(step - 1, 0), parent.train.schedule, parent.train.training.max_steps)


def create_branch(options: AnnealOptions, launch: dict[str, Any] | None = None) -> Run:
    """Write the branch dir (config.yaml, tokenizer, checkpoint N) and return it as a resume
    would train it; `launch` holds the Launch fields this job runs with (--devices, ...)."""
    parent, checkpoint = options.check()
    _check_decays(parent, options)
    out = Path(options.out)
    raw = load_yaml(rundir.config_path(parent.dir))
    with files.staged(out, overwrite=False) as tmp:
        tmp.mkdir()
        dump_yaml(
            {
                **raw,
                "train": branch_config(parent, options),
                rundir.BRANCH_KEY: {
                    "parent": str(parent.dir.resolve()),
                    "step": options.from_step,
                    "parent_lr": parent_lr(parent, options.from_step),
                },
            },
            rundir.config_path(tmp),
        )
        if rundir.tokenizer_path(parent.dir).is_file():
            files.copy(rundir.tokenizer_path(parent.dir), rundir.tokenizer_path(tmp))
        try:
            rundir.copy_checkpoint(checkpoint, tmp)
        except FileNotFoundError:
            raise UserError(
                f"{checkpoint} was deleted while it was copied (the parent's training "
                "pruned it: --keep-last); nothing was written; pick a newer "
                "--from-step"
            ) from None
        prepare_resume(tmp, dict(launch or {}), write=False)  # the data, the batch, the schedule
    return load_run(out)


def anneal(
    options: AnnealOptions, launch: dict[str, Any] | None = None, console: Any = None
) -> int:
    """`tinyllama anneal`: create the branch, then train it (`resume`); the exit status."""
    from tinyllama_cli.train.launch import resume

    branch = create_branch(options, launch)
    if console is not None:
        s = branch.train.schedule
        console.print(
            f"branched {options.run_dir} at step {options.from_step} into {branch.dir}: "
            f"lr {s.decay_start_lr:.3e} -> {s.min_lr:.3e} over {options.decay_steps} "
            f"steps ({s.decay_shape or DEFAULT_DECAY_SHAPE})",
            highlight=False,
        )
    return resume(branch.dir, dict(launch or {}), console=console)
