"""What started this process, read from its environment: the one reader of the launch variables.

    torchrun   RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE (and MASTER_ADDR/MASTER_PORT)
    srun       SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID (one task per worker, or per node)

The launcher asks whether this process is already one of several workers (then it trains
instead of spawning torchrun), the process group asks for the ranks, the run setup for the
world size, and the CPU thread choice for the workers per machine. Reading them in one place
keeps those answers consistent: they used to be three hand-written readings of the same
variables. Torch-free: the launcher reads it before deciding to start anything.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


def _int(environ: Mapping[str, str], name: str) -> int | None:
    value = environ.get(name)
    return None if value is None else int(value)


@dataclass(frozen=True)
class LaunchEnv:
    """The launch variables as given (None where unset)."""

    rank: int | None = None
    world_size: int | None = None
    local_rank: int | None = None
    local_world_size: int | None = None
    master_addr: str | None = None
    slurm_procid: int | None = None
    slurm_ntasks: int | None = None
    slurm_localid: int | None = None

    @classmethod
    def read(cls, environ: Mapping[str, str] | None = None) -> LaunchEnv:
        """The variables now (they change: an srun worker exports its ranks as torchrun's)."""
        env = os.environ if environ is None else environ
        return cls(
            rank=_int(env, "RANK"),
            world_size=_int(env, "WORLD_SIZE"),
            local_rank=_int(env, "LOCAL_RANK"),
            local_world_size=_int(env, "LOCAL_WORLD_SIZE"),
            master_addr=env.get("MASTER_ADDR"),
            slurm_procid=_int(env, "SLURM_PROCID"),
            slurm_ntasks=_int(env, "SLURM_NTASKS"),
            slurm_localid=_int(env, "SLURM_LOCALID"),
        )

    @property
    def torchrun_worker(self) -> bool:
        """One of several workers started by torchrun."""
        return self.rank is not None and (self.world_size or 1) > 1

    @property
    def srun_task(self) -> bool:
        """One of several tasks started by srun (per worker or per node: see `is_worker_of`)."""
        return self.slurm_procid is not None and (self.slurm_ntasks or 1) > 1

    @property
    def is_worker(self) -> bool:
        """Started by torchrun or srun as one of several processes."""
        return self.torchrun_worker or self.srun_task

    def is_worker_of(self, world_size: int) -> bool:
        """Already one of the `world_size` workers of a run: under torchrun, or under srun with
        one task per worker (srun with one task per node instead runs the launcher per node)."""
        return self.torchrun_worker or (self.srun_task and self.slurm_ntasks == world_size)

    @property
    def is_main(self) -> bool:
        """Rank 0, or no rank at all (a single process)."""
        return self.rank in (None, 0)

    def torchrun_ranks(self) -> tuple[int, int, int] | None:
        """(rank, world size, local rank) when torchrun's variables are set, else None."""
        if self.rank is None or self.world_size is None:
            return None
        return self.rank, self.world_size, self.local_rank or 0

    def srun_ranks(self) -> tuple[int, int, int] | None:
        """(rank, world size, local rank) of an srun task, else None."""
        if not self.srun_task:
            return None
        return self.slurm_procid, self.slurm_ntasks, self.slurm_localid or 0

    def workers_here(self) -> int:
        """Workers on this machine (torchrun's LOCAL_WORLD_SIZE); 1 when not given."""
        return 1 if self.local_world_size is None else self.local_world_size
