"""convert's bad inputs: one line on stderr, exit status 2, nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from tinyllama_cli.config import ModelConfig
from tinyllama_cli.convert.api import convert
from tinyllama_cli.errors import UserError
from tinyllama_cli.formats.hf import hf_config_dict, native_to_hf_state_dict
from tinyllama_cli.model import Llama

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, "-m", "tinyllama_cli", "convert", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def assert_user_error(proc: subprocess.CompletedProcess, fragment: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def assert_nothing_written(parent: Path, out: Path) -> None:
    assert not out.exists()
    assert not [p for p in parent.iterdir() if ".tmp" in p.name]


def write_hf(
    directory: Path,
    config: ModelConfig,
    hf_config: dict | None = None,
    state_config: ModelConfig | None = None,
):
    from safetensors.torch import save_file

    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(hf_config or hf_config_dict(config)))
    model = Llama(state_config or config)
    save_file(
        {k: v.contiguous() for k, v in native_to_hf_state_dict(model.state_dict()).items()},
        str(directory / "model.safetensors"),
    )


SMALL = ModelConfig(
    name="s",
    vocab_size=64,
    n_layer=1,
    n_embd=32,
    n_head=2,
    n_kv_head=1,
    intermediate_size=64,
    block_size=16,
)


def test_not_a_model_directory(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_user_error(
        run_cli(tmp_path / "empty", "--to", "hf", "--out", tmp_path / "out"),
        "is not a model directory",
    )
    with pytest.raises(UserError, match="does not exist"):
        convert(tmp_path / "missing", "gguf", tmp_path / "out")
    assert_nothing_written(tmp_path, tmp_path / "out")


def test_hf_model_that_is_not_llama(tmp_path):
    config = {**hf_config_dict(SMALL), "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}
    write_hf(tmp_path / "gpt2", SMALL, hf_config=config)
    assert_user_error(
        run_cli(tmp_path / "gpt2", "--to", "native", "--out", tmp_path / "out"), "not Llama"
    )
    assert_nothing_written(tmp_path, tmp_path / "out")


def test_wrong_tensor_shapes_hf_and_native(tmp_path, run_dir):
    write_hf(tmp_path / "hf", SMALL, state_config=SMALL.replace(intermediate_size=48))
    assert_user_error(
        run_cli(tmp_path / "hf", "--to", "native", "--out", tmp_path / "out"),
        "the config implies (",
    )
    src, _ = run_dir  # a run whose state.json disagrees with its tensors
    state_path = next(src.glob("checkpoints/*/state.json"))
    state = json.loads(state_path.read_text())
    state["model_config"]["n_embd"] = 32
    state_path.write_text(json.dumps(state))
    with pytest.raises(UserError, match="the config implies"):
        convert(src, "hf", tmp_path / "out")
    assert_nothing_written(tmp_path, tmp_path / "out")


def test_existing_output_needs_overwrite(tmp_path, run_dir):
    src, _ = run_dir
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert_user_error(run_cli(src, "--to", "hf", "--out", out), "already exists")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    convert(src, "native", out, overwrite=True, verify=False)
    assert (
        not (out / "keep.txt").exists()
        and (out / "checkpoints" / "step-00000000" / "state.json").is_file()
    )


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--to", "onnx"], "is not a target"),
        (
            ["--to", "hf", "--dtype", "int8"],
            "not a dtype this command takes; use fp32/float32, bf16/bfloat16",
        ),
        (["--to", "native", "--dtype", "bf16"], "native checkpoints hold fp32 weights"),
        (["--to", "native", "--dtype", "bfloat16"], "native checkpoints hold fp32 weights"),
        (["--to", "hf", "--max-shard-size", "lots"], "is not a size"),
    ],
)
def test_bad_arguments(tmp_path, run_dir, args, fragment):
    src, _ = run_dir
    with pytest.raises(UserError, match=fragment):
        convert(
            src,
            args[1],
            tmp_path / "out",
            **dict(zip([a.lstrip("-").replace("-", "_") for a in args[2::2]], args[3::2])),
        )
    assert_nothing_written(tmp_path, tmp_path / "out")


def test_gguf_needs_a_tokenizer(tmp_path, run_dir):
    src, _ = run_dir
    (src / "tokenizer.model").unlink()
    with pytest.raises(UserError, match="tokenizer"):
        convert(src, "gguf", tmp_path / "out.gguf")
    assert_nothing_written(tmp_path, tmp_path / "out.gguf")


def test_a_verification_mismatch_fails_and_writes_nothing(tmp_path, run_dir, monkeypatch):
    """Break each writer on purpose: verification must catch it and leave no output behind."""
    import tinyllama_cli.formats.gguf as gguf_mod
    import tinyllama_cli.formats.hf as hf_mod

    src, _ = run_dir
    monkeypatch.setattr(
        gguf_mod, "permute_for_gguf", lambda w, n_heads: w
    )  # forget the permutation
    with pytest.raises(UserError, match="verification failed"):
        convert(src, "gguf", tmp_path / "g.gguf", verify=True)
    assert_nothing_written(tmp_path, tmp_path / "g.gguf")

    pytest.importorskip("transformers")
    wrong_rope = lambda config, *a: hf_config_dict(config.replace(rope_base=500000.0), *a)
    monkeypatch.setattr(hf_mod, "hf_config_dict", wrong_rope)
    with pytest.raises(UserError, match="verification failed"):
        convert(src, "hf", tmp_path / "hf")
    assert_nothing_written(tmp_path, tmp_path / "hf")


def test_sharded_dcp_checkpoint_consolidates_model_entries_only(tmp_path, run_dir):
    """A training checkpoint with optimizer state: only model entries are read, no process group."""
    import torch.distributed.checkpoint as dcp

    src, model = run_dir
    checkpoint = src / "checkpoints" / "step-00000020"
    checkpoint.mkdir()
    optim = {"state": {k: {"exp_avg": torch.randn_like(v)} for k, v in model.state_dict().items()}}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*single process.*")
        dcp.save(
            {"model": model.state_dict(), "optim": optim},
            checkpoint_id=str(checkpoint),
            no_dist=True,
        )
    (checkpoint / "state.json").write_text(
        json.dumps({"step": 20, "model_config": model.config.to_dict()})
    )
    result = convert(src, "native", tmp_path / "out", verify=True)
    assert result.source.endswith("step-00000020") and result.verify.max_abs_diff == 0.0
    assert not torch.distributed.is_initialized()


def test_without_transformers_verify_defaults_off_and_hf_verify_is_refused(
    tmp_path, run_dir, monkeypatch
):
    import tinyllama_cli.convert.verify as verify_mod

    src, _ = run_dir
    monkeypatch.setattr(verify_mod, "transformers_available", lambda: False)
    with pytest.raises(UserError, match="needs transformers"):
        convert(src, "hf", tmp_path / "hf", verify=True)
    assert_nothing_written(tmp_path, tmp_path / "hf")
    assert convert(src, "gguf", tmp_path / "m.gguf").verify is None
    result = convert(src, "native", tmp_path / "native", verify=True)  # needs only this package
    assert (
        result.verify.ok
        and result.verify.max_abs_diff == 0.0
        and "vs tinyllama" in result.verify.method
    )
