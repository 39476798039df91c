"""Sampling from a model with a preallocated KV cache: `tinyllama generate`.

Two layers, both usable from Python:

* `generate_tokens(model, prompts, params, ...)` works on token ids. It left-pads a batch of
  prompts of different lengths (the model's `key_mask` hides the padding; RoPE is relative, so a
  padded row decodes exactly as it would alone), fills the KV cache with one prefill forward that
  computes logits for the last position only, then decodes one token per step. Sampling is
  repetition penalty -> temperature -> top-k -> top-p (Hugging Face's order); temperature 0 is
  greedy. A seeded `torch.Generator` makes the same seed give the same text.
* `generate(loaded, prompts, params, ...)` adds the text side: BOS + SentencePiece ids (an empty
  prompt is just BOS), the context-length check (or `truncate`), `num_samples` rows per prompt,
  stop strings, and streaming callbacks that receive text as soon as it is final (incomplete
  UTF-8 byte pieces and possible beginnings of a stop string are held back).

Timing is measured here (prefill and decode separately) so the CLI and the benchmark report
the same figures.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch

from tinyllama_cli.decode_step import (
    CompiledDecoder,
    CompiledShape,
    check_compile_mode,
    require_compiler,
)
from tinyllama_cli.devices import resolve_device, resolve_dtype
from tinyllama_cli.errors import UserError
from tinyllama_cli.hardware import set_cpu_threads
from tinyllama_cli.model import Llama
from tinyllama_cli.sampling import (  # noqa: F401 -- generate's public names since 0.1
    SamplingParams,
    apply_repetition_penalty,
    filter_logits,
    processed_logits,
    sample_next,
)
from tinyllama_cli.speculative import (
    Drafter,
    Speculation,
    SpeculationOptions,
    accept,
    check_draft_vocabulary,
)

# generate's wording of `devices.NO_CUDA` (the two commands worded it differently before they
# shared `resolve_device`; each keeps its own).
NO_CUDA = "--device cuda was asked for but no CUDA GPU is available; use --device cpu"


# --- the decode loop over token ids -------------------------------------------------------------


@dataclass
class TokenResult:
    tokens: list[list[int]]  # new tokens per row (EOS not included)
    finish_reasons: list[str]  # "eos" | "stop" | "length"
    prefill_s: float
    decode_s: float
    steps: int  # decode steps run (target forwards after the prefill)
    drafted: int = 0  # speculative decoding: tokens proposed, summed over the rows
    accepted: int = 0  # ... and accepted by the rule (a batch keeps its rows' minimum)


# Called with (row, new tokens of the row so far) after each token; True ends the row ("stop").
RowCallback = Callable[[int, list[int]], bool]


class _Rows:
    """Each row's new tokens and why it ended (EOS, `on_token`'s stop, max_new_tokens)."""

    def __init__(
        self, batch: int, params: SamplingParams, eos_id: int | None, on_token: RowCallback | None
    ):
        self.params, self.eos_id, self.on_token = params, eos_id, on_token
        self.new: list[list[int]] = [[] for _ in range(batch)]
        self.reasons = ["length"] * batch
        self.active = [True] * batch

    def take(self, tokens: list[int]) -> bool:
        """Append one token to every row still going; whether any row still is."""
        for row, token in enumerate(tokens):
            if not self.active[row]:
                continue
            if token == self.eos_id and not self.params.ignore_eos:
                self.active[row], self.reasons[row] = False, "eos"
                continue
            self.new[row].append(token)
            if self.on_token is not None and self.on_token(row, self.new[row]):
                self.active[row], self.reasons[row] = False, "stop"
            elif len(self.new[row]) >= self.params.max_new_tokens:
                self.active[row] = False
        return any(self.active)

    def wanted(self) -> int:
        """The most tokens a row still going may add."""
        return max(
            self.params.max_new_tokens - len(new)
            for new, active in zip(self.new, self.active)
            if active
        )


@dataclass
class _Batch:
    """The left-padded token buffer of one batch and what its forwards need."""

    tokens: torch.Tensor  # (B, total): prompts right-aligned at prompt_len, then new tokens
    key_mask: torch.Tensor | None  # (B, total), False on padding; None when nothing is padded
    starts: list[int]  # where each row's prompt begins
    prompt_len: int
    total: int
    seen: torch.Tensor | None  # (B, V) tokens present, for the repetition penalty

    def mask(self, end: int) -> torch.Tensor | None:
        return self.key_mask[:, :end] if self.key_mask is not None else None

    def append(self, pos: int, new: torch.Tensor) -> None:
        """Write (B, n) tokens at positions pos.. and mark them seen."""
        self.tokens[:, pos : pos + new.size(1)] = new
        if self.seen is not None:
            self.seen.scatter_(1, new, True)


def _batch(
    prompts: Sequence[Sequence[int]],
    total: int,
    vocab_size: int,
    penalty: bool,
    device: torch.device,
) -> _Batch:
    lengths = [len(p) for p in prompts]
    prompt_len = max(lengths)
    tokens = torch.zeros(len(prompts), total, dtype=torch.long)
    key_mask = torch.ones(len(prompts), total, dtype=torch.bool)
    starts = [prompt_len - n for n in lengths]
    for row, prompt in enumerate(prompts):
        tokens[row, starts[row] : prompt_len] = torch.tensor(prompt, dtype=torch.long)
        key_mask[row, : starts[row]] = False
    padded = min(lengths) != prompt_len  # equal lengths need no mask: plain causal attention
    seen = None
    if penalty:
        seen = torch.zeros(len(prompts), vocab_size, dtype=torch.bool, device=device)
        for row, prompt in enumerate(prompts):  # the prompt's own tokens, never the padding
            seen[row, torch.tensor(prompt, device=device)] = True
    return _Batch(
        tokens.to(device), key_mask.to(device) if padded else None, starts, prompt_len, total, seen
    )


@torch.inference_mode()
def generate_tokens(
    model: Llama,
    prompts: Sequence[Sequence[int]],
    params: SamplingParams,
    *,
    eos_id: int | None = None,
    generator: torch.Generator | None = None,
    on_token: RowCallback | None = None,
    decoder: CompiledDecoder | None = None,
    vocab_limit: int | None = None,
    drafter: Drafter | None = None,
) -> TokenResult:
    """Continue every prompt (token ids, BOS included by the caller) as one left-padded batch.

    Each row ends at EOS, when `on_token` returns True, after `max_new_tokens`, or when the
    context is full. A `decoder` (decode_step.py) runs the decode steps (one token, or a
    speculative step's k + 1) as a compiled graph over a static cache. `vocab_limit` (the
    tokenizer's size) bounds the ids that can be generated. With a `drafter` (speculative.py)
    each target forward checks the drafter's proposals: the same tokens when greedy, the same
    distribution when sampling.
    """
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token (BOS)")
    device = model.output.weight.device
    prompt_len = max(len(p) for p in prompts)
    total = min(model.config.block_size, prompt_len + params.max_new_tokens)
    if prompt_len >= total:
        raise ValueError(
            f"prompt of {prompt_len} tokens leaves no room in the context of "
            f"{model.config.block_size}"
        )
    batch = _batch(
        prompts, total, model.config.vocab_size, params.repetition_penalty != 1.0, device
    )
    rows = _Rows(len(prompts), params, eos_id, on_token)
    if decoder is not None:  # its static cache, and its graph compiled before the clock
        width = 1 if drafter is None else drafter.k + 1  # a speculative step's k + 1 tokens
        step_forward = decoder.begin(len(prompts), total, batch.key_mask, width)
    else:
        model.setup_kv_cache(len(prompts), total)
        step_forward = model
    _sync(device)
    t0 = time.perf_counter()
    try:
        logits = model(
            batch.tokens[:, :prompt_len],
            input_pos=0,
            last_only=True,
            key_mask=batch.mask(prompt_len),
        )[:, -1]
        _sync(device)
        t1 = time.perf_counter()
        choose = _Chooser(params, generator, vocab_limit)
        counts = (
            _decode_plain(step_forward, batch, rows, logits, choose)
            if drafter is None
            else _decode_speculative(step_forward, batch, rows, logits, choose, drafter)
        )
        _sync(device)
        t2 = time.perf_counter()
    finally:
        model.clear_kv_cache()
    return TokenResult(
        tokens=rows.new,
        finish_reasons=rows.reasons,
        prefill_s=t1 - t0,
        decode_s=t2 - t1,
        steps=counts[0],
        drafted=counts[1],
        accepted=counts[2],
    )


@dataclass
class _Chooser:
    """How this call picks tokens: the sampling parameters, the generator, the id bound."""

    params: SamplingParams
    generator: torch.Generator | None
    vocab_limit: int | None

    def next(self, logits: torch.Tensor, seen: torch.Tensor | None) -> torch.Tensor:
        return sample_next(logits, self.params, self.generator, seen, self.vocab_limit)


def _decode_plain(
    step_forward: Callable, batch: _Batch, rows: _Rows, logits: torch.Tensor, choose: _Chooser
) -> tuple[int, int, int]:
    """One token per forward; (forwards, 0, 0)."""
    steps = 0
    for pos in range(batch.prompt_len, batch.total):
        nxt = choose.next(logits, batch.seen)
        batch.append(pos, nxt[:, None])
        if not rows.take(nxt.tolist()) or pos + 1 == batch.total:
            break
        logits = step_forward(
            batch.tokens[:, pos : pos + 1], input_pos=pos, key_mask=batch.mask(pos + 1)
        )[:, -1]
        steps += 1
    return steps, 0, 0


def _decode_speculative(
    step_forward: Callable,
    batch: _Batch,
    rows: _Rows,
    logits: torch.Tensor,
    choose: _Chooser,
    drafter: Drafter,
) -> tuple[int, int, int]:
    """Draft, verify k + 1 positions in one target forward, keep the accepted prefix plus the
    target's own next token; (target forwards, tokens drafted, tokens accepted)."""
    nxt = choose.next(logits, batch.seen)
    batch.append(batch.prompt_len, nxt[:, None])
    length, steps, drafted, accepted = batch.prompt_len + 1, 0, 0, 0
    if not rows.take(nxt.tolist()) or length == batch.total:
        return steps, drafted, accepted
    drafter.begin(batch.key_mask, batch.starts, batch.total)
    try:
        while True:
            # Room for k drafts + the target's token (positions length .. length + k), and no
            # more than any row still wants.
            k = min(drafter.k, batch.total - length - 1, rows.wanted() - 1)
            draft = drafter.propose(batch.tokens, length, k, batch.seen) if k > 0 else None
            k = draft.tokens.size(1) if draft is not None else 0
            if draft is not None:
                batch.tokens[:, length : length + k] = draft.tokens
            logits = step_forward(
                batch.tokens[:, length - 1 : length + k],
                input_pos=length - 1,
                key_mask=batch.mask(length + k),
            )
            steps += 1
            if draft is None:
                emitted = choose.next(logits[:, -1], batch.seen)[:, None]
            else:
                verdict = accept(
                    logits, draft, choose.params, choose.generator, batch.seen, choose.vocab_limit
                )
                emitted = verdict.emitted
                live = torch.tensor(rows.active, device=verdict.accepted.device)
                drafted += k * int(live.sum())
                accepted += int(verdict.accepted[live].sum())
            batch.append(length, emitted)
            drafter.keep(length + emitted.size(1) - 1)
            length += emitted.size(1)
            going = True
            for column in emitted.t().tolist():
                if not (going := rows.take(column)):
                    break
            if not going or length >= batch.total:
                return steps, drafted, accepted
    finally:
        drafter.end()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- text: prompts, stop strings, streaming -----------------------------------------------------


class _TextStream:
    """The completion text of one row, with the part that is final (safe to print) tracked.

    The completion is decoded together with the prompt's last token and that token's text is
    cut off, so a leading space ("▁word") survives. Text is held back while it ends in an
    incomplete UTF-8 sequence or could be the beginning of a stop string.
    """

    def __init__(self, tokenizer, anchor: int, stops: Sequence[str]):
        self.tokenizer, self.anchor, self.stops = tokenizer, anchor, list(stops)
        self.prefix = tokenizer.decode([anchor])
        self.text = ""  # the completion so far (cut at a stop string once one is found)
        self.emitted = 0  # characters of self.text already handed to the caller

    def update(self, ids: list[int]) -> tuple[str, bool]:
        """(newly final text, whether a stop string was found) after the row grew to `ids`."""
        full = self.tokenizer.decode([self.anchor, *ids])
        text = (
            full[len(self.prefix) :] if full.startswith(self.prefix) else self.tokenizer.decode(ids)
        )
        hits = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.text = text[: min(hits)]
            return self.flush(), True
        self.text = text
        safe = len(text)
        while safe > self.emitted and text[safe - 1] == "\ufffd":
            safe -= 1
        safe -= max(
            (self._stop_prefix(text[self.emitted : safe], stop) for stop in self.stops), default=0
        )
        delta, self.emitted = text[self.emitted : safe], max(self.emitted, safe)
        return delta, False

    @staticmethod
    def _stop_prefix(text: str, stop: str) -> int:
        """Length of the longest tail of `text` that is a beginning of `stop` (0 if none)."""
        for n in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:n]):
                return n
        return 0

    def flush(self) -> str:
        delta, self.emitted = self.text[self.emitted :], len(self.text)
        return delta


