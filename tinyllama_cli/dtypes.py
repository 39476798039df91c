"""One set of dtype spellings for every command: fp32/float32, bf16/bfloat16, fp16/float16.

`pretrain --precision`, `convert --dtype`, `eval --dtype` and `generate --dtype` all parse their
value here, so a spelling one command accepts is accepted by all of them (a user should not have
to remember that training says `bf16` and evaluation `bfloat16`). The short name is canonical:
it is what config.yaml and JSON outputs store. `auto` is passed through for the commands that
decide the dtype from the device themselves.

This module imports no torch at import time (`config.py`, and through it `plan.py`, use it);
`torch_dtype` imports torch when it is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tinyllama_cli.errors import UserError

if TYPE_CHECKING:
    import torch

# canonical name -> the other spelling (torch's attribute name, used by HF and lm-eval)
TORCH_NAMES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
ALL = tuple(TORCH_NAMES)
SPELLINGS = {
    **{short: short for short in TORCH_NAMES},
    **{long: short for short, long in TORCH_NAMES.items()},
}
AUTO = "auto"

# Why training refuses fp16: it needs loss scaling (a GradScaler, sharded under FSDP2), which
# the trainer does not implement; bf16 has fp32's exponent range and needs none.
TRAIN_PRECISIONS = ("fp32", "bf16")
FP16_TRAINING = "training in fp16 needs a gradient scaler, which the trainer does not have"


def accepted(choices: tuple[str, ...] = ALL, auto: bool = False) -> str:
    """The accepted spellings as help texts and errors list them: 'auto, fp32/float32, ...'."""
    names = [f"{name}/{TORCH_NAMES[name]}" for name in choices]
    return ", ".join([AUTO] * auto + names)


def canonical_dtype(
    text: str,
    flag: str,
    choices: tuple[str, ...] = ALL,
    auto: bool = False,
    refused: dict[str, str] | None = None,
) -> str:
    """'bfloat16' -> 'bf16' (any accepted spelling, any case), 'auto' when `auto`; else a
    UserError naming `flag`, the value and the accepted spellings. `refused` gives the reason
    for a known dtype this command does not take (pretrain and fp16)."""
    value = str(text).strip().lower()
    if auto and value == AUTO:
        return AUTO
    name = SPELLINGS.get(value)
    if name is not None and name in choices:
        return name
    if name is not None and refused and name in refused:
        raise UserError(
            f"{flag} {text} is not supported: {refused[name]}; use {accepted(choices, auto)}"
        )
    raise UserError(
        f"{flag} {text!r} is not a dtype this command takes; use {accepted(choices, auto)}"
    )


def torch_dtype(name: str) -> torch.dtype:
    """The torch.dtype of a canonical name ('bf16' -> torch.bfloat16)."""
    import torch

    return getattr(torch, TORCH_NAMES[name])


def parse_dtype(
    text: str, flag: str = "--dtype", choices: tuple[str, ...] = ALL, auto: bool = False
) -> tuple[str, torch.dtype | None]:
    """(canonical name, torch.dtype) of a spelling; the dtype is None for 'auto', which the
    caller resolves from its device."""
    name = canonical_dtype(text, flag, choices, auto)
    return name, None if name == AUTO else torch_dtype(name)


def canonical_precision(text: str) -> str:
    """pretrain/resume --precision: auto, fp32/float32 or bf16/bfloat16 (fp16 refused, why said)."""
    return canonical_dtype(
        text, "--precision", TRAIN_PRECISIONS, auto=True, refused={"fp16": FP16_TRAINING}
    )
