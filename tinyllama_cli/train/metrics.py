"""Where training numbers go: the console (rich), metrics.jsonl, TensorBoard, W&B (optional).

Only rank 0 logs. MFU = model FLOPs per token (`ModelConfig.flops_per_token`, torchtitan's
convention) x tokens/s / (peak FLOP/s per device x devices). Peak FLOP/s come from `--peak-flops`,
from hardware.py's GPU table at the training precision (bf16 tensor cores, or plain fp32), or on
a CPU from one core's matmul rate measured in CPU time (`hardware.cpu_peak_flops`: the same on a
busy machine as on a quiet one) times the worker's threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tinyllama_cli import files, rundir
from tinyllama_cli.hardware import cpu_bf16_kind, cpu_peak_flops, gpu_for_device_name
from tinyllama_cli.units import si


def peak_flops_per_device(
    device: torch.device, override: float | None, precision: str, threads: int = 1
) -> tuple[float, str]:
    """(peak FLOP/s of one worker at `precision`, where the number comes from)."""
    if override:
        return float(override), "--peak-flops"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        gpu = gpu_for_device_name(name)
        if gpu is not None:
            return gpu.peak_tflops(precision) * 1e12, f"{gpu.name} {precision} datasheet"
        return 312e12, f"unknown GPU {name!r}: A100 bf16 figure assumed, set --peak-flops"
    bf16 = cpu_bf16_kind()
    kind = f"{precision} ({bf16} CPU)" if bf16 else f"{precision} (CPU without native bf16)"
    return (
        cpu_peak_flops(precision, threads),
        f"one core's best {kind} matmul in CPU time x {threads} thread(s)",
    )


@dataclass
class Interval:
    """The optimizer steps since the last logged record, which the next record averages.

    `seconds` counts training steps only: validation and checkpoint saves between two records
    are not in the throughput (they made periodic dips of the logged tokens/s). The pending
    interval is saved in each checkpoint's state.json, so a run resumed mid-interval logs the
    same mean loss at the next --log-every step as the uninterrupted run.
    """

    loss_sum: float = 0.0
    steps: int = 0
    seconds: float = 0.0

    def add(self, loss: float, seconds: float) -> None:
        self.loss_sum += loss
        self.steps += 1
        self.seconds += seconds

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / self.steps

    def to_dict(self) -> dict[str, float]:
        return {"loss_sum": self.loss_sum, "steps": self.steps, "seconds": self.seconds}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Interval:
        return cls(**data) if data else cls()


def _tensorboard_tag(key: str) -> str:
    """val_loss -> val/val_loss, loss -> train/loss; downstream scores keep
    `eval/<task>/<metric>`."""
    if key.startswith("eval/"):
        return key
    return ("val/" if key.startswith("val") else "train/") + key


class MetricsLogger:
    """metrics.jsonl + TensorBoard + W&B + console rows; a no-op on ranks other than 0."""

    def __init__(
        self,
        run_dir: Path,
        enabled: bool,
        resume_step: int,
        tensorboard: bool,
        wandb: bool,
        wandb_project: str,
        config: dict[str, Any],
        console: Any = None,
    ):
        self.enabled = enabled
        self.run_dir = run_dir
        self.console = console
        self.tb = self.wb = None
        if not enabled:
            return
        rundir.truncate_metrics(run_dir, resume_step)  # the steps after the checkpoint are redone
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(
                str(run_dir / rundir.TENSORBOARD_DIR),
                purge_step=resume_step + 1 if resume_step else None,
            )
        if wandb:
            try:
                import wandb as wandb_lib
            except ImportError:
                from tinyllama_cli.errors import UserError

                raise UserError(
                    "--wandb needs the wandb package; `pip install wandb` or drop --wandb"
                ) from None
            self.wb = wandb_lib.init(
                project=wandb_project,
                dir=str(run_dir),
                config=config,
                name=run_dir.name,
                resume="allow",
                id=_wandb_id(run_dir),
            )

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        rundir.append_metrics(self.run_dir, record)
        step = record["step"]
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)) and self.tb is not None:
                self.tb.add_scalar(_tensorboard_tag(key), value, step)
        if self.wb is not None:
            self.wb.log({k: v for k, v in record.items() if k != "step"}, step=step)

    def print(self, text: str) -> None:
        if self.enabled and self.console is not None:
            self.console.print(text, highlight=False)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wb is not None:
            self.wb.finish()


def _wandb_id(run_dir: Path) -> str:
    path = run_dir / rundir.WANDB_ID_FILE
    if not path.exists():
        import uuid

        files.write_text(path, uuid.uuid4().hex[:12])
    return path.read_text().strip()


def format_row(r: dict[str, Any], max_steps: int, eta_s: float | None) -> str:
    eta = "" if eta_s is None else f"  eta {_hms(eta_s)}"
    return (
        f"step [bold]{r['step']:>7}[/]/{max_steps}  loss [cyan]{r['loss']:.4f}[/]  lr {r['lr']:.2e}"
        f"  gnorm {r['grad_norm']:.3f}  {r['tokens_per_sec']:,.0f} tok/s  mfu {100 * r['mfu']:.1f}%"
        f"  tokens {si(r['tokens_seen'], '.2f')}{eta}"
    )


def _hms(seconds: float) -> str:
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}"
