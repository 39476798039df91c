"""Configuration dataclasses: the model architecture, its named presets, and YAML helpers.

A `ModelConfig` is everything needed to build the network; it is a pure description, so the
parameter count and FLOPs per token can be computed from it without allocating a model (the
`models` and `plan` commands rely on that).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from tinyllama_cli.errors import UserError


@dataclass(frozen=True)
class ModelConfig:
    """A Llama-2 architecture: pre-norm RMSNorm, RoPE (half-split), GQA, SwiGLU, no biases."""

    name: str = "custom"
    vocab_size: int = 32000
    n_layer: int = 22
    n_embd: int = 2048
    n_head: int = 32
    n_kv_head: int = 4
    intermediate_size: int = 5632
    block_size: int = 2048
    norm_eps: float = 1e-5
    rope_base: float = 10000.0

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head:
            raise UserError(f"n_embd {self.n_embd} is not divisible by n_head {self.n_head}")
        if self.n_head % self.n_kv_head:
            raise UserError(f"n_head {self.n_head} is not divisible by n_kv_head {self.n_kv_head}")
        if self.head_dim % 2:
            raise UserError(f"head_dim {self.head_dim} must be even for RoPE")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def kv_dim(self) -> int:
        return self.n_kv_head * self.head_dim

    # --- sizes -------------------------------------------------------------------------------

    def block_params(self) -> int:
        """Parameters of one transformer block: attention, SwiGLU MLP and the two norms."""
        d, kv, ffn = self.n_embd, self.kv_dim, self.intermediate_size
        attention = d * d + 2 * d * kv + d * d  # wq, wk, wv, wo
        mlp = 3 * d * ffn  # w1 (gate), w3 (up), w2 (down)
        return attention + mlp + 2 * d

    def num_params(self, include_embedding: bool = True) -> int:
        """Exact parameter count (untied input embedding and output head)."""
        embedding = self.vocab_size * self.n_embd
        body = self.n_layer * self.block_params() + self.n_embd  # + final norm
        head = self.vocab_size * self.n_embd
        return body + head + (embedding if include_embedding else 0)

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Training FLOPs per token (forward + backward), torchtitan's convention.

        6 * (parameters - input embedding) covers every matmul with a weight (2 FLOPs per
        multiply-add forward, 4 backward); the embedding lookup does no matmul, so it is left
        out, while the output head is in. Attention scores and the weighted sum add
        12 * n_layer * n_embd * seq_len (counted as full, non-causal attention, as torchtitan and
        PaLM do). For TinyLlama 1.1B at seq_len 2048 this is 7.31 GFLOP/token, and 24,000
        tokens/s on a 312 TFLOP/s A100 is 56.3% MFU, the figure TinyLlama reports.
        """
        t = self.block_size if seq_len is None else seq_len
        return 6 * self.num_params(include_embedding=False) + 12 * self.n_layer * self.n_embd * t

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(
                f"unknown model config field(s) {', '.join(unknown)}; "
                f"valid fields: {', '.join(sorted(known))}"
            )
        return cls(**data)

    def replace(self, **changes: Any) -> "ModelConfig":
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, ModelConfig] = {
    config.name: config
    for config in [
        # TinyLlama 1.1B exactly: 1,100,048,384 parameters.
        ModelConfig(name="tinyllama-1.1b"),
        # A GPT-2-small-sized sibling: same shape family (GQA 3:1 per kv head, ffn 2.67x).
        ModelConfig(
            name="tinyllama-120m", n_layer=12, n_embd=768, n_head=12, n_kv_head=4,
            intermediate_size=2048,
        ),
        # CPU benchmark preset: 32000 vocabulary like the real thing, trains at a usable speed
        # on 2 cores (seq 512, micro batch 8 in benchmarks/).
        ModelConfig(
            name="cpu-bench", n_layer=6, n_embd=512, n_head=8, n_kv_head=2,
            intermediate_size=1408, block_size=512,
        ),
        # Quickstart / demo preset: trains in minutes on a laptop CPU.
        ModelConfig(
            name="cpu-small", vocab_size=8192, n_layer=4, n_embd=256, n_head=8, n_kv_head=2,
            intermediate_size=704, block_size=256,
        ),
        # Unit-test preset: milliseconds per step.
        ModelConfig(
            name="cpu-tiny", vocab_size=512, n_layer=2, n_embd=64, n_head=4, n_kv_head=2,
            intermediate_size=176, block_size=128,
        ),
    ]
}


def get_preset(name: str) -> ModelConfig:
    """The named preset, or a UserError listing the valid names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise UserError(
            f"unknown model preset {name!r}; choose one of: {', '.join(PRESETS)} "
            "(see `tinyllama models`)"
        ) from None


# --- YAML ------------------------------------------------------------------------------------


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, turning every way it can be wrong into one clear UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} does not exist; pass an existing YAML file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"config file {path} is not valid YAML{where}; fix its syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of field: value pairs")
    return data


def dump_yaml(data: dict[str, Any], path: str | Path) -> None:
    """Write YAML atomically: a temporary name, then a rename."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    tmp.replace(path)


__all__ = ["ModelConfig", "PRESETS", "get_preset", "load_yaml", "dump_yaml"]
