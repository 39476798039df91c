"""speculative.py: draft-and-verify decoding is exact.

Greedy: token for token the target's plain greedy output, batched and padded, with a draft
model (a smaller one, and the target itself) or prompt lookup, with the repetition penalty and
EOS. Sampled: the distribution of whole continuations is the target's, checked with a chi-square
test on a 5-token vocabulary against the exact probabilities (enumerated), and the same test
tells the draft's own distribution apart, so it can fail.
"""

from __future__ import annotations

import copy
import itertools

import pytest
import torch

from tinyllama_cli.config import ModelConfig
from tinyllama_cli.errors import UserError
from tinyllama_cli.generate import SamplingParams, generate_tokens
from tinyllama_cli.model import Llama
from tinyllama_cli.speculative import (
    Draft,
    ModelDrafter,
    PromptLookup,
    SpeculationOptions,
    accept,
)

TARGET = ModelConfig(
    name="target",
    vocab_size=96,
    n_layer=2,
    n_embd=64,
    n_head=4,
    n_kv_head=2,
    intermediate_size=176,
    block_size=96,
)
DRAFT = ModelConfig(
    name="draft",
    vocab_size=96,
    n_layer=1,
    n_embd=32,
    n_head=2,
    n_kv_head=1,
    intermediate_size=64,
    block_size=96,
)
# Different lengths (left padding), and repeats for prompt lookup to find.
PROMPTS = [[1, 5, 6, 7, 5, 6], [1, 9], [1, 3, 4, 3, 4, 3, 4, 3], [1, 20, 21, 22, 23, 20, 21]]


def sharpen(model: Llama, scale: float) -> Llama:
    """Scale the head of a random model: peaked distributions, so greedy choices are clear-cut
    and two models' distributions are far apart."""
    with torch.no_grad():
        model.output.weight.mul_(scale)
    return model


@pytest.fixture(scope="module")
def models() -> tuple[Llama, Llama]:
    torch.manual_seed(0)
    target = sharpen(Llama(TARGET).eval(), 8.0)
    draft = sharpen(Llama(DRAFT).eval(), 8.0)
    return target, draft


def drafters(target: Llama, draft: Llama, params: SamplingParams, generator=None) -> dict:
    return {
        "draft": ModelDrafter(draft, 4, params, generator, TARGET.vocab_size),
        "self": ModelDrafter(target, 3, params, generator, TARGET.vocab_size),
        "lookup": PromptLookup(5),
    }


@pytest.mark.parametrize("penalty", [1.0, 1.3])
@pytest.mark.parametrize("name", ["draft", "self", "lookup"])
def test_greedy_equals_plain_greedy_batched_and_alone(models, name, penalty):
    target, draft = models
    params = SamplingParams(
        max_new_tokens=40, temperature=0, ignore_eos=True, repetition_penalty=penalty
    )
    plain = generate_tokens(target, PROMPTS, params)
    drafter = drafters(target, draft, params)[name]
    batched = generate_tokens(target, PROMPTS, params, drafter=drafter)
    assert batched.tokens == plain.tokens
    for row, prompt in enumerate(PROMPTS):
        assert (
            generate_tokens(target, [prompt], params, drafter=drafter).tokens[0]
            == plain.tokens[row]
        )
    assert batched.drafted > 0
    if name == "self":  # the target drafting for itself: every draft is accepted
        assert batched.accepted == batched.drafted
        assert batched.steps < plain.steps


def test_greedy_with_eos_and_a_stop_callback(models):
    target, draft = models
    plain_free = generate_tokens(
        target, PROMPTS, SamplingParams(max_new_tokens=30, temperature=0, ignore_eos=True)
    )
    eos = plain_free.tokens[0][7]  # a token row 0 emits: it ends there
    params = SamplingParams(max_new_tokens=30, temperature=0)
    stop_after = lambda row, new: len(new) == 5 and row == 1
    plain = generate_tokens(target, PROMPTS, params, eos_id=eos, on_token=stop_after)
    spec = generate_tokens(
        target,
        PROMPTS,
        params,
        eos_id=eos,
        on_token=stop_after,
        drafter=ModelDrafter(draft, 4, params, None, TARGET.vocab_size),
    )
    assert spec.tokens == plain.tokens and spec.finish_reasons == plain.finish_reasons
    assert plain.finish_reasons[0] == "eos" and plain.finish_reasons[1] == "stop"


def test_lookup_drafts_the_continuation_of_the_latest_match():
    lookup = PromptLookup(3)
    lookup.begin(None, [0], 32)
    tokens = torch.tensor([[1, 7, 8, 9, 4, 7, 8, 5, 6, 7, 8]])
    draft = lookup.propose(tokens, tokens.size(1), 3, None)
    assert draft.tokens.tolist() == [[5, 6, 7]]  # "7 8" last seen before the end at index 5
    no_match = PromptLookup(3)
    no_match.begin(None, [0], 32)
    assert no_match.propose(torch.tensor([[1, 2, 3]]), 3, 3, None) is None


# --- sampling: the target's distribution ---------------------------------------------------------

TINY = ModelConfig(
    name="tiny",
    vocab_size=3,
    n_layer=1,
    n_embd=16,
    n_head=2,
    n_kv_head=1,
    intermediate_size=32,
    block_size=16,
)
NEW = 4  # continuations of 4 tokens (81 outcomes): the first from the prefill, then 2 drafted + 1


