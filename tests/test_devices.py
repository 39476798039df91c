"""devices.py: `--device` and `--dtype` of eval and generate."""

import pytest
import torch

from tinyllama_cli import devices
from tinyllama_cli.devices import resolve_device, resolve_dtype
from tinyllama_cli.errors import UserError


def test_auto_dtype_is_float32_off_gpu_and_names_are_checked():
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(
        UserError, match="--dtype 'fp8' is not a dtype this command takes; use auto"
    ):
        resolve_dtype("fp8")


def test_devices_are_checked_before_anything_loads(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for auto in ("auto", "", None):
        assert resolve_device(auto) == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(UserError, match="unknown --device 'gpu0'; use auto, cpu, cuda or cuda:N"):
        resolve_device("gpu0")
    with pytest.raises(UserError, match="--device cuda:1 asked for CUDA, which this machine lacks"):
        resolve_device("cuda:1")
    with pytest.raises(UserError, match="^no GPU for cuda$"):
        resolve_device("cuda", no_cuda="no GPU for {device}")
    assert devices.NO_CUDA.format(device="cuda").endswith("use --device cpu")


def test_eval_and_generate_keep_their_own_words_for_a_missing_gpu(monkeypatch):
    from tinyllama_cli import generate
    from tinyllama_cli.eval import evaluate

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="^--device cuda asked for CUDA, which this machine lacks"):
        evaluate("unused", "hellaswag", device="cuda")
    with pytest.raises(UserError, match="^--device cuda was asked for but no CUDA GPU is avail"):
        generate.load_for_generation("unused", device="cuda")
