"""The lm-evaluation-harness adapter over the native model: `NativeLM`, a `TemplateLM`.

Its tokenization is `tokenization.LlamaTokenLM`'s (lm-eval's HF backend's Llama conventions), so
it gives the same per-sample log-likelihoods as `HFLM` on the same weights. Where it is faster
than HFLM (same model, same dtype):

- requests are grouped by context, longest first: each context runs once, left-padded to a
  common end with a key mask (RoPE is relative, so the padding changes nothing but rounding), and
  its keys and values are copied into one KV-cache row per distinct continuation, after which
  only the continuations run (multiple choice shares the question between its choices);
- continuations that differ only in their last token share a row, and one-token answers (boolq's
  " no"/" yes") run nothing after the context: its last position predicts them;
- requests longer than the context are truncated from the left and right-padded, as HFLM does
  (no mask needed: causal attention never looks right);
- the output projection and the log-softmax are applied only at the continuation positions, not
  to every (batch x length x vocabulary) logit.

`generate_until` decodes with generate.py's `generate_tokens` (left-padded prompts with a key
mask, the KV cache, only ids the tokenizer has: a model's vocabulary may be padded beyond it),
greedy or sampled per the task's generation kwargs, stopping per row at EOS or at a stop string.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from lm_eval.models.utils import (
    handle_stop_sequences,
    normalize_gen_kwargs,
    postprocess_generated_text,
)
from tqdm import tqdm

from tinyllama_cli.decode_step import CompiledDecoder
from tinyllama_cli.eval.tokenization import LlamaTokenLM, Request
from tinyllama_cli.generate import SamplingParams, generate_tokens
from tinyllama_cli.model import Llama
from tinyllama_cli.speculative import PromptLookup
from tinyllama_cli.tokenizer import Tokenizer


class NativeLM(LlamaTokenLM):
    """A native `Llama` + SentencePiece `Tokenizer` as an lm-eval language model."""

    def __init__(
        self,
        model: Llama,
        tokenizer: Tokenizer,
        batch_size: int = 16,
        max_gen_toks: int = 256,
        seed: int = 1234,
        prompt_lookup: int | None = None,
        compile: bool = False,
        compile_mode: str = "default",
    ):
        """`prompt_lookup`: generate_until drafts up to that many tokens a step from n-gram
        matches (speculative.PromptLookup): the same text, fewer model forwards."""
        super().__init__(tokenizer)
        self.prompt_lookup = prompt_lookup
        # generate_until's decode steps as compiled graphs (one per batch size and width)
        self.decoder = CompiledDecoder(model, mode=compile_mode) if compile else None
        self.model = model.eval()
        self._batch_size = int(batch_size)
        self._max_gen_toks = max_gen_toks
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    # --- the properties lm-eval reads ----------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self.model.output.weight.device

    @property
    def max_length(self) -> int:
        return self.model.config.block_size

    @property
    def max_gen_toks(self) -> int:
        return self._max_gen_toks

    @property
    def batch_size(self) -> int:
        return self._batch_size

    def get_model_info(self) -> dict:
        return {
            "model_num_parameters": self.model.num_params(),
            "model_dtype": str(self.model.output.weight.dtype),
            "tokenizer": str(self.tok.path),
        }

    # --- scoring -----------------------------------------------------------------------------

    def _loglikelihood_tokens(
        self, requests: list[Request], disable_tqdm: bool = False, override_bs: int | None = None
    ) -> list[tuple[float, bool]]:
        """(sum of continuation log-probs, whether greedy decoding gives the continuation).

        Requests that fit the context are grouped by context: each context runs once, its keys
        and values are copied to one KV-cache row per distinct continuation, and only the
        continuations run after it (multiple choice shares the question between its choices).
        Requests longer than the context are truncated from the left, as HFLM does, and scored
        as whole right-padded rows.
        """
        for _, ctx, cont in requests:
            if not ctx or not cont:
                raise ValueError("lm-eval passed an empty context or continuation")
        units = self._work_units(requests, override_bs or self.batch_size)
        with tqdm(
            total=len(requests), disable=disable_tqdm, desc="loglikelihood", leave=False
        ) as bar:
            scored = self._score_units(requests, units, bar.update)
        return [scored[i] for i in range(len(requests))]

    def _work_units(self, requests: list[Request], batch_size: int) -> list[tuple[str, Any]]:
        """The batches the requests are scored in, in order: ("shared", {context: {continuation
        head: [request indices]}}) for those that fit, ("truncated", [indices]) for the rest.
        They depend only on the requests, so workers that share them out agree on them."""
        fits = [
            i
            for i, (_, ctx, cont) in enumerate(requests)
            if len(ctx) + len(cont) <= self.max_length + 1
        ]
        too_long = sorted(set(range(len(requests))) - set(fits))
        units: list[tuple[str, Any]] = [
            ("shared", batch) for batch in self._shared_batches(requests, fits, batch_size)
        ]
        units += [
            ("truncated", too_long[start : start + batch_size])
            for start in range(0, len(too_long), batch_size)
        ]
        return units

    def _score_units(
        self, requests: list[Request], units: list[tuple[str, Any]], progress: Callable[[int], Any]
    ) -> dict[int, tuple[float, bool]]:
        """Request index -> (log-likelihood, greedy) for every request of `units`."""
        scored: dict[int, tuple[float, bool]] = {}
        for kind, members in units:
            if kind == "shared":
                scored.update(self._score_shared(requests, members))
                progress(sum(len(ids) for rows in members.values() for ids in rows.values()))
            else:
                scored.update(zip(members, self._score_truncated([requests[i] for i in members])))
                progress(len(members))
        return scored

    @staticmethod
    def forward_passes(unit: tuple[str, Any]) -> int:
        """How many trunk calls scoring `unit` makes: a shared batch runs its contexts, then
        its continuation rows unless every continuation is one token (`_shared_hidden`)."""
        kind, members = unit
        if kind == "truncated":
            return 1
        return 1 + any(len(head) for rows in members.values() for head in rows)

    def _trunk(self, idx: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """The model's hidden states (`Llama.hidden_states`): every forward pass goes through
        here, so a sharded scorer can count them."""
        return self.model.hidden_states(idx, **kwargs)

    def _shared_batches(self, requests: list[Request], indices: list[int], batch_size: int):
        """Batches as {context: {continuation[:-1]: [request indices]}}, longest contexts first,
        at most `batch_size` continuation rows (a larger group goes alone) and context +
        continuation width within the model's context length."""
        groups: dict[tuple[int, ...], dict[tuple[int, ...], list[int]]] = defaultdict(
            lambda: defaultdict(list)
        )
        for i in indices:
            _, ctx, cont = requests[i]
            groups[tuple(ctx)][tuple(cont[:-1])].append(i)
        batch: dict = {}
        width_ctx = width_cont = 0
        for ctx in sorted(groups, key=lambda c: (-len(c), c)):
            rows = groups[ctx]
            cont_w = max(len(c) for c in rows)
            new_ctx, new_cont = max(width_ctx, len(ctx)), max(width_cont, cont_w)
            n_rows = sum(len(r) for r in batch.values())
            if batch and (n_rows + len(rows) > batch_size or new_ctx + new_cont > self.max_length):
                yield batch
                batch, new_ctx, new_cont = {}, len(ctx), cont_w
            batch[ctx] = rows
            width_ctx, width_cont = new_ctx, new_cont
        if batch:
            yield batch

    @torch.no_grad()
    def _score_shared(self, requests: list[Request], batch: dict) -> dict[int, tuple[float, bool]]:
        """Each request of a batch scored from `_shared_hidden`'s hidden states: the context's
        last position predicts the first continuation token, the row's (k-1)-th continuation
        position the k-th."""
        contexts = list(batch)
        rows = [(g, cont) for g, ctx in enumerate(contexts) for cont in batch[ctx]]
        hidden, n_cont = self._shared_hidden(contexts, rows)
        picks, targets, owners, order = [], [], [], []
        for r, (g, cont_head) in enumerate(rows):
            first = len(contexts) + r * n_cont  # the row's first continuation position
            for i in batch[contexts[g]][cont_head]:
                cont = requests[i][2]
                picks.append(g)
                picks += range(first, first + len(cont) - 1)
                targets += cont
                owners += [len(order)] * len(cont)
                order.append(i)
        values = self._score_hidden(
            hidden[torch.tensor(picks, device=self.device)], targets, owners, len(order)
        )
        return dict(zip(order, values))

    def _shared_hidden(
        self, contexts: list[tuple[int, ...]], rows: list[tuple[int, tuple[int, ...]]]
    ) -> tuple[torch.Tensor, int]:
        """(hidden states, continuation width): the contexts left-padded to a common end
        (stage 1), then every continuation row from there with its context's cached keys and
        values (stage 2). Rows of the result: each context's last position, then each row's
        continuation positions. RoPE is relative, so the padding changes nothing but rounding."""
        model, device = self.model, self.device
        n_ctx, n_cont = max(len(c) for c in contexts), max(len(c) for _, c in rows)
        idx = torch.zeros((len(contexts), n_ctx), dtype=torch.long)
        ctx_mask = torch.zeros((len(contexts), n_ctx), dtype=torch.bool)
        for g, ctx in enumerate(contexts):
            idx[g, n_ctx - len(ctx) :] = torch.tensor(ctx)
            ctx_mask[g, n_ctx - len(ctx) :] = True
        group_of_row = torch.tensor([g for g, _ in rows])
        key_mask = torch.ones((len(rows), n_ctx + n_cont), dtype=torch.bool)
        key_mask[:, :n_ctx] = ctx_mask[group_of_row]
        model.setup_kv_cache(len(rows), n_ctx + n_cont)
        try:
            last = self._trunk(idx.to(device), input_pos=0, key_mask=ctx_mask.to(device))[:, -1]
            if not n_cont:
                return last, n_cont
            rows_on_device = group_of_row.to(device)
            for layer in model.layers:
                cache = layer.attention.kv_cache
                cache.k[: len(rows), :n_ctx] = cache.k[: len(contexts), :n_ctx][rows_on_device]
                cache.v[: len(rows), :n_ctx] = cache.v[: len(contexts), :n_ctx][rows_on_device]
            idx2 = torch.zeros((len(rows), n_cont), dtype=torch.long)
            for r, (_, cont) in enumerate(rows):
                idx2[r, : len(cont)] = torch.tensor(cont)
            rest = self._trunk(idx2.to(device), input_pos=n_ctx, key_mask=key_mask.to(device))
        finally:
            model.clear_kv_cache()
        return torch.cat([last, rest.reshape(-1, rest.size(-1))]), n_cont

    @torch.no_grad()
    def _score_truncated(self, reqs: list[Request]) -> list[tuple[float, bool]]:
        """Inputs (ctx + cont)[-(max_length + 1):][:-1], right-padded; the last len(cont)
        positions predict the continuation. No key mask and no cache: attention is plainly
        causal, so a real token never sees the padding after it."""
        inputs = [(ctx + cont)[-(self.max_length + 1) :][:-1] for _, ctx, cont in reqs]
        idx = torch.zeros((len(inputs), max(len(x) for x in inputs)), dtype=torch.long)
        for r, inp in enumerate(inputs):
            idx[r, : len(inp)] = torch.tensor(inp)
        hidden = self._trunk(idx.to(self.device))
        width = idx.size(1)
        picks, targets, owners = [], [], []
        for r, ((_, _, cont), inp) in enumerate(zip(reqs, inputs)):
            picks += range(r * width + len(inp) - len(cont), r * width + len(inp))
            targets += cont
            owners += [r] * len(cont)
        flat = hidden.reshape(-1, hidden.size(-1))
        return self._score_hidden(
            flat[torch.tensor(picks, device=self.device)], targets, owners, len(reqs)
        )

    def _score_hidden(
        self, h: torch.Tensor, targets: list[int], owners: list[int], n: int
    ) -> list[tuple[float, bool]]:
        """The output head and log-softmax on the predicting positions only; per-owner sums."""
        device = h.device
        logprobs = F.log_softmax(self.model.output(h).float(), dim=-1)
        target = torch.tensor(targets, device=device)
        owner = torch.tensor(owners, device=device)
        token_lp = logprobs.gather(1, target[:, None]).squeeze(1)
        wrong = (logprobs.argmax(-1) != target).long()
        misses = torch.zeros(n, dtype=torch.long, device=device).index_add_(0, owner, wrong)
        sums = torch.zeros(n, dtype=torch.float64, device=device).index_add_(
            0, owner, token_lp.double()
        )
        return [(float(s), m == 0) for s, m in zip(sums.tolist(), misses.tolist())]

    # --- generation --------------------------------------------------------------------------

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Greedy or sampled continuations, cut at the first stop string (EOS included) by
        lm-eval's own `postprocess_generated_text`. Requests with the same generation kwargs
        are decoded together, longest prompts first, `batch_size` at a time."""
        groups: dict[str, list[int]] = defaultdict(list)
        for i, req in enumerate(requests):
            groups[json.dumps(req.args[1], sort_keys=True, default=str)].append(i)
        out: list[str] = [""] * len(requests)
        with tqdm(
            total=len(requests), disable=disable_tqdm, desc="generate_until", leave=False
        ) as bar:
            for members in groups.values():
                kwargs = normalize_gen_kwargs(requests[members[0]].args[1], self.max_gen_toks)
                until = handle_stop_sequences(kwargs.pop("until", None), eos=self.eos_piece)
                params = sampling_params(kwargs)
                max_ctx = self.max_length - params.max_new_tokens
                if max_ctx <= 0:
                    raise ValueError(
                        f"max_gen_toks {params.max_new_tokens} leaves no room in the "
                        f"context length {self.max_length}"
                    )
                prompts = {i: self.tok_encode(requests[i].args[0])[-max_ctx:] for i in members}
                order = sorted(members, key=lambda i: -len(prompts[i]))
                for start in range(0, len(order), self.batch_size):
                    chunk = order[start : start + self.batch_size]
                    texts = self._generate([prompts[i] for i in chunk], params, until)
                    for i, text in zip(chunk, texts):
                        out[i] = postprocess_generated_text(text, until, None)
                        self.cache_hook.add_partial("generate_until", requests[i].args, out[i])
                    bar.update(len(chunk))
        return out

    def _generate(
        self, prompts: list[list[int]], params: SamplingParams, until: list[str]
    ) -> list[str]:
        """One batch through generate.py's decoder (a left-padded batch, the KV cache, only ids
        the tokenizer has); each row stops at EOS or once its text holds a stop string."""
        if params.max_new_tokens < 1:  # nothing to generate (lm-eval's max_gen_toks: 0)
            return [""] * len(prompts)
        stops = [s for s in until if s]

        def reached_stop(row: int, ids: list[int]) -> bool:
            return any(s in self.tok_decode(ids) for s in stops)

        result = generate_tokens(
            self.model,
            prompts,
            params,
            eos_id=self.tok.eos_id,
            generator=self.generator,
            on_token=reached_stop if stops else None,
            vocab_limit=self.tok.vocab_size,
            drafter=PromptLookup(self.prompt_lookup) if self.prompt_lookup else None,
            decoder=self.decoder,
        )
        return [self.tok_decode(ids) for ids in result.tokens]


def sampling_params(gen_kwargs: dict) -> SamplingParams:
    """generate.py's SamplingParams for lm-eval's normalized generation kwargs: greedy unless
    `do_sample` with a positive temperature; top_k and top_p when they cut anything."""
    temperature = float(gen_kwargs.get("temperature", 0.0))
    top_k = int(gen_kwargs.get("top_k") or 0)
    top_p = float(gen_kwargs.get("top_p") or 1.0)
    return SamplingParams(
        max_new_tokens=gen_kwargs["max_gen_toks"],
        temperature=temperature if gen_kwargs.get("do_sample") and temperature > 0.0 else 0.0,
        top_k=top_k if top_k > 0 else None,
        top_p=top_p if top_p < 1.0 else None,
    )