def exact_distribution(model: Llama, prompt: list[int], params: SamplingParams) -> torch.Tensor:
    """P(continuation) for every one of the V^NEW continuations, from one forward of all."""
    from tinyllama_cli.sampling import processed_logits

    conts = torch.tensor(list(itertools.product(range(TINY.vocab_size), repeat=NEW)))
    seqs = torch.cat([torch.tensor(prompt).expand(len(conts), -1), conts], 1)
    with torch.no_grad():
        logits = model(seqs)[:, len(prompt) - 1 : -1]
    logp = processed_logits(logits.flatten(0, 1), params).view(len(conts), NEW, -1)
    logp = logp.log_softmax(-1).gather(-1, conts[..., None]).squeeze(-1)
    return logp.sum(-1).exp()


def draws(
    model: Llama,
    prompt: list[int],
    params: SamplingParams,
    n: int,
    batch: int,
    generator: torch.Generator,
    drafter,
) -> tuple[torch.Tensor, int, int]:
    """Counts of each continuation over n samples, `batch` rows at a time; drafted, accepted."""
    counts, drafted, accepted = torch.zeros(TINY.vocab_size**NEW), 0, 0
    for _ in range(n // batch):
        out = generate_tokens(model, [prompt] * batch, params, generator=generator, drafter=drafter)
        drafted, accepted = drafted + out.drafted, accepted + out.accepted
        for tokens in out.tokens:
            counts[sum(t * TINY.vocab_size ** (NEW - 1 - i) for i, t in enumerate(tokens))] += 1
    return counts, drafted, accepted


def chi_square(counts: torch.Tensor, probs: torch.Tensor) -> tuple[float, float]:
    """Pearson's statistic, outcomes expected fewer than 5 times pooled into one bin, and its
    0.999 quantile (Wilson-Hilferty: within 1% at these degrees of freedom)."""
    expected = probs * counts.sum()
    small = expected < 5
    observed = torch.cat([counts[~small], counts[small].sum()[None]])
    expected = torch.cat([expected[~small], expected[small].sum()[None]])
    df = len(expected) - 1
    quantile = df * (1 - 2 / (9 * df) + 3.09 * (2 / (9 * df)) ** 0.5) ** 3
    return float(((observed - expected) ** 2 / expected).sum()), quantile


@pytest.mark.parametrize("kind,batch", [("draft", 1), ("draft", 8), ("lookup", 8)])
def test_sampled_output_follows_the_target_distribution(kind, batch):
    torch.manual_seed(1)
    target = sharpen(Llama(TINY).eval(), 4.0)
    draft = sharpen(copy.deepcopy(target), 0.5)  # a flatter target: half its drafts survive
    params = SamplingParams(max_new_tokens=NEW, temperature=1.0, ignore_eos=True)
    prompt = [1, 2, 0, 1, 2]  # "1 2" repeats: prompt lookup drafts "0 1"
    generator = torch.Generator().manual_seed(0)
    drafter = (
        ModelDrafter(draft, 2, params, generator, TINY.vocab_size)
        if kind == "draft"
        else PromptLookup(2)
    )
    counts, drafted, accepted = draws(target, prompt, params, 4000, batch, generator, drafter)
    assert 0 < accepted < drafted  # both sides of the rule ran
    statistic, quantile = chi_square(counts, exact_distribution(target, prompt, params))
    assert statistic < quantile
    # The test has power: the draft's own distribution is told apart from these samples.
    statistic, quantile = chi_square(counts, exact_distribution(draft, prompt, params))
    assert statistic > 5 * quantile


def test_accept_keeps_the_leading_matches_and_corrects_the_first_miss():
    # Target logits at 3 positions: argmax 2, then 4, then 1; the draft proposed 2 then 3.
    logits = torch.full((1, 3, 6), -5.0)
    logits[0, 0, 2] = logits[0, 1, 4] = logits[0, 2, 1] = 5.0
    verdict = accept(
        logits, Draft(torch.tensor([[2, 3]])), SamplingParams(temperature=0), None, None, None
    )
    assert verdict.accepted.tolist() == [1] and verdict.emitted.tolist() == [[2, 4]]


def test_options_are_checked():
    with pytest.raises(UserError, match="pass one"):
        SpeculationOptions(draft="d", prompt_lookup=3).validate()
    with pytest.raises(UserError, match="--draft-tokens"):
        SpeculationOptions(draft="d", draft_tokens=0).validate()
    with pytest.raises(UserError, match="--prompt-lookup"):
        SpeculationOptions(prompt_lookup=0).validate()


@pytest.mark.parametrize("name", ["self", "lookup", "draft"])
def test_greedy_up_to_the_end_of_the_context(models, name):
    """The context window, not --max-new-tokens, ends the generation: the last verify step may
    not write past the buffer (drafts accepted up to the final position)."""
    target, draft = models
    params = SamplingParams(max_new_tokens=500, temperature=0, ignore_eos=True)
    plain = generate_tokens(target, PROMPTS, params)
    spec = generate_tokens(target, PROMPTS, params, drafter=drafters(target, draft, params)[name])
    assert spec.tokens == plain.tokens
    assert max(len(p) + len(t) for p, t in zip(PROMPTS, plain.tokens)) == TARGET.block_size
