"""Write a native model as a Hugging Face Llama directory (DESIGN.md's file set).

config.json (LlamaForCausalLM, both the 4.x and 5.x RoPE/dtype spellings),
model.safetensors (sharded with model.safetensors.index.json above `max_shard_bytes`),
generation_config.json, and, given a tokenizer, tokenizer.model + tokenizer_config.json +
special_tokens_map.json so that `AutoTokenizer` gives [bos] + SentencePiece ids offline.
The directory is assembled under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from tinyllama_cli.convert.hf import hf_config_dict, native_to_hf_state_dict
from tinyllama_cli.errors import UserError
from tinyllama_cli.model import Llama
from tinyllama_cli.tokenizer import Tokenizer

DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


def save_hf(model: Llama, out_dir: str | Path, tokenizer: Tokenizer | None = None,
            dtype: torch.dtype = torch.float32, max_shard_bytes: int = 5 * 2**30,
            overwrite: bool = False) -> Path:
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise UserError(f"output directory {out_dir} already exists; choose another --out or pass --overwrite")
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)

    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in native_to_hf_state_dict(model.state_dict()).items()}
    shards = _split_shards(state, max_shard_bytes)
    if len(shards) == 1:
        save_file(shards[0], str(tmp / "model.safetensors"), metadata={"format": "pt"})
    else:
        weight_map = {}
        for i, shard in enumerate(shards, start=1):
            name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
            save_file(shard, str(tmp / name), metadata={"format": "pt"})
            weight_map.update({key: name for key in shard})
        total = sum(t.numel() * t.element_size() for t in state.values())
        _write_json(tmp / "model.safetensors.index.json", {"metadata": {"total_size": total}, "weight_map": weight_map})

    bos, eos = (tokenizer.bos_id, tokenizer.eos_id) if tokenizer else (1, 2)
    _write_json(tmp / "config.json", hf_config_dict(model.config, DTYPE_NAMES[dtype], bos, eos))
    _write_json(tmp / "generation_config.json", {"bos_token_id": bos, "eos_token_id": eos, "max_length": model.config.block_size})
    if tokenizer is not None:
        write_tokenizer_files(tokenizer, tmp)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return out_dir


def write_tokenizer_files(tokenizer: Tokenizer, directory: Path) -> None:
    """tokenizer.model plus the two JSON files transformers needs to rebuild it offline."""
    shutil.copyfile(tokenizer.path, directory / "tokenizer.model")
    piece = tokenizer.id_to_piece
    specials = {"bos_token": piece(tokenizer.bos_id), "eos_token": piece(tokenizer.eos_id), "unk_token": piece(tokenizer.sp.unk_id())}
    _write_json(directory / "tokenizer_config.json", {
        "tokenizer_class": "LlamaTokenizer",
        "add_bos_token": True,
        "add_eos_token": False,
        "legacy": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 1_000_000_000,
        "pad_token": None,
        **specials,
    })
    _write_json(directory / "special_tokens_map.json", specials)


def _split_shards(state: dict[str, torch.Tensor], max_bytes: int) -> list[dict[str, torch.Tensor]]:
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > max_bytes:
            shards.append({})
            size = 0
        shards[-1][key] = tensor
        size += nbytes
    return shards


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")
