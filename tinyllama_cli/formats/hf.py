"""Hugging Face Llama directories, read and written: `LlamaForCausalLM` tensor names, config.json
in both directions, safetensors (sharded above a size), and the tokenizer files.

    config.json                 LlamaForCausalLM, both the 4.x and 5.x RoPE/dtype spellings
    model.safetensors           or model-0000k-of-0000N.safetensors + model.safetensors.index.json
    generation_config.json      the special tokens only
    tokenizer.model, tokenizer.json, tokenizer_config.json, special_tokens_map.json
                                so that `AutoTokenizer` gives [bos] + SentencePiece ids offline

Both sides use the half-split RoPE convention, so tensors map one-to-one with no permutation;
only names differ. `load.py` reads these directories, `convert` and `eval --backend hf` write
them; `write_hf` fills a directory that does not exist yet (so `convert` can verify before the
rename), `save_hf` is the standalone staged writer (`files.staged`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from tinyllama_cli.config import ModelConfig
from tinyllama_cli.errors import UserError
from tinyllama_cli.files import make_plain_file, staged, write_json
from tinyllama_cli.formats.names import NameMap
from tinyllama_cli.model import Llama
from tinyllama_cli.tokenizer import Tokenizer

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX_FILE = "model.safetensors.index.json"
DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}

NAMES = NameMap(
    "model.layers",
    top_level={
        "tok_embeddings.weight": "model.embed_tokens.weight",
        "norm.weight": "model.norm.weight",
        "output.weight": "lm_head.weight",
    },
    per_layer={
        "attention_norm.weight": "input_layernorm.weight",
        "attention.wq.weight": "self_attn.q_proj.weight",
        "attention.wk.weight": "self_attn.k_proj.weight",
        "attention.wv.weight": "self_attn.v_proj.weight",
        "attention.wo.weight": "self_attn.o_proj.weight",
        "ffn_norm.weight": "post_attention_layernorm.weight",
        "feed_forward.w1.weight": "mlp.gate_proj.weight",
        "feed_forward.w3.weight": "mlp.up_proj.weight",
        "feed_forward.w2.weight": "mlp.down_proj.weight",
    },
)


def native_to_hf_name(name: str) -> str:
    hf = NAMES.to_external(name)
    if hf is None:
        raise KeyError(f"no Hugging Face name for native parameter {name!r}")
    return hf


def hf_to_native_name(name: str) -> str | None:
    """The native name, or None for tensors the native model does not keep (rotary inv_freq)."""
    if NAMES.layer_suffix(name) == "self_attn.rotary_emb.inv_freq":
        return None
    native = NAMES.to_native(name)
    if native is None:
        raise UserError(
            f"tensor {name!r} is not part of a Llama model; convert only LlamaForCausalLM "
            "checkpoints"
        )
    return native


def native_to_hf_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {native_to_hf_name(k): v for k, v in state.items()}


def hf_to_native_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename HF tensors; a tied checkpoint (no lm_head) gets the embedding as its output head."""
    out = {}
    for key, value in state.items():
        name = hf_to_native_name(key)
        if name is not None:
            out[name] = value
    if "output.weight" not in out and "tok_embeddings.weight" in out:
        out["output.weight"] = out["tok_embeddings.weight"]
    return out


