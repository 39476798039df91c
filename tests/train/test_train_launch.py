"""How workers are started: the torchrun command line, and when this process already is a worker."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinyllama_cli.config import TrainConfig, get_preset
from tinyllama_cli.errors import UserError
from tinyllama_cli.train.launch import launched_externally, torchrun_command
from tinyllama_cli.train.setup import Run


def run_of(**cfg) -> Run:
    return Run(Path("/runs/x"), TrainConfig.of(**cfg), get_preset("cpu-tiny"), "")


def test_single_node_spawns_standalone_torchrun():
    cmd = torchrun_command(run_of(devices=4, accelerator="cpu"))
    assert cmd[1:3] == ["-m", "torch.distributed.run"] and "--nproc-per-node=4" in cmd
    assert "--standalone" in cmd and cmd[-4:] == [
        "-m",
        "tinyllama_cli.train.worker",
        "/runs/x",
        "cpu",
    ]
    # torchrun's own 30 s would SIGKILL workers in the middle of a large checkpoint save
    assert "--shutdown-timeout=900" in cmd


def test_multi_node_uses_the_rendezvous_and_needs_an_endpoint():
    cmd = torchrun_command(run_of(devices=8, nodes=2, node_rank=1, rdzv_endpoint="node0:29500"))
    assert {"--nnodes=2", "--rdzv-backend=c10d", "--rdzv-endpoint=node0:29500"} <= set(cmd)
    assert "--standalone" not in cmd
    assert not any(arg.startswith("--node-rank") for arg in cmd)  # c10d ranks the nodes itself
    with pytest.raises(UserError, match="--rdzv-endpoint"):
        torchrun_command(run_of(devices=8, nodes=2))


def test_multi_node_static_rendezvous_ranks_by_node_rank():
    cmd = torchrun_command(
        run_of(devices=8, nodes=2, node_rank=1, master_addr="node0", master_port=29400)
    )
    assert {"--nnodes=2", "--master-addr=node0", "--master-port=29400", "--node-rank=1"} <= set(cmd)
    assert not any(arg.startswith("--rdzv") for arg in cmd)
    with pytest.raises(UserError, match="--node-rank 2 is not one of 0..1"):
        torchrun_command(run_of(devices=8, nodes=2, node_rank=2, master_addr="node0"))


def test_detects_being_a_worker_of_torchrun_or_srun(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "SLURM_NTASKS", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    assert not launched_externally(TrainConfig.of(devices=2))
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert launched_externally(TrainConfig.of())
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.setenv("SLURM_NTASKS", "16")
    monkeypatch.setenv("SLURM_PROCID", "3")
    assert launched_externally(TrainConfig.of(devices=8, nodes=2))  # srun started every worker
    monkeypatch.setenv("SLURM_NTASKS", "2")
    assert not launched_externally(TrainConfig.of(devices=8, nodes=2))  # one launcher per node


def test_gpus_is_devices_on_cuda():
    from tinyllama_cli.train.launch import with_gpus

    assert with_gpus({"devices": 1, "lr": 1e-3}, None) == {"devices": 1, "lr": 1e-3}
    assert with_gpus({"devices": 1, "lr": 1e-3}, 4) == {
        "devices": 4,
        "accelerator": "cuda",
        "lr": 1e-3,
    }


def test_dp_shard_defaults_to_one_node_with_several_nodes():
    from tinyllama_cli.train.distributed import dp_shard_size

    assert dp_shard_size(None, 16, 8, 2) == 8  # HSDP: shard within a node, replicate across
    assert dp_shard_size(None, 4, 4, 1) == 4  # one node: plain FSDP
    assert dp_shard_size(2, 4, 4, 1) == 2
    with pytest.raises(UserError, match="does not divide"):
        dp_shard_size(3, 8, 8, 1)
