"""dtypes.py: one set of dtype spellings for pretrain, convert, eval and generate.

The per-command tests that each spelling really takes effect are beside each command's other
tests (tests/convert, tests/train, tests/eval, test_generate.py); here are the parser, the
torch-free import and the refusal of a bad value by every command: exit 2, one line, no output.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from tinyllama_cli.dtypes import canonical_dtype, canonical_precision, parse_dtype
from tinyllama_cli.errors import UserError

SPELLINGS = [
    ("fp32", "fp32", torch.float32),
    ("float32", "fp32", torch.float32),
    ("bf16", "bf16", torch.bfloat16),
    ("bfloat16", "bf16", torch.bfloat16),
    ("fp16", "fp16", torch.float16),
    ("float16", "fp16", torch.float16),
    ("BFloat16", "bf16", torch.bfloat16),
]


@pytest.mark.parametrize("text, name, dtype", SPELLINGS)
def test_every_spelling_maps_to_one_canonical_name_and_torch_dtype(text, name, dtype):
    assert parse_dtype(text) == (name, dtype)
    assert canonical_dtype(text, "--dtype") == name


def test_auto_only_where_the_command_has_it():
    assert parse_dtype("auto", auto=True) == ("auto", None)
    with pytest.raises(
        UserError,
        match=r"--dtype 'auto' is not a dtype this command takes; use "
        r"fp32/float32, bf16/bfloat16, fp16/float16$",
    ):
        parse_dtype("auto")


def test_training_precision_refuses_fp16_and_says_why():
    assert [canonical_precision(t) for t in ("auto", "float32", "bfloat16", "bf16")] == [
        "auto",
        "fp32",
        "bf16",
        "bf16",
    ]
    with pytest.raises(
        UserError,
        match=r"--precision float16 is not supported: training in fp16 "
        r"needs a gradient scaler.*; use auto, fp32/float32, "
        r"bf16/bfloat16$",
    ):
        canonical_precision("float16")
    with pytest.raises(UserError, match=r"--precision 'fp8' is not a dtype"):
        canonical_precision("fp8")


def test_the_spellings_do_not_import_torch():
    """config.py (and so plan.py) parse --precision: the parser must not pull torch in."""
    code = (
        "import sys; import tinyllama_cli.plan, tinyllama_cli.dtypes as d; "
        "d.canonical_precision('bfloat16'); assert 'torch' not in sys.modules, 'torch imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    "args, fragment",
    [
        (
            ["convert", "nowhere", "--to", "hf", "--out", "x", "--dtype", "fp8"],
            (
                "--dtype 'fp8' is not a dtype this command takes; use fp32/float32, bf16/bfloat16, "
                "fp16/float16"
            ),
        ),
        (
            ["eval", "nowhere", "--dtype", "double"],
            "--dtype 'double' is not a dtype this command takes; use fp32/float32",
        ),
        (
            ["generate", "nowhere", "--prompt", "x", "--dtype", "half"],
            "--dtype 'half' is not a dtype this command takes; use auto, fp32/float32",
        ),
        (
            ["pretrain", "--data", "nowhere", "--out", "x", "--precision", "fp8"],
            (
                "--precision 'fp8' is not a dtype this command takes; use auto, fp32/float32, "
                "bf16/bfloat16"
            ),
        ),
        (
            ["pretrain", "--data", "nowhere", "--out", "x", "--precision", "fp16"],
            "--precision fp16 is not supported: training in fp16 needs a gradient scaler",
        ),
    ],
)
def test_every_command_refuses_a_bad_dtype_with_one_line_and_exit_2(tmp_path, args, fragment):
    proc = subprocess.run(
        [sys.executable, "-m", "tinyllama_cli", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        timeout=120,
    )
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == "" and len(lines) == 1 and fragment in lines[0], proc.stderr
