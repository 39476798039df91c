"""Process group, device, precision, and the one place parallelism is applied to the model.

The model (`model.py`) is plain single-device PyTorch; `parallelize` wraps it from outside, in
torchtitan's order: activation checkpointing per block, then torch.compile per block, then FSDP2
`fully_shard` per block and finally the root. One worker trains the plain module (no process
group, no FSDP overhead); several shard parameters, gradients and optimizer state with FSDP2.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from tinyllama_cli.config import AUTO_COMPILE_MIN_MICRO_BATCHES
from tinyllama_cli.dtypes import canonical_precision
from tinyllama_cli.errors import UserError
from tinyllama_cli.hardware import cpp_compiler
from tinyllama_cli.train.launch_env import LaunchEnv


@dataclass
class World:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    mesh: object | None  # DeviceMesh when world_size > 1: 1-D (FSDP) or 2-D (HSDP)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_world() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's variables, else SLURM's, else (0, 1, 0).

    An srun task's ranks are exported as torchrun's variables, which `init_process_group`'s
    env:// rendezvous reads."""
    env = LaunchEnv.read()
    ranks = env.torchrun_ranks()
    if ranks is not None:
        return ranks
    ranks = env.srun_ranks()  # only with one srun task per worker (launch.launched_externally)
    if ranks is None:
        return 0, 1, 0
    if env.master_addr is None:
        raise UserError(
            "under srun with several tasks, set MASTER_ADDR (the first node) and "
            "MASTER_PORT, or start workers with `srun torchrun ...`"
        )
    rank, world, local = ranks
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(local))
    os.environ.setdefault("MASTER_PORT", "29500")
    return ranks


def resolve_accelerator(accelerator: str) -> str:
    if accelerator == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if accelerator not in ("cpu", "cuda"):
        raise UserError(f"--accelerator {accelerator!r} is not one of auto, cpu, cuda")
    if accelerator == "cuda" and not torch.cuda.is_available():
        raise UserError(
            "--accelerator cuda (or --gpus) was asked for but PyTorch sees no CUDA device; "
            "use --accelerator cpu or install a CUDA build of torch"
        )
    return accelerator


def init_world(accelerator: str) -> World:
    """Join the process group (gloo on CPU, NCCL on CUDA) when started as one of several workers."""
    rank, world_size, local_rank = env_world()
    kind = resolve_accelerator(accelerator)
    if kind == "cuda":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(
            "nccl" if kind == "cuda" else "gloo", timeout=datetime.timedelta(minutes=30)
        )
    return World(rank, world_size, local_rank, device, None)


def dp_shard_size(dp_shard: int | None, world_size: int, devices: int, nodes: int) -> int:
    """Workers per FSDP shard group (`--dp-shard`): parameters are sharded within a group and
    replicated across groups (HSDP), so the all-gathers of every layer stay inside a node and only
    the gradient all-reduce crosses nodes. Default: the workers of one node when there are
    several nodes (TinyLlama's and litgpt's multi-node setting), else all of them (plain FSDP)."""
    if dp_shard is None:
        return devices if nodes > 1 and world_size % devices == 0 else world_size
    if dp_shard < 1 or world_size % dp_shard:
        raise UserError(
            f"--dp-shard {dp_shard} does not divide the {world_size} worker(s) into "
            "equal shard groups; pick a divisor of --devices x --nodes (e.g. "
            "--devices, to shard within each node)"
        )
    return dp_shard


