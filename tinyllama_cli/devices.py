"""Where, and in which dtype, `eval` and `generate` run a model: their `--device` and `--dtype`.

`--device auto` is the CUDA GPU when there is one, else the CPU; otherwise any device string
torch accepts (cpu, cuda, cuda:1). `--dtype auto` (generate) is bf16 on a CUDA GPU that
supports it (half the bytes per token, flash-attn) and fp32 elsewhere: measured on all three CPU
kinds at hand, bf16 weights decoded slower than fp32 (no native bf16; AMX: 52 vs 65 tok/s; AMD
AVX512-BF16: 273 vs 318 tok/s against input-major fp32) and changed greedy output
(docs/generate.md); the spellings are `dtypes`'. Training decides its own device and precision
(`train/distributed.py`), per worker.

Like `dtypes`, this module imports torch only when called, so importing `tinyllama_cli.eval`
stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tinyllama_cli.dtypes import parse_dtype
from tinyllama_cli.errors import UserError

if TYPE_CHECKING:
    import torch

AUTO = ("auto", "", None)  # what `auto` may arrive as from the CLI and from Python callers
# The error for a CUDA device on a machine without one; `{device}` is the value given. eval's
# wording; generate passes its own, so each command says what it said before they shared this.
NO_CUDA = "--device {device} asked for CUDA, which this machine lacks; use --device cpu"


def resolve_device(name: str | None, no_cuda: str = NO_CUDA) -> torch.device:
    """The torch.device of a `--device` value, or a UserError for one torch does not know or a
    CUDA device this machine lacks (before anything slow is loaded)."""
    import torch

    if name in AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown --device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(no_cuda.format(device=name))
    return device


def resolve_dtype(name: str, device: torch.device | None = None) -> torch.dtype:
    """Any spelling `dtypes` accepts, or `auto`: bfloat16 on a CUDA GPU that supports it,
    float32 elsewhere."""
    import torch

    _, dtype = parse_dtype(name, "--dtype", auto=True)
    if dtype is None:
        on_gpu = device is not None and device.type == "cuda"
        return torch.bfloat16 if on_gpu and torch.cuda.is_bf16_supported() else torch.float32
    return dtype
