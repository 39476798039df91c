"""Run under torchrun by tests/train/test_train_build.py: build a model as the trainer does on
each worker, then write what the test checks (the full weights gathered, and memory figures)."""

from __future__ import annotations

import json
import os
import resource
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

from tinyllama_cli.config import TrainConfig, get_preset
from tinyllama_cli.train.build import build_model
from tinyllama_cli.train.distributed import init_world
from tinyllama_cli.train.setup import Run


def main(out: Path, preset: str, vocab: int, init_from: str | None, gather: bool) -> None:
    torch.set_num_threads(1)
    world = init_world("cpu")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run = Run(
        out,
        TrainConfig.of(seed=7, init_from=init_from),
        get_preset(preset).replace(vocab_size=vocab),
        "",
    )
    model = build_model(run, world, "fp32", compile=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    local = sum(
        p.to_local().numel() if hasattr(p, "to_local") else p.numel() for p in model.parameters()
    )
    (out / f"rank{world.rank}.json").write_text(
        json.dumps({"local_params": local, "rss_growth_bytes": (peak - before) * 1024})
    )
    if gather:
        state = get_model_state_dict(
            model, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
        )
        if world.rank == 0:
            torch.save(state, out / "full.pt")
    dist.barrier()
    dist.destroy_process_group()
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    out, preset, vocab, init_from, gather = sys.argv[1:6]
    main(Path(out), preset, int(vocab), None if init_from == "-" else init_from, gather == "1")