def with_mesh(world: World, dp_shard: int) -> World:
    """`world` with its device mesh: (world,) for FSDP, or (world / dp_shard, dp_shard) named
    dp_replicate x dp_shard for HSDP. An explicit mesh also on CPU: FSDP2 would otherwise assume
    a CUDA one."""
    if world.world_size == 1:
        return world
    from torch.distributed.device_mesh import init_device_mesh

    if dp_shard == world.world_size:
        mesh = init_device_mesh(world.device.type, (world.world_size,))
    else:
        mesh = init_device_mesh(
            world.device.type,
            (world.world_size // dp_shard, dp_shard),
            mesh_dim_names=("dp_replicate", "dp_shard"),
        )
    return dataclasses.replace(world, mesh=mesh)


def shutdown(world: World) -> None:
    if world.world_size > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def has_native_bf16_cpu() -> bool:
    """AMX or AVX512-BF16: the CPUs where bf16 matmuls are faster than fp32 (2.5x with AMX)."""
    from tinyllama_cli.hardware import cpu_bf16_kind

    return cpu_bf16_kind() is not None


def resolve_precision(precision: str, device: torch.device) -> str:
    """'bf16' or 'fp32' (any spelling `dtypes` accepts; auto decided by the device)."""
    precision = canonical_precision(precision)
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16"
    return "bf16" if has_native_bf16_cpu() else "fp32"


def resolve_compile(
    compile: bool | None, device: torch.device, precision: str, micro_batches: int
) -> tuple[bool, str]:
    """Whether this job compiles its blocks, and why: `--compile/--no-compile` as given, else
    auto, which compiles only where it was measured to pay for its compile time
    (benchmarks/bench_compile.py): CPU bf16 runs long enough to earn back a cold compile, with a
    C++ compiler for inductor. fp32 stays eager (a matmul-bound fp32 step gained nothing, and the
    fp32 exactness guarantees are stated for eager); CUDA stays eager until measured there."""
    if compile is not None:
        return compile, "--compile" if compile else "--no-compile"
    if device.type != "cpu":
        return False, "auto: not measured on this device"
    if precision != "bf16":
        return False, f"auto: {precision} on CPU"
    if micro_batches < AUTO_COMPILE_MIN_MICRO_BATCHES:
        return False, (
            f"auto: {micro_batches:,} micro batches, under {AUTO_COMPILE_MIN_MICRO_BATCHES:,}"
        )
    if cpp_compiler() is None:
        return False, "auto: no C++ compiler for inductor (install g++)"
    return True, f"auto: bf16 on CPU, {micro_batches:,} micro batches"


def parallelize(
    model: nn.Module, world: World, precision: str, compile: bool, activation_checkpointing: bool
) -> nn.Module:
    """Apply AC, compile and FSDP2 to a model (usually on the meta device: `train.build`
    allocates and fills it afterwards, shard by shard)."""
    blocks = model.layers
    for i, block in enumerate(list(blocks)):
        if activation_checkpointing:
            from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
                checkpoint_wrapper,
            )

            block = checkpoint_wrapper(block, preserve_rng_state=False)
        if compile:
            block = torch.compile(block)
        blocks.register_module(str(i), block)
    if world.world_size == 1:
        return model
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    # A 2-D mesh makes fully_shard HSDP: shard over its last dimension, replicate over the first.
    # On CUDA: bf16 parameters for compute, fp32 gradient reduction and fp32 master weights.
    # On CPU the computation dtype comes from autocast instead (FSDP's bf16 all-gather would
    # lose the fp32 weights that autocast keeps for the non-matmul ops).
    mp = MixedPrecisionPolicy()
    if world.device.type == "cuda" and precision == "bf16":
        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    for block in blocks:
        fully_shard(block, mesh=world.mesh, mp_policy=mp)
    fully_shard(model, mesh=world.mesh, mp_policy=mp)
    return model


def all_reduce_sum(values: list[float], world: World) -> list[float]:
    """Sum a few floats over workers (one small collective; identity on one worker)."""
    if world.world_size == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=world.device)
    dist.all_reduce(t)
    return t.tolist()


def clip_grad_norm(parameters: list[nn.Parameter], max_norm: float) -> torch.Tensor:
    """Global gradient norm over all workers, and clipping to it, correct for FSDP2 shards.

    With FSDP2 each gradient is a DTensor shard: the local norms are partial sums; `full_tensor()`
    reduces them so every worker clips with the same global norm (torchtitan's approach).
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    norm = torch.nn.utils.get_total_norm(grads, norm_type=2.0)
    if hasattr(norm, "full_tensor"):
        norm = norm.full_tensor()
    if max_norm > 0:
        torch.nn.utils.clip_grads_with_norm_(parameters, max_norm, norm)
    return norm
