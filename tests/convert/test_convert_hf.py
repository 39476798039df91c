"""convert native <-> Hugging Face: parity with transformers, tokenizer ids, round trip, shards."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch
import yaml

from tinyllama_cli.convert.api import convert
from tinyllama_cli.convert.output import parse_size
from tinyllama_cli.formats.native import read_native_state
from tinyllama_cli.load import load_model
from tinyllama_cli.tokenizer import Tokenizer

transformers = pytest.importorskip("transformers")

HF_FILES = {
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.model",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
}


def hf_model(directory):
    return transformers.AutoModelForCausalLM.from_pretrained(
        str(directory), dtype=torch.float32, local_files_only=True
    ).eval()


@torch.no_grad()
def greedy(model, idx, steps):
    """The simplest greedy decoder: full forward, argmax of the last position, append."""
    for _ in range(steps):
        idx = torch.cat([idx, model(idx)[:, -1].argmax(-1, keepdim=True)], dim=1)
    return idx


def test_native_to_hf_matches_transformers_logits_and_greedy_generation(run_dir, tmp_path):
    src, model = run_dir
    result = convert(src, "hf", tmp_path / "hf")
    out = tmp_path / "hf"
    assert {p.name for p in out.iterdir()} == HF_FILES
    assert result.verify is not None and result.verify.ok and result.verify.tokenizer == "match"
    assert result.params == model.num_params()

    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["rope_theta"] == config["rope_parameters"]["rope_theta"] == 10000.0
    assert config["dtype"] == config["torch_dtype"] == "float32"
    assert config["num_key_value_heads"] == 2 and config["vocab_size"] == 320

    hf = hf_model(out)
    hf.generation_config.eos_token_id = None  # run the full length on both sides
    idx = torch.randint(0, 300, (2, 12), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(hf(idx).logits, model(idx), atol=1e-5, rtol=1e-5)
    expected = hf.generate(idx, max_new_tokens=20, do_sample=False, pad_token_id=0)
    assert torch.equal(greedy(model, idx, 20), expected)


def test_autotokenizer_ids_equal_sentencepiece_with_bos(run_dir, tmp_path):
    src, _ = run_dir
    convert(src, "hf", tmp_path / "hf", verify=False)
    sp = Tokenizer(src / "tokenizer.model")
    auto = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "hf"), local_files_only=True)
    texts = [
        "the quick brown fox",
        "  two leading spaces",
        "trailing   ",
        "\nnew\nlines\n",
        "",
        "digits 0123456789",
        "naïve café déjà vu",
        "emoji 🦙 falls back to bytes",
        "tab\there",
    ]
    for text in texts:
        assert auto(text)["input_ids"] == sp.encode(text, bos=True), text
        assert auto.decode(auto(text)["input_ids"], skip_special_tokens=True) == sp.decode(
            sp.encode(text)
        )
    assert (auto.bos_token_id, auto.eos_token_id) == (sp.bos_id, sp.eos_id)


def test_native_hf_native_round_trip_is_bit_for_bit(run_dir, tmp_path):
    src, model = run_dir
    convert(src, "hf", tmp_path / "hf")
    result = convert(tmp_path / "hf", "native", tmp_path / "native")
    assert "transformers" in result.verify.method and result.verify.ok

    native = tmp_path / "native"
    checkpoint = native / "checkpoints" / "step-00000000"
    state = json.loads((checkpoint / "state.json").read_text())
    assert state["step"] == 0 and state["tokens_seen"] == 0
    assert state["source"] == str((tmp_path / "hf").resolve())
    assert yaml.safe_load((native / "config.yaml").read_text())["model"] == state["model_config"]
    assert (native / "tokenizer.model").read_bytes() == (src / "tokenizer.model").read_bytes()

    original = model.state_dict()
    restored = read_native_state(checkpoint, load_model(native).config)
    assert set(restored) == set(original)
    for name, tensor in original.items():
        assert torch.equal(restored[name], tensor), name
    loaded = load_model(native)  # what eval / generate / pretrain --init-from call
    assert loaded.kind == "native" and loaded.tokenizer is not None


def test_sharded_bf16_output_loads_in_transformers(run_dir, tmp_path):
    from safetensors import safe_open

    src, model = run_dir
    out = tmp_path / "hf"
    limit = parse_size("40kB")
    result = convert(src, "hf", out, dtype="bf16", max_shard_size="40kB")
    assert result.verify.ok
    index = json.loads((out / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 2 and not (out / "model.safetensors").exists()
    assert shards[0] == f"model-00001-of-{len(shards):05d}.safetensors"
    total = 0
    for name in shards:
        with safe_open(str(out / name), "pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
        assert all(t.dtype == torch.bfloat16 for t in tensors.values())
        size = sum(t.numel() * 2 for t in tensors.values())
        assert size <= limit or len(tensors) == 1
        assert all(index["weight_map"][k] == name for k in tensors)
        total += size
    assert index["metadata"]["total_size"] == total == model.num_params() * 2
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    rounded = {k: v.to(torch.bfloat16).float() for k, v in model.state_dict().items()}
    loaded = load_model(out)
    for name, tensor in loaded.model.state_dict().items():
        assert torch.equal(tensor, rounded[name]), name


def test_tied_hf_checkpoint_becomes_untied_native(tmp_path, convert_tokenizer):
    import shutil

    config = transformers.LlamaConfig(
        vocab_size=320,
        hidden_size=64,
        intermediate_size=160,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=True,
    )
    torch.manual_seed(5)
    hf = transformers.LlamaForCausalLM(config).eval()
    hf.save_pretrained(str(tmp_path / "tied"))
    shutil.copyfile(convert_tokenizer, tmp_path / "tied" / "tokenizer.model")
    result = convert(tmp_path / "tied", "native", tmp_path / "native")
    assert result.verify.ok and "transformers" in result.verify.method
    model = load_model(tmp_path / "native").model
    assert torch.equal(model.output.weight, hf.model.embed_tokens.weight)
    idx = torch.randint(0, 320, (1, 10))
    with torch.no_grad():
        torch.testing.assert_close(model(idx), hf(idx).logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "text,expected",
    [("2GB", 2 * 10**9), ("500MB", 500 * 10**6), ("1GiB", 2**30), ("1.5kb", 1500), ("4096", 4096)],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


def test_cli_prints_table_and_json(run_dir, tmp_path):
    from typer.testing import CliRunner

    from tinyllama_cli.cli import app

    src, _ = run_dir
    runner = CliRunner()
    result = runner.invoke(app, ["convert", str(src), "--to", "hf", "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    assert (
        "model.safetensors" in result.output
        and "verify: OK" in result.output
        and "params 127,296" in result.output
    )
    result = runner.invoke(
        app,
        ["convert", str(src), "--to", "hf", "--out", str(tmp_path / "b"), "--json", "--no-verify"],
    )
    data = json.loads(result.stdout)
    assert data["target"] == "hf" and data["verify"] is None
    assert {f["name"] for f in data["files"]} == HF_FILES


@pytest.mark.parametrize(
    "spelling, name, torch_name",
    [
        ("fp32", "fp32", "float32"),
        ("float32", "fp32", "float32"),
        ("bf16", "bf16", "bfloat16"),
        ("bfloat16", "bf16", "bfloat16"),
        ("fp16", "fp16", "float16"),
        ("float16", "fp16", "float16"),
    ],
)
def test_cli_dtype_takes_every_spelling(run_dir, tmp_path, spelling, name, torch_name):
    from safetensors import safe_open
    from typer.testing import CliRunner

    from tinyllama_cli.cli import app

    src, _ = run_dir
    out = tmp_path / "hf"
    result = CliRunner().invoke(
        app,
        [
            "convert",
            str(src),
            "--to",
            "hf",
            "--out",
            str(out),
            "--dtype",
            spelling,
            "--json",
            "--no-verify",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["dtype"] == name  # the canonical spelling is reported
    assert json.loads((out / "config.json").read_text())["dtype"] == torch_name
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert f.get_tensor("lm_head.weight").dtype == getattr(torch, torch_name)


def test_hf_export_generates_without_warnings(run_dir, tmp_path):
    """transformers' generate(max_new_tokens=...) on the export logs and warns nothing (a
    max_length in generation_config.json made it log "Both max_new_tokens and max_length
    seem to have been set" on every call)."""
    import logging
    import warnings

    src, _ = run_dir
    convert(src, "hf", tmp_path / "hf", verify=False)
    assert json.loads((tmp_path / "hf" / "generation_config.json").read_text()) == {
        "bos_token_id": 1,
        "eos_token_id": 2,
        "suppress_tokens": list(range(300, 320)),
    }  # the fixture's padded rows (vocab 320, 300 pieces)
    model = hf_model(tmp_path / "hf")
    tokenizer = transformers.AutoTokenizer.from_pretrained(
        str(tmp_path / "hf"), local_files_only=True
    )
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = logging.getLogger("transformers")  # does not propagate to the root logger
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = model.generate(
                **tokenizer("the quick brown", return_tensors="pt"),
                max_new_tokens=4,
                do_sample=False,
            )
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert out.shape[1] > 4  # it did generate
    assert [r.getMessage() for r in records] == [] and [str(w.message) for w in caught] == []