def hf_config_dict(
    config: ModelConfig, dtype: str = "float32", bos_id: int = 1, eos_id: int = 2
) -> dict[str, Any]:
    """config.json for LlamaForCausalLM, readable by transformers 4.x (rope_theta, torch_dtype)
    and 5.x (rope_parameters, dtype): both spellings are written."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": config.vocab_size,
        "hidden_size": config.n_embd,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.n_layer,
        "num_attention_heads": config.n_head,
        "num_key_value_heads": config.n_kv_head,
        "head_dim": config.head_dim,
        "max_position_embeddings": config.block_size,
        "rms_norm_eps": config.norm_eps,
        "rope_theta": config.rope_base,
        "rope_scaling": None,
        "rope_parameters": {"rope_type": "default", "rope_theta": config.rope_base},
        "hidden_act": "silu",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "tie_word_embeddings": False,
        "initializer_range": 0.02,
        "pretraining_tp": 1,
        "use_cache": True,
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
        "torch_dtype": dtype,
        "dtype": dtype,
    }


def model_config_from_hf(hf: dict[str, Any], name: str = "hf") -> ModelConfig:
    """A ModelConfig from a Llama config.json; anything the native model cannot express is
    refused."""
    if hf.get("model_type") != "llama" and "LlamaForCausalLM" not in (
        hf.get("architectures") or []
    ):
        raise UserError(
            f"config.json describes a {hf.get('model_type') or hf.get('architectures')!r} model, "
            "not Llama; "
            "only LlamaForCausalLM checkpoints can be converted"
        )
    rope = hf.get("rope_parameters") or {}
    scaling = hf.get("rope_scaling")
    if scaling and scaling.get("rope_type", scaling.get("type")) not in (None, "default"):
        raise UserError(f"RoPE scaling {scaling!r} is not supported; use a model with default RoPE")
    if hf.get("attention_bias") or hf.get("mlp_bias"):
        raise UserError(
            "this Llama variant has biases, which the native model does not; it cannot be converted"
        )
    if hf.get("hidden_act", "silu") != "silu":
        raise UserError(
            f"activation {hf['hidden_act']!r} is not SwiGLU/silu; this Llama variant cannot be "
            "converted"
        )
    required = (
        "vocab_size",
        "hidden_size",
        "num_attention_heads",
        "num_hidden_layers",
        "intermediate_size",
    )
    missing = [key for key in required if not isinstance(hf.get(key), int)]
    if missing:
        raise UserError(
            f"config.json lacks integer field(s) {', '.join(missing)}; it is not a complete Llama "
            "config"
        )
    n_embd, n_head = hf["hidden_size"], hf["num_attention_heads"]
    if hf.get("head_dim") not in (None, n_embd // n_head):
        raise UserError(
            f"head_dim {hf['head_dim']} != hidden_size / num_attention_heads; not supported"
        )
    return ModelConfig(
        name=name,
        vocab_size=hf["vocab_size"],
        n_layer=hf["num_hidden_layers"],
        n_embd=n_embd,
        n_head=n_head,
        n_kv_head=hf.get("num_key_value_heads") or n_head,
        intermediate_size=hf["intermediate_size"],
        block_size=hf.get("max_position_embeddings", 2048),
        norm_eps=hf.get("rms_norm_eps", 1e-5),
        rope_base=float(rope.get("rope_theta", hf.get("rope_theta", 10000.0))),
    )


# --- reading -------------------------------------------------------------------------------------


def is_hf_dir(path: Path) -> bool:
    return (path / CONFIG_FILE).is_file() and (
        (path / WEIGHTS_FILE).is_file() or (path / WEIGHTS_INDEX_FILE).is_file()
    )


def read_config(directory: Path) -> dict[str, Any]:
    """config.json as a dict."""
    return json.loads((directory / CONFIG_FILE).read_text())


def read_model_config(directory: Path) -> ModelConfig:
    """The ModelConfig of an HF directory, named after the directory."""
    return model_config_from_hf(read_config(directory), name=directory.name)


def read_hf_state(directory: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the directory's safetensors file(s), under HF names."""
    from safetensors.torch import load_file

    index = directory / WEIGHTS_INDEX_FILE
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    else:
        shards = [WEIGHTS_FILE]
    state: dict[str, torch.Tensor] = {}
    for name in shards:
        state.update(load_file(str(directory / name)))
    return state


class HFTensors:
    """The tensors of an HF directory read one at a time by native name (safetensors are memory
    mapped, so nothing but the tensor asked for is read): for loading shard by shard, where
    `read_hf_state` would hold the whole model in memory on every rank."""

    def __init__(self, directory: Path):
        index = directory / WEIGHTS_INDEX_FILE
        if index.is_file():
            self._file_of = json.loads(index.read_text())["weight_map"]
        else:
            from safetensors import safe_open

            with safe_open(str(directory / WEIGHTS_FILE), "pt") as f:
                self._file_of = {key: WEIGHTS_FILE for key in f.keys()}  # noqa: SIM118 (no __contains__)
        self._directory, self._open = directory, {}

    def __enter__(self) -> HFTensors:  # noqa: PYI034 (py3.10 has no typing.Self)
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._open.values():
            handle.__exit__(None, None, None)
        self._open.clear()

    def native(self, name: str) -> torch.Tensor:
        """The tensor of native parameter `name` (a tied checkpoint's head is its embedding)."""
        key = native_to_hf_name(name)
        if key not in self._file_of and name == "output.weight":
            key = native_to_hf_name("tok_embeddings.weight")
        if key not in self._file_of:
            raise UserError(
                f"{self._directory} lacks tensor {key}; it is not a complete Llama checkpoint"
            )
        file = self._file_of[key]
        if file not in self._open:
            from safetensors import safe_open

            self._open[file] = safe_open(str(self._directory / file), "pt").__enter__()
        return self._open[file].get_tensor(key)


