"""How the next token is chosen: the sampling parameters and the operations on logits.

Hugging Face's order (repetition penalty -> temperature -> top-k -> top-p), so the flags mean
what users expect; temperature 0 is greedy. Below generation and speculative decoding, which
both choose tokens through `processed_logits`, so a drafted token is judged by exactly the rule
that plain decoding samples with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from tinyllama_cli.errors import UserError


@dataclass
class SamplingParams:
    """How to choose each next token. Defaults: nanoGPT's temperature, no top-k/top-p cut."""

    max_new_tokens: int = 128
    temperature: float = 0.8  # 0 = greedy (argmax)
    top_k: int | None = None  # keep the k most likely tokens
    top_p: float | None = None  # keep the smallest set of tokens whose probability reaches p
    repetition_penalty: float = 1.0  # CTRL / Hugging Face: >1 discourages tokens already present
    seed: int | None = None  # None: a fresh random seed (reported, so a run can be repeated)
    stop: list[str] = field(default_factory=list)  # end a sample at the first of these strings
    ignore_eos: bool = False  # benchmarks: always generate max_new_tokens

    def validate(self) -> None:
        if self.max_new_tokens < 1:
            raise UserError(f"--max-new-tokens must be at least 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise UserError(f"--temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise UserError(f"--top-k must be at least 1, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise UserError(f"--top-p must be in (0, 1], got {self.top_p}")
        if self.repetition_penalty <= 0:
            raise UserError(
                f"--repetition-penalty must be > 0 (1 = off), got {self.repetition_penalty}"
            )
        if any(not s for s in self.stop):
            raise UserError("--stop strings must not be empty")


# --- sampling -----------------------------------------------------------------------------------


def apply_repetition_penalty(
    logits: torch.Tensor, seen: torch.Tensor, penalty: float
) -> torch.Tensor:
    """Divide positive logits and multiply negative ones of tokens already in the row (CTRL)."""
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


def filter_logits(logits: torch.Tensor, top_k: int | None, top_p: float | None) -> torch.Tensor:
    """Set every token outside the top-k / top-p support to -inf; (B, V) float logits."""
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # Drop a token when the tokens ranked above it already reach top_p (the first always stays).
        drop_sorted = probs.cumsum(dim=-1) - probs >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def processed_logits(
    logits: torch.Tensor,
    params: SamplingParams,
    seen: torch.Tensor | None = None,
    vocab_limit: int | None = None,
) -> torch.Tensor:
    """The float logits (N, V') a token is chosen from: cut to `vocab_limit`, repetition penalty,
    then (when sampling) temperature and the top-k / top-p cut. Greedy takes their argmax,
    sampling their softmax; speculative decoding compares two models' distributions through it.

    Only ids below `vocab_limit` can be chosen: a model whose vocabulary was padded beyond its
    tokenizer's (to round the embedding up, or to keep a preset's shape) has rows no text maps
    to, and an untrained row can still win an argmax."""
    if vocab_limit is not None and vocab_limit < logits.size(-1):
        logits = logits[:, :vocab_limit]
        seen = seen[:, :vocab_limit] if seen is not None else None
    logits = logits.float()
    if seen is not None and params.repetition_penalty != 1.0:
        logits = apply_repetition_penalty(logits, seen, params.repetition_penalty)
    if params.temperature == 0:
        return logits
    return filter_logits(logits / params.temperature, params.top_k, params.top_p)


def sample_next(
    logits: torch.Tensor,
    params: SamplingParams,
    generator: torch.Generator | None,
    seen: torch.Tensor | None = None,
    vocab_limit: int | None = None,
) -> torch.Tensor:
    """The next token of every row, (B,), from the last position's logits (B, V); only ids below
    `vocab_limit` can be chosen (`processed_logits`)."""
    logits = processed_logits(logits, params, seen, vocab_limit)
    if params.temperature == 0:
        return logits.argmax(dim=-1)
    return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator).squeeze(1)