def test_tokenizer_max_length_is_the_models_context(run_dir, tmp_path):
    src, _ = run_dir
    convert(src, "hf", tmp_path / "hf", verify=False)
    saved = json.loads((tmp_path / "hf" / "tokenizer_config.json").read_text())
    assert saved["model_max_length"] == 64  # CONVERT_CONFIG.block_size
    tokenizer = transformers.AutoTokenizer.from_pretrained(
        str(tmp_path / "hf"), local_files_only=True
    )
    assert tokenizer.model_max_length == 64
    assert len(tokenizer("the quick brown fox " * 40, truncation=True)["input_ids"]) == 64


@pytest.mark.parametrize("umask", [0o022, 0o027])
@pytest.mark.parametrize("to", ["hf", "native", "gguf"])
def test_written_files_follow_the_umask(run_dir, tmp_path, umask, to):
    """Every file as a plain open() would create it (safetensors' own files were 0600)."""
    src, _ = run_dir
    out = tmp_path / to
    old = os.umask(umask)
    try:
        convert(src, to, out, verify=False, max_shard_size="100kB")  # hf: several shards
    finally:
        os.umask(old)
    files = [p for p in [out, *out.rglob("*")] if p.is_file()]
    dirs = [p for p in [out, *out.rglob("*")] if p.is_dir()]
    if to == "hf":
        assert len([p for p in files if p.suffix == ".safetensors"]) > 1
    modes = {str(p.relative_to(tmp_path)): stat.S_IMODE(p.stat().st_mode) for p in files}
    assert modes and set(modes.values()) == {0o666 & ~umask}, {k: oct(v) for k, v in modes.items()}
    assert {stat.S_IMODE(p.stat().st_mode) for p in dirs} <= {0o777 & ~umask}


