"""Speculative decoding: draft k tokens cheaply, check them with one forward of the target.

Two drafters, one rule:

* `ModelDrafter`: a smaller model with the same tokenizer (TinyLlama's README pairs TinyLlama
  as the draft of Llama-2-7B) proposes k tokens one at a time from its own KV cache.
* `PromptLookup`: no second model; the tokens that followed the latest earlier occurrence of the
  row's last n-gram (n = 2, then 1), in the prompt or the text so far, are the draft
  (transformers' `prompt_lookup_num_tokens`, llama.cpp's lookup decoding).

`accept` is the standard accept/reject rule (Leviathan et al. 2023; Chen et al. 2023): greedy,
a drafted token is kept while it equals the target's argmax, so the output is plain greedy
decoding of the target token for token; sampled, drafted token d is kept with probability
min(1, p(d) / q(d)) and the first rejected one is replaced by a draw from norm(max(0, p - q)),
so every token follows the target's distribution p. A lookup draft is a point mass (q(d) = 1).
p and q are both `sampling.processed_logits` of their model, so temperature, top-k/top-p and the
repetition penalty mean what they mean without a draft.

A batch shares one position counter (`generate.generate_tokens`), so it advances by the fewest
tokens any row accepted, plus one: the target's own choice at that position (its correction, or
the accepted draft token itself in rows that accepted more). Both are draws of that position's
rule, so the rows stay exact; rows that accepted more only lose the surplus.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from tinyllama_cli.errors import UserError
from tinyllama_cli.model import Llama
from tinyllama_cli.sampling import SamplingParams, processed_logits
from tinyllama_cli.tokenizer import Tokenizer

# n-gram lengths prompt lookup matches, longest first: transformers' default
# (`max_matching_ngram_size` 2), so the benchmark's two lookup rows draft alike.
LOOKUP_NGRAMS = (2, 1)


@dataclass
class Draft:
    """k drafted tokens per row (B, k), and the draft's distributions (B, k, V) when it sampled
    them (None: each token is a point mass, as a greedy or lookup draft is)."""

    tokens: torch.Tensor
    probs: torch.Tensor | None = None


class Drafter(Protocol):
    """What generate_tokens drives: `begin` once per batch, `propose` per step, `end` after."""

    def begin(self, key_mask: torch.Tensor | None, starts: list[int], total: int) -> None: ...

    def propose(
        self, tokens: torch.Tensor, length: int, k: int, seen: torch.Tensor | None
    ) -> Draft | None: ...

    def keep(self, valid: int) -> None: ...

    def end(self) -> None: ...

    @property
    def k(self) -> int: ...


class ModelDrafter:
    """Drafts with a smaller model, greedy or sampled as the target decodes, from its own cache.

    `valid` counts the leading positions whose keys and values in the draft's cache belong to
    the sequence as it now stands; each `propose` feeds the tokens from there to `length` (one
    or two after an accepted step, the whole prompt at first) and then one token per draft."""

    def __init__(
        self,
        model: Llama,
        k: int,
        params: SamplingParams,
        generator: torch.Generator | None,
        vocab_limit: int,
    ):
        self.model, self._k, self.params = model, k, params
        self.generator, self.vocab_limit = generator, vocab_limit
        self.valid, self.key_mask = 0, None

    @property
    def k(self) -> int:
        return self._k

    def begin(self, key_mask: torch.Tensor | None, starts: list[int], total: int) -> None:
        if total > self.model.config.block_size:
            raise ValueError(
                f"the draft's context of {self.model.config.block_size} tokens cannot hold {total}"
            )
        self.valid, self.key_mask = 0, key_mask
        self.model.setup_kv_cache(len(starts), total)

    def end(self) -> None:
        self.model.clear_kv_cache()

    def keep(self, valid: int) -> None:
        self.valid = min(self.valid, valid)

    def propose(
        self, tokens: torch.Tensor, length: int, k: int, seen: torch.Tensor | None
    ) -> Draft | None:
        drafted, probs = [], []
        seen = seen.clone() if seen is not None else None
        logits = self._forward(tokens[:, self.valid : length], self.valid)
        for i in range(k):
            chosen = processed_logits(logits, self.params, seen, self.vocab_limit)
            if self.params.temperature == 0:
                token = chosen.argmax(dim=-1)
            else:
                q = chosen.softmax(dim=-1)
                token = torch.multinomial(q, 1, generator=self.generator).squeeze(1)
                probs.append(q)
            drafted.append(token)
            if seen is not None:
                seen.scatter_(1, token[:, None], True)
            if i + 1 < k:
                logits = self._forward(token[:, None], length + i)
        self.valid = length + k - 1  # the last draft token was never fed
        return Draft(torch.stack(drafted, 1), torch.stack(probs, 1) if probs else None)

    def _forward(self, idx: torch.Tensor, start: int) -> torch.Tensor:
        end = start + idx.size(1)
        mask = self.key_mask[:, :end] if self.key_mask is not None else None
        return self.model(idx, input_pos=start, key_mask=mask, last_only=True)[:, -1]


class PromptLookup:
    """Drafts the tokens that followed the latest earlier occurrence of the row's last n-gram.

    Each row keeps its tokens (padding excluded) and, per n in LOOKUP_NGRAMS, a dict from every
    n-gram that has a successor to where its latest occurrence ended, so a lookup is O(1) and
    each step only adds the tokens accepted since the last one."""

    def __init__(self, k: int):
        self._k = k
        self.rows: list[list[int]] = []
        self.index: list[dict[tuple[int, ...], int]] = []
        self.known = 0

    @property
    def k(self) -> int:
        return self._k

    def begin(self, key_mask: torch.Tensor | None, starts: list[int], total: int) -> None:
        self.starts, self.known = starts, 0
        self.rows = [[] for _ in starts]
        self.index = [{} for _ in starts]

    def end(self) -> None:
        self.rows, self.index = [], []

    def keep(self, valid: int) -> None:
        """Nothing to undo: only final tokens (those before `length`) are ever read."""

    def propose(
        self, tokens: torch.Tensor, length: int, k: int, seen: torch.Tensor | None
    ) -> Draft | None:
        fresh = tokens[:, self.known : length].tolist()
        for row, ids in enumerate(fresh):
            self._extend(row, ids[max(0, self.starts[row] - self.known) :])
        self.known = length
        found = [self._continuation(row, k) for row in range(len(self.rows))]
        width = max(len(c) for c in found)
        if width == 0:
            return None
        # A row without (enough of) a match pads with its last token: a point mass like any
        # other draft token, judged by the same rule (it only costs a wasted position).
        padded = [c + [self.rows[row][-1]] * (width - len(c)) for row, c in enumerate(found)]
        return Draft(torch.tensor(padded, dtype=torch.long, device=tokens.device))

    def _extend(self, row: int, ids: list[int]) -> None:
        seq, index = self.rows[row], self.index[row]
        for token in ids:
            seq.append(token)
            end = len(seq) - 1  # the new token is the successor of the n-grams ending before it
            for n in LOOKUP_NGRAMS:
                if end >= n:
                    index[tuple(seq[end - n : end])] = end

    def _continuation(self, row: int, k: int) -> list[int]:
        seq, index = self.rows[row], self.index[row]
        for n in LOOKUP_NGRAMS:
            if len(seq) >= n and (at := index.get(tuple(seq[-n:]))) is not None:
                return seq[at : at + k]
        return []


@dataclass
class Verdict:
    """What one verification step decided: `emitted` (B, m + 1) tokens to append to every row,
    and how many drafted tokens each row's rule accepted (B,) (before the batch's minimum)."""

    emitted: torch.Tensor
    accepted: torch.Tensor


def accept(
    logits: torch.Tensor,
    draft: Draft,
    params: SamplingParams,
    generator: torch.Generator | None,
    seen: torch.Tensor | None,
    vocab_limit: int | None,
) -> Verdict:
    """The accept/reject rule on the target's logits (B, k + 1, V) at the k drafted positions
    and the one after them."""
    batch, k = draft.tokens.shape
    p = processed_logits(
        logits.flatten(0, 1), params, _seen_per_position(seen, draft.tokens), vocab_limit
    ).view(batch, k + 1, -1)
    if params.temperature == 0:
        target = p.argmax(dim=-1)  # (B, k + 1)
        ok = draft.tokens == target[:, :k]
        accepted = _leading_true(ok)
        m = int(accepted.min())
        return Verdict(torch.cat([draft.tokens[:, :m], target[:, m : m + 1]], 1), accepted)
    if draft.probs is not None and draft.probs.size(-1) != p.size(-1):
        raise ValueError(
            f"the draft chooses among {draft.probs.size(-1)} ids, the target among "
            f"{p.size(-1)}; pass the tokenizer's size as vocab_limit to both"
        )
    p = p.softmax(dim=-1)
    p_draft = p[:, :k].gather(-1, draft.tokens[..., None]).squeeze(-1)
    q_draft = (
        draft.probs.gather(-1, draft.tokens[..., None]).squeeze(-1)
        if draft.probs is not None
        else torch.ones_like(p_draft)
    )
    u = torch.rand(batch, k, generator=generator, device=p.device)
    accepted = _leading_true(u * q_draft < p_draft)
    m = int(accepted.min())
    at_m = p[:, m]
    rejected = accepted == m  # this row's rule decided position m: a draw from the residual
    if m < k:
        q_m = (
            draft.probs[:, m]
            if draft.probs is not None
            else torch.zeros_like(at_m).scatter_(1, draft.tokens[:, m : m + 1], 1.0)
        )
        residual = (at_m - q_m).clamp_min(0)
        # p == q to the last bit leaves no residual; then the draw is from p itself.
        empty = residual.sum(-1, keepdim=True) <= 0
        at_m = torch.where(empty, at_m, residual)
    drawn = torch.multinomial(at_m, 1, generator=generator).squeeze(1)
    last = torch.where(rejected, drawn, draft.tokens[:, m]) if m < k else drawn
    return Verdict(torch.cat([draft.tokens[:, :m], last[:, None]], 1), accepted)


def _leading_true(ok: torch.Tensor) -> torch.Tensor:
    """The number of leading True per row of a (B, k) bool tensor."""
    return ok.long().cumprod(dim=1).sum(dim=1)


def _seen_per_position(seen: torch.Tensor | None, drafted: torch.Tensor) -> torch.Tensor | None:
    """(B * (k + 1), V): the tokens present before each of the k + 1 verified positions."""
    if seen is None:
        return None
    batch, k = drafted.shape
    per = seen[:, None].repeat(1, k + 1, 1)
    for i in range(k):
        per[:, i + 1 :].scatter_(2, drafted[:, i, None, None].expand(batch, k - i, 1), True)
    return per.flatten(0, 1)


@dataclass
class Speculation:
    """How `generate` drafts: with a draft model (`tokens` a step), or by prompt lookup (no
    model: up to `tokens` a step). One drafter is made per batch."""

    tokens: int
    model: Llama | None = None  # None: prompt lookup

    @property
    def method(self) -> str:
        return "draft" if self.model is not None else "prompt-lookup"

    def drafter(
        self, params: SamplingParams, generator: torch.Generator | None, vocab_limit: int
    ) -> ModelDrafter | PromptLookup:
        if self.model is None:
            return PromptLookup(self.tokens)
        return ModelDrafter(self.model, self.tokens, params, generator, vocab_limit)


@dataclass
class SpeculationOptions:
    """generate's --draft / --draft-tokens / --prompt-lookup, checked before anything loads."""

    draft: str | None = None  # a run, checkpoint or HF dir with the target's tokenizer
    draft_tokens: int = 4
    prompt_lookup: int | None = None  # tokens drafted per step from n-gram matches

    def validate(self) -> None:
        if self.draft is not None and self.prompt_lookup is not None:
            raise UserError("--draft and --prompt-lookup are two ways to draft tokens; pass one")
        if self.draft_tokens < 1:
            raise UserError(f"--draft-tokens must be at least 1, got {self.draft_tokens}")
        if self.prompt_lookup is not None and self.prompt_lookup < 1:
            raise UserError(
                f"--prompt-lookup must be at least 1 (tokens drafted per step), "
                f"got {self.prompt_lookup}"
            )


def check_draft_vocabulary(target: Tokenizer, draft: Tokenizer | None, where: str) -> None:
    """A draft must number tokens as the target does: the same pieces in the same order."""
    if draft is None:
        raise UserError(
            f"the draft {where} has no tokenizer.model beside it or in its run "
            "directory; copy the model's tokenizer there"
        )
    if draft.sha256 == target.sha256 or draft.pieces() == target.pieces():
        return
    raise UserError(
        f"the draft {where} has another vocabulary than the model ({draft.vocab_size} "
        f"vs {target.vocab_size} pieces, not the same); pass a draft trained with the "
        "model's tokenizer.model"
    )
