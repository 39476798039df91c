"""Native -> GGUF (llama.cpp's format) with the tokenizer embedded, and GGUF -> tensors back.

llama.cpp's `llama` architecture rotates adjacent dimension pairs (2i, 2i+1) with RoPE, while
this model (like Hugging Face) pairs i with i + head_dim/2. The rows of wq and wk are therefore
permuted per head on export so that llama.cpp's rotation acts on the same pairs; the read-back
applies the inverse, which `convert --verify` and the tests check. Matrices are written in the
requested dtype (F32/F16/BF16); 1-D norm weights stay F32, as llama.cpp's own converter does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinyllama_cli.config import ModelConfig
from tinyllama_cli.errors import UserError
from tinyllama_cli.formats.names import NameMap
from tinyllama_cli.model import Llama
from tinyllama_cli.tokenizer import Tokenizer

NAMES = NameMap(
    "blk",
    top_level={
        "tok_embeddings.weight": "token_embd.weight",
        "norm.weight": "output_norm.weight",
        "output.weight": "output.weight",
    },
    per_layer={
        "attention_norm.weight": "attn_norm.weight",
        "attention.wq.weight": "attn_q.weight",
        "attention.wk.weight": "attn_k.weight",
        "attention.wv.weight": "attn_v.weight",
        "attention.wo.weight": "attn_output.weight",
        "ffn_norm.weight": "ffn_norm.weight",
        "feed_forward.w1.weight": "ffn_gate.weight",
        "feed_forward.w3.weight": "ffn_up.weight",
        "feed_forward.w2.weight": "ffn_down.weight",
    },
)

DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}


def native_to_gguf_name(name: str) -> str:
    gguf = NAMES.to_external(name)
    if gguf is None:
        raise KeyError(f"no GGUF name for native parameter {name!r}")
    return gguf


def gguf_to_native_name(name: str) -> str:
    native = NAMES.to_native(name)
    if native is None:
        raise UserError(f"GGUF tensor {name!r} is not part of a Llama model")
    return native


def permute_for_gguf(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Half-split rows (i, i + D/2) of each head -> adjacent rows (2i, 2i+1), llama.cpp's
    pairing."""
    return (
        w.reshape(n_heads, 2, w.size(0) // n_heads // 2, *w.shape[1:])
        .transpose(1, 2)
        .reshape(w.shape)
    )


def unpermute_from_gguf(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """The inverse of `permute_for_gguf`."""
    return (
        w.reshape(n_heads, w.size(0) // n_heads // 2, 2, *w.shape[1:])
        .transpose(1, 2)
        .reshape(w.shape)
    )


def _heads_for(name: str, config: ModelConfig) -> int | None:
    if name.endswith("attention.wq.weight"):
        return config.n_head
    if name.endswith("attention.wk.weight"):
        return config.n_kv_head
    return None


def _to_numpy(t: torch.Tensor, dtype: torch.dtype) -> tuple[np.ndarray, Any]:
    """(array, raw GGML type or None); bf16 goes as raw bytes since numpy has no bfloat16."""
    import gguf

    if t.dim() == 1 or dtype == torch.float32:
        return t.to(torch.float32).contiguous().numpy(), None
    if dtype == torch.float16:
        return t.to(torch.float16).contiguous().numpy(), None
    return t.to(torch.bfloat16).contiguous().view(
        torch.uint8
    ).numpy(), gguf.GGMLQuantizationType.BF16


def token_table(tokenizer: Tokenizer, vocab_size: int) -> tuple[list[str], list[float], list[int]]:
    """Pieces, scores and llama.cpp token types; padded with unused [PAD<i>] up to the model
    vocab."""
    from gguf import TokenType

    sp = tokenizer.sp
    if sp.vocab_size() > vocab_size:
        raise UserError(
            f"the tokenizer has {sp.vocab_size()} pieces but the model only {vocab_size} "
            "embeddings; they do not belong together"
        )
    pieces, scores, types = [], [], []
    for i in range(sp.vocab_size()):
        pieces.append(sp.id_to_piece(i))
        scores.append(float(sp.get_score(i)))
        if sp.is_unknown(i):
            types.append(TokenType.UNKNOWN)
        elif sp.is_control(i):
            types.append(TokenType.CONTROL)
        elif sp.is_byte(i):
            types.append(TokenType.BYTE)
        elif sp.is_unused(i):
            types.append(TokenType.UNUSED)
        else:
            types.append(TokenType.NORMAL)
    for i in range(sp.vocab_size(), vocab_size):
        pieces.append(f"[PAD{i}]")
        scores.append(-1000.0)
        types.append(TokenType.UNUSED)
    return pieces, scores, [int(t) for t in types]


def write_gguf(
    model: Llama, path: Path, tokenizer: Tokenizer | None, dtype: torch.dtype = torch.float32
) -> None:
    """Write `model` and its tokenizer as one GGUF file at `path` (which must not exist)."""
    import gguf

    if tokenizer is None:
        raise UserError(
            "GGUF embeds the tokenizer, but the source has no tokenizer.model; put one beside the "
            "weights"
        )
    if dtype not in DTYPES:
        raise UserError(f"dtype {dtype} is not supported for GGUF; use fp32, fp16 or bf16")
    config = model.config
    file_type = {
        torch.float32: gguf.LlamaFileType.ALL_F32,
        torch.float16: gguf.LlamaFileType.MOSTLY_F16,
        torch.bfloat16: gguf.LlamaFileType.MOSTLY_BF16,
    }[dtype]
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(config.name)
    writer.add_context_length(config.block_size)
    writer.add_embedding_length(config.n_embd)
    writer.add_block_count(config.n_layer)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.n_head)
    writer.add_head_count_kv(config.n_kv_head)
    writer.add_rope_dimension_count(config.head_dim)
    writer.add_rope_freq_base(config.rope_base)
    writer.add_layer_norm_rms_eps(config.norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(int(file_type))

    pieces, scores, types = token_table(tokenizer, config.vocab_size)
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(pieces)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(tokenizer.bos_id)
    writer.add_eos_token_id(tokenizer.eos_id)
    writer.add_unk_token_id(tokenizer.sp.unk_id())
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)

    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().to("cpu")
        heads = _heads_for(name, config)
        if heads is not None:
            tensor = permute_for_gguf(tensor, heads)
        array, raw_dtype = _to_numpy(tensor, dtype)
        writer.add_tensor(native_to_gguf_name(name), array, raw_dtype=raw_dtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


# --- reading back ------------------------------------------------------------------------------


def gguf_metadata(reader: Any) -> dict[str, Any]:
    """Every key/value field of a GGUFReader as plain Python values (arrays as lists)."""
    return {name: field.contents() for name, field in reader.fields.items()}


def _f32(value: float) -> float:
    """A GGUF float32 field as the decimal it was written from (1e-5, not 9.99999974e-06)."""
    return float(f"{float(value):.7g}")


def read_gguf(
    path: str | Path,
) -> tuple[ModelConfig, dict[str, torch.Tensor], dict[str, Any], dict[str, str]]:
    """(config, native fp32 state dict with q/k un-permuted, metadata, GGML type per tensor)."""
    import gguf

    try:
        reader = gguf.GGUFReader(str(path))
    except (ValueError, OSError, IndexError, KeyError) as exc:
        raise UserError(f"{path} is not a readable GGUF file ({exc})") from None
    meta = gguf_metadata(reader)
    if meta.get("general.architecture") != "llama":
        raise UserError(f"{path} holds a {meta.get('general.architecture')!r} model, not llama")
    config = ModelConfig(
        name=str(meta.get("general.name", "gguf")),
        vocab_size=len(meta["tokenizer.ggml.tokens"]),
        n_layer=int(meta["llama.block_count"]),
        n_embd=int(meta["llama.embedding_length"]),
        n_head=int(meta["llama.attention.head_count"]),
        n_kv_head=int(meta["llama.attention.head_count_kv"]),
        intermediate_size=int(meta["llama.feed_forward_length"]),
        block_size=int(meta["llama.context_length"]),
        norm_eps=_f32(meta["llama.attention.layer_norm_rms_epsilon"]),
        rope_base=_f32(meta.get("llama.rope.freq_base", 10000.0)),
    )
    state, types = {}, {}
    for t in reader.tensors:
        name = gguf_to_native_name(t.name)
        shape = tuple(int(n) for n in reversed(t.shape.tolist()))
        values = torch.from_numpy(
            np.array(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
        ).reshape(shape)
        heads = _heads_for(name, config)
        state[name] = unpermute_from_gguf(values, heads) if heads is not None else values
        types[name] = t.tensor_type.name
    return config, state, meta, types
