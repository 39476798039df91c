"""The launch environment: torchrun's and srun's variables read once, and what each reader
(launcher, process group, run setup, CPU threads) takes from them."""

from __future__ import annotations

import os

import pytest

from tinyllama_cli.config import TrainConfig
from tinyllama_cli.errors import UserError
from tinyllama_cli.train.launch_env import LaunchEnv

TORCHRUN = {
    "RANK": "3",
    "WORLD_SIZE": "4",
    "LOCAL_RANK": "1",
    "LOCAL_WORLD_SIZE": "2",
    "MASTER_ADDR": "node0",
}
SRUN = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1"}
LAUNCH_VARIABLES = (*TORCHRUN, *SRUN, "MASTER_PORT")


def clear_launch_env(monkeypatch) -> None:
    """Unset every launch variable, restored afterwards even where the code under test sets
    one itself (env_world exports an srun task's ranks)."""
    for name in LAUNCH_VARIABLES:
        monkeypatch.setenv(name, "0")  # records the original value (or its absence) for undo
        monkeypatch.delenv(name)


def test_a_plain_process_is_no_worker():
    env = LaunchEnv.read({})
    assert not env.is_worker and not env.is_worker_of(1) and env.is_main
    assert env.torchrun_ranks() is None and env.srun_ranks() is None and env.workers_here() == 1


def test_torchrun_workers():
    env = LaunchEnv.read(TORCHRUN)
    assert env.torchrun_worker and env.is_worker and env.is_worker_of(64) and not env.is_main
    assert env.torchrun_ranks() == (3, 4, 1) and env.workers_here() == 2
    one = LaunchEnv.read({"RANK": "0", "WORLD_SIZE": "1"})  # torchrun --nproc-per-node 1
    assert not one.is_worker and one.is_main and one.torchrun_ranks() == (0, 1, 0)


def test_srun_tasks_are_workers_only_when_there_is_one_per_worker():
    env = LaunchEnv.read(SRUN)
    assert env.srun_task and env.is_worker and env.srun_ranks() == (5, 8, 1)
    assert env.is_worker_of(8) and not env.is_worker_of(16)  # 16: one task per node, 2 per node
    assert not LaunchEnv.read({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}).is_worker


def test_every_reader_follows_the_variables(monkeypatch):
    from tinyllama_cli.train.distributed import env_world
    from tinyllama_cli.train.launch import launched_externally
    from tinyllama_cli.train.setup import with_actual_world, world_size_of

    clear_launch_env(monkeypatch)
    cfg = TrainConfig.of(devices=2, nodes=1)
    assert env_world() == (0, 1, 0) and world_size_of(cfg) == 2 and with_actual_world(cfg) == cfg
    for name, value in TORCHRUN.items():
        monkeypatch.setenv(name, value)
    assert env_world() == (3, 4, 1) and launched_externally(cfg)
    actual = with_actual_world(cfg)
    assert world_size_of(cfg) == 4 and (actual.launch.devices, actual.launch.nodes) == (2, 2)


def test_an_srun_worker_exports_its_ranks_for_the_process_group(monkeypatch):
    from tinyllama_cli.train.distributed import env_world

    clear_launch_env(monkeypatch)
    for name, value in SRUN.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(UserError, match="set MASTER_ADDR"):
        env_world()
    monkeypatch.setenv("MASTER_ADDR", "node0")
    assert env_world() == (5, 8, 1)
    env = LaunchEnv.read()
    assert env.torchrun_ranks() == (5, 8, 1) and env.master_addr == "node0"  # RANK etc. exported
    assert os.environ["MASTER_PORT"] == "29500"
