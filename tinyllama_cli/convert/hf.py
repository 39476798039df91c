"""Native <-> Hugging Face `LlamaForCausalLM`: parameter names and config.json.

Both sides use the half-split RoPE convention, so tensors map one-to-one with no permutation;
only names differ. This module is pure data mapping (no I/O), shared by `convert`, the HF
loading path of `load.py`, and the parity tests.
"""

from __future__ import annotations

from typing import Any

import torch

from tinyllama_cli.config import ModelConfig
from tinyllama_cli.convert.names import NameMap
from tinyllama_cli.errors import UserError

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
        raise UserError(f"tensor {name!r} is not part of a Llama model; convert only LlamaForCausalLM checkpoints")
    return native


def native_to_hf_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {native_to_hf_name(k): v for k, v in state.items()}


def hf_to_native_state_dict(state: dict[str, torch.Tensor], config: ModelConfig | None = None) -> dict[str, torch.Tensor]:
    """Rename HF tensors; a tied checkpoint (no lm_head) gets the embedding as its output head."""
    out = {}
    for key, value in state.items():
        name = hf_to_native_name(key)
        if name is not None:
            out[name] = value
    if "output.weight" not in out and "tok_embeddings.weight" in out:
        out["output.weight"] = out["tok_embeddings.weight"]
    return out


def hf_config_dict(config: ModelConfig, dtype: str = "float32", bos_id: int = 1, eos_id: int = 2) -> dict[str, Any]:
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
    """A ModelConfig from a Llama config.json; anything the native model cannot express is refused."""
    if hf.get("model_type") != "llama" and "LlamaForCausalLM" not in (hf.get("architectures") or []):
        raise UserError(
            f"config.json describes a {hf.get('model_type') or hf.get('architectures')!r} model, not Llama; "
            "only LlamaForCausalLM checkpoints can be converted"
        )
    rope = hf.get("rope_parameters") or {}
    scaling = hf.get("rope_scaling")
    if scaling and scaling.get("rope_type", scaling.get("type")) not in (None, "default"):
        raise UserError(f"RoPE scaling {scaling!r} is not supported; use a model with default RoPE")
    if hf.get("attention_bias") or hf.get("mlp_bias"):
        raise UserError("this Llama variant has biases, which the native model does not; it cannot be converted")
    if hf.get("hidden_act", "silu") != "silu":
        raise UserError(f"activation {hf['hidden_act']!r} is not SwiGLU/silu; this Llama variant cannot be converted")
    required = ("vocab_size", "hidden_size", "num_attention_heads", "num_hidden_layers", "intermediate_size")
    missing = [key for key in required if not isinstance(hf.get(key), int)]
    if missing:
        raise UserError(f"config.json lacks integer field(s) {', '.join(missing)}; it is not a complete Llama config")
    n_embd, n_head = hf["hidden_size"], hf["num_attention_heads"]
    if hf.get("head_dim") not in (None, n_embd // n_head):
        raise UserError(f"head_dim {hf['head_dim']} != hidden_size / num_attention_heads; not supported")
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
