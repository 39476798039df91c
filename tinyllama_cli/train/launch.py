"""Starting the workers: in this process, under torchrun/srun, or spawned via torch.distributed.run.

- One worker (`--devices 1`, the default): the loop runs in this process.
- Already one of several workers (RANK/WORLD_SIZE from torchrun, or SLURM_PROCID/SLURM_NTASKS
  from srun): every worker resolves the same config, rank 0 writes the run dir, all train.
- `--gpus N` / `--devices N` (and `--nodes`): this process spawns `python -m
  torch.distributed.run ... -m tinyllama_cli.train.worker RUN_DIR` and waits. torchrun stops every
  worker when one dies and prints the failing rank's traceback; this command then exits non-zero.
  SIGINT/SIGTERM here are forwarded as SIGTERM to the workers, which save a checkpoint and stop.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tinyllama_cli import rundir
from tinyllama_cli.config import ModelConfig, TrainConfig, load_train_config
from tinyllama_cli.errors import UserError
from tinyllama_cli.train.launch_env import LaunchEnv
from tinyllama_cli.train.setup import (
    Run,
    create_run_dir,
    load_run,
    prepare_resume,
    resolve,
    write_config,
)


def launched_externally(cfg: TrainConfig) -> bool:
    """True when this process is already one of the run's workers: started by torchrun, or by
    srun with one task per worker (srun with one task per node instead runs this launcher per
    node)."""
    return LaunchEnv.read().is_worker_of(cfg.launch.devices * cfg.launch.nodes)


def end_worker_process(code: int) -> None:
    """Under torchrun/srun, leave with os._exit once training is done: gloo can abort in its
    destructors at interpreter exit ("terminate called without an active exception")."""
    if LaunchEnv.read().is_worker:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def warn(run: Run, console: Any) -> None:
    """Print the run's notes (once: not on every worker started by torchrun or srun)."""
    if console is None or not LaunchEnv.read().is_main:
        return
    for note in run.notes:
        console.print(f"[bold yellow]warning:[/] {note}", highlight=False)


def with_gpus(flags: dict[str, Any], gpus: int | None) -> dict[str, Any]:
    """`--gpus N` is shorthand for `--devices N --accelerator cuda`: the flags it stands for
    (over any --devices / --accelerator given with it)."""
    if gpus is None:
        return flags
    return {**flags, "devices": gpus, "accelerator": "cuda"}


def pretrain_from_flags(
    config: str | Path | None,
    flags: dict[str, Any],
    *,
    gpus: int | None = None,
    console: Any = None,
) -> int:
    """`tinyllama pretrain`: the --config YAML (optional) with the flags over it (None: not
    given), then `pretrain`; returns the exit status."""
    cfg, model = load_train_config(config, with_gpus(flags, gpus))
    return pretrain(cfg, model, console)


def pretrain(cfg: TrainConfig, model: ModelConfig | None = None, console: Any = None) -> int:
    """Create the run dir from the config and train it; returns the process exit status."""
    run = resolve(cfg, model)
    warn(run, console)
    if launched_externally(cfg):
        from tinyllama_cli.train.loop import train

        train(run.dir, cfg.launch.accelerator, setup=lambda: create_run_dir(run), console=console)
        return 0
    if cfg.launch.node_rank == 0:
        create_run_dir(run)
    else:
        _wait_for(rundir.config_path(run.dir))
    return start(run, console)


def resume(
    run_dir: str | Path,
    overrides: dict[str, Any],
    model: ModelConfig | None = None,
    console: Any = None,
    *,
    gpus: int | None = None,
) -> int:
    """Continue a run from its newest complete checkpoint (flags may raise --max-steps etc.)."""
    overrides = with_gpus(overrides, gpus)
    if launched_externally(
        load_run(Path(run_dir)).train.replace(
            **{k: v for k, v in overrides.items() if k in ("devices", "nodes") and v}
        )
    ):
        from tinyllama_cli.train.loop import train

        run = prepare_resume(run_dir, overrides, model, write=False)
        warn(run, console)
        train(
            run.dir, run.train.launch.accelerator, setup=lambda: write_config(run), console=console
        )
        return 0
    run = prepare_resume(run_dir, overrides, model, write=int(overrides.get("node_rank") or 0) == 0)
    warn(run, console)
    return start(run, console)