def test_tinyllama_style_bf16_checkpoint_to_native(tmp_path, convert_tokenizer):
    """A config.json as TinyLlama publishes it (transformers 4.35 keys: rope_theta, torch_dtype,
    no head_dim or rope_parameters) with bf16 safetensors, shrunk to test size."""
    import shutil

    from safetensors.torch import save_file

    from tinyllama_cli.formats.hf import native_to_hf_state_dict
    from tinyllama_cli.model import Llama

    from .conftest import CONVERT_CONFIG

    src = tmp_path / "TinyLlama-tiny"
    src.mkdir()
    (src / "config.json").write_text(
        json.dumps(
            {
                "architectures": ["LlamaForCausalLM"],
                "bos_token_id": 1,
                "eos_token_id": 2,
                "hidden_act": "silu",
                "hidden_size": 64,
                "initializer_range": 0.02,
                "intermediate_size": 160,
                "max_position_embeddings": 64,
                "model_type": "llama",
                "num_attention_heads": 4,
                "num_hidden_layers": 2,
                "num_key_value_heads": 2,
                "pretraining_tp": 1,
                "rms_norm_eps": 1e-05,
                "rope_scaling": None,
                "rope_theta": 10000.0,
                "tie_word_embeddings": False,
                "torch_dtype": "bfloat16",
                "transformers_version": "4.35.0",
                "use_cache": True,
                "vocab_size": 320,
            }
        )
    )
    torch.manual_seed(9)
    native = {k: v.to(torch.bfloat16) for k, v in Llama(CONVERT_CONFIG).state_dict().items()}
    save_file(
        {k: v.contiguous() for k, v in native_to_hf_state_dict(native).items()},
        str(src / "model.safetensors"),
    )
    shutil.copyfile(convert_tokenizer, src / "tokenizer.model")
    result = convert(src, "native", tmp_path / "native")
    assert result.verify.ok and "transformers" in result.verify.method
    loaded = load_model(tmp_path / "native")
    assert loaded.config.replace(name=CONVERT_CONFIG.name) == CONVERT_CONFIG
    for name, tensor in loaded.model.state_dict().items():
        assert tensor.dtype == torch.float32 and torch.equal(tensor, native[name].float()), name