# --- writing -------------------------------------------------------------------------------------


def save_hf(
    model: Llama,
    out_dir: str | Path,
    tokenizer: Tokenizer | None = None,
    dtype: torch.dtype = torch.float32,
    max_shard_bytes: int = 5 * 2**30,
    overwrite: bool = False,
) -> Path:
    """Write `model` as a Hugging Face directory at `out_dir` (staged, then renamed)."""
    out_dir = Path(out_dir)
    with staged(out_dir, overwrite) as tmp:
        write_hf(model, tmp, tokenizer, dtype, max_shard_bytes)
    return out_dir


def write_hf(
    model: Llama,
    directory: Path,
    tokenizer: Tokenizer | None = None,
    dtype: torch.dtype = torch.float32,
    max_shard_bytes: int = 5 * 2**30,
) -> None:
    """Write the HF file set into `directory`, which must not exist yet."""
    if dtype not in DTYPE_NAMES:
        raise UserError(
            f"dtype {dtype} is not supported for Hugging Face output; use fp32, bf16 or fp16"
        )
    directory.mkdir(parents=True)
    state = {
        k: v.detach().to("cpu", dtype).contiguous()
        for k, v in native_to_hf_state_dict(model.state_dict()).items()
    }
    shards = _split_shards(state, max_shard_bytes)
    if len(shards) == 1:
        _save_safetensors(shards[0], directory / WEIGHTS_FILE)
    else:
        weight_map = {}
        for i, shard in enumerate(shards, start=1):
            name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
            _save_safetensors(shard, directory / name)
            weight_map.update({key: name for key in shard})
        total = sum(t.numel() * t.element_size() for t in state.values())
        write_json(
            directory / WEIGHTS_INDEX_FILE,
            {"metadata": {"total_size": total}, "weight_map": weight_map},
        )

    bos, eos = (tokenizer.bos_id, tokenizer.eos_id) if tokenizer else (1, 2)
    write_json(directory / CONFIG_FILE, hf_config_dict(model.config, DTYPE_NAMES[dtype], bos, eos))
    unused = range(tokenizer.vocab_size, model.config.vocab_size) if tokenizer else range(0)
    write_json(directory / "generation_config.json", generation_config(bos, eos, list(unused)))
    if tokenizer is not None:
        write_tokenizer_files(tokenizer, directory, model_max_length=model.config.block_size)


def _save_safetensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata={"format": "pt"})
    make_plain_file(path)  # safetensors leaves its temporary file's 0600


def generation_config(bos_id: int, eos_id: int, unused_ids: list[int] | None = None) -> dict:
    """generation_config.json: the special tokens, and the ids no text maps to.

    `unused_ids` are the embedding rows past the tokenizer's last piece (a padded vocabulary).
    transformers' `suppress_tokens` sets their logits to -inf before any sampling, exactly as
    `tinyllama generate` leaves them out, so both generate the same text from the export.

    No `max_length`: transformers treats a max_length from the model's generation config as set
    by the user, so every `generate(max_new_tokens=...)` logged "Both max_new_tokens and
    max_length seem to have been set". The context limit is config.json's
    max_position_embeddings, which generate already caps its default length at.
    """
    config: dict = {"bos_token_id": bos_id, "eos_token_id": eos_id}
    if unused_ids:
        config["suppress_tokens"] = unused_ids
    return config