def _wait_for(path: Path, timeout_s: float = 600) -> None:
    deadline = time.time() + timeout_s
    while not path.exists():
        if time.time() > deadline:
            raise UserError(
                f"{path} did not appear within {timeout_s:.0f} s; start node rank 0 too, "
                "and put --out on a filesystem every node shares"
            )
        time.sleep(2)


# How long torchrun waits, after a SIGTERM (SLURM's time limit, scancel), for its workers to
# finish the step and save before it kills them. Its default, 30 s, is less than a 1.1B save
# takes: ~17.6 GB of weights and AdamW state (16 bytes per parameter) written to a shared file
# system at a few hundred MB/s per node is minutes. SLURM itself kills after its KillWait, so the
# sbatch example signals 15 minutes before the limit.
SHUTDOWN_TIMEOUT_S = 900


def torchrun_command(run: Run) -> list[str]:
    launch = run.train.launch
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc-per-node={launch.devices}",
        f"--nnodes={launch.nodes}",
        f"--shutdown-timeout={SHUTDOWN_TIMEOUT_S}",
    ]
    if launch.nodes == 1:
        cmd.append("--standalone")
    else:
        cmd += _rendezvous_flags(run)
    return cmd + ["-m", "tinyllama_cli.train.worker", str(run.dir), launch.accelerator]


def _rendezvous_flags(run: Run) -> list[str]:
    """torchrun's flags for meeting the other nodes.

    c10d (`--rdzv-endpoint`) ranks the workers itself: torchrun ignores --node-rank there (and
    says so), so ours only decides which machine creates the run directory. The static
    rendezvous (`--master-addr`) is torchrun's classic mode, where --node-rank sets the ranks.
    """
    launch = run.train.launch
    if launch.rdzv_endpoint:
        run_id = hashlib.sha256(str(run.dir.resolve()).encode()).hexdigest()[:16]
        return [
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={launch.rdzv_endpoint}",
            f"--rdzv-id={run_id}",
        ]
    if launch.master_addr:
        if not 0 <= launch.node_rank < launch.nodes:
            raise UserError(
                f"--node-rank {launch.node_rank} is not one of 0..{launch.nodes - 1} "
                f"for --nodes {launch.nodes}"
            )
        return [
            f"--master-addr={launch.master_addr}",
            f"--master-port={launch.master_port}",
            f"--node-rank={launch.node_rank}",
        ]
    raise UserError(
        "--nodes > 1 needs --rdzv-endpoint HOST:PORT (a port on the first node that every node "
        "can reach), or --master-addr HOST with a distinct --node-rank on every node"
    )


def _children(pid: int) -> list[int]:
    """Direct children of a process, from /proc (Linux); [] where that is unavailable."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def start(run: Run, console: Any = None) -> int:
    """Train `run` with devices x nodes workers; returns the exit status."""
    launch = run.train.launch
    if launch.devices < 1 or launch.nodes < 1:
        raise UserError("--devices and --nodes must be at least 1")
    if launch.devices * launch.nodes == 1:
        from tinyllama_cli.train.loop import train

        train(run.dir, launch.accelerator, console=console)
        return 0
    from tinyllama_cli.train.distributed import resolve_accelerator

    resolve_accelerator(launch.accelerator)  # --gpus on a machine without CUDA: say so now
    # A new session: a terminal's Ctrl-C reaches only this process, which forwards one SIGTERM.
    proc = subprocess.Popen(torchrun_command(run), start_new_session=True)

    def forward(signum: int, frame: Any) -> None:
        # To the workers themselves: they save and exit 0, and torchrun then exits 0 too (a
        # signal to torchrun would make it report the stop as a failure).
        workers = _children(proc.pid)
        for pid in workers:
            os.kill(pid, signal.SIGTERM)
        if not workers and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = proc.wait()
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    if code and console is not None:
        console.print(
            f"[bold red]training failed[/]: torchrun exited with status {code}; the failing "
            "rank's error is above"
        )
    return code