@dataclass
class Sample:
    prompt_index: int
    sample_index: int
    prompt: str
    completion: str
    tokens: list[int]
    prompt_tokens: int  # after truncation, BOS included
    finish_reason: str  # "eos" | "stop" | "length"
    truncated: bool = False


@dataclass
class GenerationResult:
    samples: list[Sample]
    seed: int
    prompt_tokens: int  # summed over rows
    new_tokens: int  # summed over rows
    prefill_s: float
    decode_s: float
    batches: int
    threads: tuple[int, str] | None = None  # CPU intra-op threads and why (None on CUDA)
    model: str = ""  # the directory the weights came from
    speculation: Speculation | None = None
    forwards: int = 0  # target forwards after the prefills
    drafted: int = 0  # speculative decoding: draft tokens proposed, summed over the rows
    accepted: int = 0  # ... and accepted by the rule
    compiled: list[CompiledShape] | None = None  # --compile: the graphs this call made

    @property
    def seconds(self) -> float:
        return self.prefill_s + self.decode_s

    @property
    def tokens_per_sec(self) -> float:
        """New tokens per second of generation, prefill included."""
        return self.new_tokens / self.seconds if self.seconds > 0 else 0.0

    def stats(self) -> dict:
        return {
            "prompt_tokens": self.prompt_tokens,
            "new_tokens": self.new_tokens,
            "batches": self.batches,
            "prefill_s": round(self.prefill_s, 4),
            "decode_s": round(self.decode_s, 4),
            "seconds": round(self.seconds, 4),
            "tokens_per_sec": round(self.tokens_per_sec, 2),
            "prefill_tokens_per_sec": round(self.prompt_tokens / self.prefill_s, 2)
            if self.prefill_s
            else None,
            "threads": self.threads[0] if self.threads else None,
            "threads_reason": self.threads[1] if self.threads else None,
            **self.speculation_stats(),
            **self.compile_stats(),
        }

    def compile_stats(self) -> dict:
        """--compile: seconds spent compiling decode graphs (not in `seconds`), and how many of
        the graphs made came from inductor's on-disk cache."""
        if self.compiled is None:
            return {"compiled": None}
        return {
            "compiled": [asdict(shape) for shape in self.compiled],
            "compile_s": round(sum(shape.seconds for shape in self.compiled), 3),
        }

    def speculation_stats(self) -> dict:
        """The drafter, its tokens per step, and the share of drafted tokens accepted."""
        if self.speculation is None:
            return {"speculation": None}
        return {
            "speculation": self.speculation.method,
            "draft_tokens": self.speculation.tokens,
            "drafted": self.drafted,
            "accepted": self.accepted,
            "acceptance_rate": round(self.accepted / self.drafted, 4) if self.drafted else None,
            "target_forwards": self.forwards,
        }

    def to_dict(self) -> dict:
        """What `generate --json` prints."""
        return {
            "model": self.model,
            "seed": self.seed,
            "samples": [asdict(s) for s in self.samples],
            "stats": self.stats(),
        }