def write_tokenizer_files(tokenizer: Tokenizer, directory: Path, model_max_length: int) -> None:
    """tokenizer.model, tokenizer.json and the two JSON files transformers needs offline.

    `model_max_length` is the model's context (block_size): transformers' tokenizer truncates
    to it with `truncation=True` and warns about longer inputs, which a placeholder 1e9 hid.
    """
    shutil.copyfile(tokenizer.path, directory / "tokenizer.model")
    fast = tokenizer_json(tokenizer)
    if fast is not None:
        (directory / "tokenizer.json").write_text(json.dumps(fast, ensure_ascii=False) + "\n")
    piece = tokenizer.id_to_piece
    specials = {
        "bos_token": piece(tokenizer.bos_id),
        "eos_token": piece(tokenizer.eos_id),
        "unk_token": piece(tokenizer.sp.unk_id()),
    }
    write_json(
        directory / "tokenizer_config.json",
        {
            # transformers 5's LlamaTokenizer replaces tokenizer.json's normalizer (see
            # tokenizer_json);
            # the generic fast class loads it as written, in 4.x and 5.x alike.
            "tokenizer_class": "PreTrainedTokenizerFast" if fast is not None else "LlamaTokenizer",
            "add_bos_token": True,
            "add_eos_token": False,
            "legacy": False,
            "clean_up_tokenization_spaces": False,
            "model_max_length": model_max_length,
            "pad_token": None,
            **specials,
        },
    )
    write_json(directory / "special_tokens_map.json", specials)


def tokenizer_json(tokenizer: Tokenizer) -> dict | None:
    """A `tokenizers` BPE equivalent of a SentencePiece BPE model, as Llama 2's tokenizer.json.

    Why: rebuilt from tokenizer.model alone, transformers 5 uses a Metaspace pre-tokenizer that
    adds no "▁" before text that already starts with a space, so "  x" loses a token against
    SentencePiece. Llama 2's published tokenizer.json instead prepends "▁" in the normalizer,
    exactly as SentencePiece's dummy prefix does; both transformers 4.x and 5.x load it as is.
    Merges follow SentencePiece's merge order (piece score, i.e. id). None for unigram models or
    when the model proto cannot be parsed (protobuf missing): tokenizer.model is then the source.
    """
    try:
        from sentencepiece import sentencepiece_model_pb2
    except ImportError:  # needs protobuf
        return None
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(tokenizer.model_bytes)
    if proto.trainer_spec.model_type != 2:  # BPE
        return None
    sp, pieces = tokenizer.sp, [p.piece for p in proto.pieces]
    vocab = {piece: i for i, piece in enumerate(pieces)}
    mergeable = [i for i in range(len(pieces)) if proto.pieces[i].type == 1]  # NORMAL pieces
    merges = []
    for i in mergeable:
        piece = pieces[i]
        local = [
            (piece[:k], piece[k:])
            for k in range(1, len(piece))
            if piece[:k] in vocab and piece[k:] in vocab
        ]
        merges.extend(sorted(local, key=lambda lr: (vocab[lr[0]], vocab[lr[1]])))
    merges.sort(key=lambda lr: (vocab[lr[0] + lr[1]], len(lr[0]), len(lr[1])))
    normalizers = []
    if proto.normalizer_spec.precompiled_charsmap:
        import base64

        charsmap = base64.b64encode(proto.normalizer_spec.precompiled_charsmap).decode()
        normalizers.append({"type": "Precompiled", "precompiled_charsmap": charsmap})
    if proto.normalizer_spec.remove_extra_whitespaces:
        normalizers += [
            {"type": "Strip", "strip_left": True, "strip_right": True},
            {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "},
        ]
    if proto.normalizer_spec.add_dummy_prefix:
        normalizers.append({"type": "Prepend", "prepend": "▁"})
    normalizers.append({"type": "Replace", "pattern": {"String": " "}, "content": "▁"})
    special = [
        i for i in range(len(pieces)) if proto.pieces[i].type in (2, 3, 4)
    ]  # unknown, control, user
    bos = pieces[sp.bos_id()]
    decoders = [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
        {"type": "ByteFallback"},
        {"type": "Fuse"},
    ]
    if proto.normalizer_spec.add_dummy_prefix:
        decoders.append({"type": "Strip", "content": " ", "start": 1, "stop": 0})
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {
                "id": i,
                "content": pieces[i],
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": proto.pieces[i].type != 4,
            }
            for i in special
        ],
        "normalizer": {"type": "Sequence", "normalizers": normalizers},
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [
                {"SpecialToken": {"id": bos, "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
            ],
            "pair": [
                {"SpecialToken": {"id": bos, "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": bos, "type_id": 1}},
                {"Sequence": {"id": "B", "type_id": 1}},
            ],
            "special_tokens": {bos: {"id": bos, "ids": [sp.bos_id()], "tokens": [bos]}},
        },
        "decoder": {"type": "Sequence", "decoders": decoders},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": pieces[sp.unk_id()],
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": True,
            "byte_fallback": proto.trainer_spec.byte_fallback,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": [list(m) for m in merges],
        },
    }


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