# Called with (sample number, text that just became final) while generating; `on_done` with the
# finished Sample.
TextCallback = Callable[[int, str], None]


def encode_prompts(
    tokenizer, prompts: Sequence[str], block_size: int, max_new_tokens: int, truncate: bool
) -> list[tuple[list[int], bool]]:
    """BOS + ids per prompt, and whether it was truncated; a prompt that cannot fit is an error.

    A prompt must leave room for at least one new token. With `truncate`, its oldest tokens
    (after BOS) are dropped so that it plus max_new_tokens fits the context (keeping at least
    half the context for the prompt when max_new_tokens is larger than that).
    """
    out = []
    for i, text in enumerate(prompts):
        ids = [tokenizer.bos_id, *tokenizer.encode(text)]
        if truncate:
            keep = max(block_size - max_new_tokens, block_size // 2, 1)
            if len(ids) > keep:
                out.append(([ids[0], *ids[len(ids) - keep + 1 :]] if keep > 1 else ids[-1:], True))
                continue
        elif len(ids) >= block_size:
            raise UserError(
                f"prompt {i + 1} has {len(ids)} tokens (with BOS) but the model's context is "
                f"{block_size}, "
                "leaving no room to generate; shorten it or pass --truncate to keep its last tokens"
            )
        out.append((ids, False))
    return out


EncodedPrompts = list[tuple[list[int], bool]]  # (BOS + ids, truncated) per prompt


def prepare_prompts(
    loaded, prompts: Sequence[str], params: SamplingParams, truncate: bool = False
) -> EncodedPrompts:
    """Every check that needs the loaded model and tokenizer, and the encoded prompts.

    `run` calls this before anything is shown, so that a bad prompt (too long for the context,
    say) is the command's only output rather than an error after the prompt was echoed.
    """
    if not prompts:
        raise UserError("no prompt given; pass --prompt TEXT (repeatable) or --prompt-file FILE")
    tokenizer, model = loaded.tokenizer, loaded.model
    if tokenizer is None:
        raise UserError(
            f"{loaded.source} has no tokenizer.model beside it or in its run directory; "
            "copy the tokenizer there"
        )
    return encode_prompts(
        tokenizer, prompts, model.config.block_size, params.max_new_tokens, truncate
    )


def generate(
    loaded,
    prompts: Sequence[str],
    params: SamplingParams,
    *,
    num_samples: int = 1,
    batch_size: int = 8,
    truncate: bool = False,
    on_text: TextCallback | None = None,
    on_done: Callable[[Sample], None] | None = None,
    decoder: CompiledDecoder | None = None,
    encoded: EncodedPrompts | None = None,
    speculation: Speculation | None = None,
) -> GenerationResult:
    """Sample `num_samples` completions of every prompt with a LoadedModel (model + tokenizer).

    Rows (prompt x sample, prompt-major) are decoded `batch_size` at a time; sample number n in
    the callbacks is the row's index in that order. `encoded` is `prepare_prompts`' result when
    the caller has already checked the prompts. `speculation` drafts tokens for the model to
    check (speculative.py): greedy text is unchanged, sampled text keeps its distribution.
    """
    params.validate()
    if num_samples < 1 or batch_size < 1:
        raise UserError("--num-samples and --batch-size must be at least 1")
    if encoded is None:
        encoded = prepare_prompts(loaded, prompts, params, truncate)
    tokenizer, model = loaded.tokenizer, loaded.model
    seed = params.seed if params.seed is not None else int.from_bytes(os.urandom(4), "little")
    generator = torch.Generator(device=model.output.weight.device).manual_seed(seed)

    rows = [(p, s) for p in range(len(prompts)) for s in range(num_samples)]
    shapes_before = len(decoder.shapes) if decoder is not None else 0
    samples: list[Sample] = []
    prefill_s = decode_s = 0.0
    counts = [0, 0, 0]  # target forwards, drafted, accepted
    for first in range(0, len(rows), batch_size):
        chunk = rows[first : first + batch_size]
        ids = [encoded[p][0] for p, _ in chunk]
        streams = [_TextStream(tokenizer, row_ids[-1], params.stop) for row_ids in ids]

        def on_token(row: int, new_ids: list[int], streams=streams, first=first) -> bool:
            if not params.stop and on_text is None:
                return False
            delta, stopped = streams[row].update(new_ids)
            if delta and on_text is not None:
                on_text(first + row, delta)
            return stopped

        drafter = (
            speculation.drafter(params, generator, tokenizer.vocab_size)
            if speculation is not None
            else None
        )
        result = generate_tokens(
            model,
            ids,
            params,
            eos_id=tokenizer.eos_id,
            generator=generator,
            on_token=on_token,
            decoder=decoder,
            vocab_limit=tokenizer.vocab_size,
            drafter=drafter,
        )
        prefill_s, decode_s = prefill_s + result.prefill_s, decode_s + result.decode_s
        counts = [counts[0] + result.steps, counts[1] + result.drafted, counts[2] + result.accepted]
        for row, (p, s) in enumerate(chunk):
            stream = streams[row]
            if result.finish_reasons[row] != "stop":
                stream.update(result.tokens[row])
            tail = stream.flush()
            if tail and on_text is not None:
                on_text(first + row, tail)
            sample = Sample(
                prompt_index=p,
                sample_index=s,
                prompt=prompts[p],
                completion=stream.text,
                tokens=result.tokens[row],
                prompt_tokens=len(ids[row]),
                finish_reason=result.finish_reasons[row],
                truncated=encoded[p][1],
            )
            samples.append(sample)
            if on_done is not None:
                on_done(sample)
    return GenerationResult(
        samples=samples,
        seed=seed,
        prompt_tokens=sum(len(encoded[p][0]) for p, _ in rows),
        new_tokens=sum(len(s.tokens) for s in samples),
        prefill_s=prefill_s,
        decode_s=decode_s,
        batches=(len(rows) + batch_size - 1) // batch_size,
        model=str(loaded.source),
        speculation=speculation,
        forwards=counts[0],
        drafted=counts[1],
        accepted=counts[2],
        compiled=decoder.shapes[shapes_before:] if decoder is not None else None,
    )


# --- loading ------------------------------------------------------------------------------------


def prepare_for_decoding(model: Llama) -> None:
    """Inference only, in place: q/k/v as one matmul (`Llama.fuse_projections`: fewer, larger
    matrix-vector products per step) and, on a CPU, every weight stored input-major
    (`Llama.store_weights_input_major`: MKL streams that layout about twice as fast at batch 1).
    GPUs keep torch's layout (the layout's effect was measured on CPUs only)."""
    model.fuse_projections()
    if model.output.weight.device.type == "cpu":
        model.store_weights_input_major()


def load_for_generation(
    path,
    device: str = "auto",
    dtype: str = "auto",
    compile: bool = False,
    compile_mode: str = "default",
):
    """(LoadedModel, CompiledDecoder or None, notes for the user).

    The model is prepared for decoding (`prepare_for_decoding`: q/k/v fused, and input-major
    weights on a CPU): the loaded model is for inference only.

    `compile` decodes with decode_step.py's compiled step over a static KV cache, one graph per
    (batch, cache length), kept in inductor's on-disk cache. Opt-in: the first compile of a
    shape takes seconds to tens of seconds and is won back only after thousands of tokens
    (docs/generate.md has the figures). `compile_mode` "max-autotune" freezes the weights into
    the graph for faster steps, compiled afresh in every process (decode_step.py).
    """
    from tinyllama_cli.load import load_model

    resolved = resolve_device(device, NO_CUDA)
    if compile:
        require_compiler(resolved)
    loaded = load_model(path, device=resolved, dtype=resolve_dtype(dtype, resolved))
    prepare_for_decoding(loaded.model)
    decoder = CompiledDecoder(loaded.model, mode=compile_mode) if compile else None
    return loaded, decoder, []


def run(
    ckpt,
    prompts: Sequence[str],
    prompt_file: str | None,
    params: SamplingParams,
    *,
    num_samples: int = 1,
    batch_size: int = 8,
    truncate: bool = False,
    device: str = "auto",
    dtype: str = "auto",
    compile: bool = False,
    compile_mode: str = "default",
    threads: int | None = None,
    speculation: SpeculationOptions | None = None,
    on_start: Callable[[list[str], list[str]], None] | None = None,
    on_text: TextCallback | None = None,
    on_done: Callable[[Sample], None] | None = None,
) -> GenerationResult:
    """Everything `tinyllama generate` does: gather prompts, check flags (before the slow load),
    load, check every prompt, generate. `on_start(prompts, notes)` runs once the model is loaded
    and the prompts are known to fit, so nothing is shown before an error. The result names
    the directory the weights came from (`model`)."""
    prompts = list(prompts) + (read_prompt_file(prompt_file) if prompt_file is not None else [])
    if not prompts:
        raise UserError("no prompt given; pass --prompt TEXT (repeatable) or --prompt-file FILE")
    params.validate()
    if num_samples < 1 or batch_size < 1:
        raise UserError("--num-samples and --batch-size must be at least 1")
    speculation = speculation or SpeculationOptions()
    speculation.validate()
    # On CPU only idle cores get a thread unless --threads says otherwise: decoding is many small
    # ops, and threads waiting for a core another process holds made it 50x slower.
    on_cpu = resolve_device(device, NO_CUDA).type == "cpu"
    threads_used = set_cpu_threads(threads) if on_cpu else None
    check_compile_mode(compile_mode)
    loaded, decoder, notes = load_for_generation(
        ckpt, device=device, dtype=dtype, compile=compile, compile_mode=compile_mode
    )
    encoded = prepare_prompts(loaded, prompts, params, truncate)
    drafting = load_speculation(speculation, loaded, device, dtype)
    if drafting is not None and drafting.model is not None:
        check_draft_context(drafting.model, speculation.draft, encoded, params, loaded.model)
    if on_start is not None:
        on_start(prompts, notes)
    result = generate(
        loaded,
        prompts,
        params,
        num_samples=num_samples,
        batch_size=batch_size,
        truncate=truncate,
        on_text=on_text,
        on_done=on_done,
        decoder=decoder,
        encoded=encoded,
        speculation=drafting,
    )
    result.threads = threads_used
    return result


def load_speculation(
    options: SpeculationOptions, loaded, device: str, dtype: str
) -> Speculation | None:
    """The drafter --draft or --prompt-lookup asks for; the draft model is loaded like the model
    (same device and dtype, projections fused) and must share its vocabulary."""
    if options.prompt_lookup is not None:
        return Speculation(tokens=options.prompt_lookup)
    if options.draft is None:
        return None
    from tinyllama_cli.load import load_model

    resolved = resolve_device(device, NO_CUDA)
    draft = load_model(options.draft, device=resolved, dtype=resolve_dtype(dtype, resolved))
    check_draft_vocabulary(loaded.tokenizer, draft.tokenizer, options.draft)
    prepare_for_decoding(draft.model)
    return Speculation(tokens=options.draft_tokens, model=draft.model)


def check_draft_context(
    draft: Llama, where: str, encoded: EncodedPrompts, params: SamplingParams, model: Llama
) -> None:
    """The draft must hold every position the model will decode."""
    longest = max(len(ids) for ids, _ in encoded)
    needed = min(model.config.block_size, longest + params.max_new_tokens)
    if needed > draft.config.block_size:
        raise UserError(
            f"the draft {where} has a context of {draft.config.block_size} tokens but "
            f"this run decodes up to {needed}; lower --max-new-tokens or pass a draft "
            "with a longer context"
        )


def read_prompt_file(path) -> list[str]:
    """One prompt per line; a trailing newline does not make an extra empty prompt."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"prompt file {path} does not exist; pass a text file with one prompt per line"
        )
    return path.read_text(encoding="utf-8").splitlines()
