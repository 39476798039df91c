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
from dataclasses import asdict, dataclass, field

import torch

from tinyllama_cli.devices import resolve_device, resolve_dtype
from tinyllama_cli.errors import UserError
from tinyllama_cli.hardware import set_cpu_threads
from tinyllama_cli.model import Llama

# generate's wording of `devices.NO_CUDA` (the two commands worded it differently before they
# shared `resolve_device`; each keeps its own).
NO_CUDA = "--device cuda was asked for but no CUDA GPU is available; use --device cpu"


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
            raise UserError(f"--repetition-penalty must be > 0 (1 = off), got {self.repetition_penalty}")
        if any(not s for s in self.stop):
            raise UserError("--stop strings must not be empty")


# --- sampling -----------------------------------------------------------------------------------


def apply_repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
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


def sample_next(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None,
                seen: torch.Tensor | None = None, vocab_limit: int | None = None) -> torch.Tensor:
    """The next token of every row, (B,), from the last position's logits (B, V).

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
        return logits.argmax(dim=-1)
    logits = filter_logits(logits / params.temperature, params.top_k, params.top_p)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


# --- the decode loop over token ids -------------------------------------------------------------


@dataclass
class TokenResult:
    tokens: list[list[int]]  # new tokens per row (EOS not included)
    finish_reasons: list[str]  # "eos" | "stop" | "length"
    prefill_s: float
    decode_s: float
    steps: int  # decode steps run (forwards after the prefill)


# Called with (row, new tokens of the row so far) after each token; True ends the row ("stop").
RowCallback = Callable[[int, list[int]], bool]


@torch.inference_mode()
def generate_tokens(model: Llama, prompts: Sequence[Sequence[int]], params: SamplingParams, *,
                    eos_id: int | None = None, generator: torch.Generator | None = None,
                    on_token: RowCallback | None = None, forward: Callable | None = None,
                    vocab_limit: int | None = None) -> TokenResult:
    """Continue every prompt (token ids, BOS included by the caller) as one left-padded batch.

    Each row ends at EOS, when `on_token` returns True, after `max_new_tokens`, or when the
    context is full. `forward` replaces `model` for the one-token decode steps (torch.compile).
    `vocab_limit` (the tokenizer's size) bounds the ids that can be generated.
    """
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token (BOS)")
    device = model.output.weight.device
    batch, lengths = len(prompts), [len(p) for p in prompts]
    prompt_len = max(lengths)
    total = min(model.config.block_size, prompt_len + params.max_new_tokens)
    if prompt_len >= total:
        raise ValueError(f"prompt of {prompt_len} tokens leaves no room in the context of {model.config.block_size}")

    tokens = torch.zeros(batch, total, dtype=torch.long)
    key_mask = torch.ones(batch, total, dtype=torch.bool)
    for row, prompt in enumerate(prompts):
        tokens[row, prompt_len - len(prompt) : prompt_len] = torch.tensor(prompt, dtype=torch.long)
        key_mask[row, : prompt_len - len(prompt)] = False
    tokens, key_mask = tokens.to(device), key_mask.to(device)
    padded = min(lengths) != prompt_len  # equal lengths need no mask: plain causal attention
    seen = None
    if params.repetition_penalty != 1.0:
        seen = torch.zeros(batch, model.config.vocab_size, dtype=torch.bool, device=device)
        for row, prompt in enumerate(prompts):  # the prompt's own tokens, never the padding
            seen[row, torch.tensor(prompt, device=device)] = True

    new: list[list[int]] = [[] for _ in range(batch)]
    reasons = ["length"] * batch
    active = [True] * batch
    step_forward = forward if forward is not None else model
    _sync(device)
    t0 = time.perf_counter()
    model.setup_kv_cache(batch, total)
    try:
        logits = model(tokens[:, :prompt_len], input_pos=0, last_only=True,
                       key_mask=key_mask[:, :prompt_len] if padded else None)[:, -1]
        _sync(device)
        t1 = time.perf_counter()
        steps = 0
        for pos in range(prompt_len, total):
            nxt = sample_next(logits, params, generator, seen, vocab_limit)
            tokens[:, pos] = nxt
            if seen is not None:
                seen.scatter_(1, nxt[:, None], True)
            for row, token in enumerate(nxt.tolist()):
                if not active[row]:
                    continue
                if token == eos_id and not params.ignore_eos:
                    active[row], reasons[row] = False, "eos"
                    continue
                new[row].append(token)
                if on_token is not None and on_token(row, new[row]):
                    active[row], reasons[row] = False, "stop"
                elif len(new[row]) >= params.max_new_tokens:
                    active[row] = False
            if not any(active) or pos + 1 == total:
                break
            logits = step_forward(tokens[:, pos : pos + 1], input_pos=pos,
                                  key_mask=key_mask[:, : pos + 1] if padded else None)[:, -1]
            steps += 1
        _sync(device)
        t2 = time.perf_counter()
    finally:
        model.clear_kv_cache()
    return TokenResult(tokens=new, finish_reasons=reasons, prefill_s=t1 - t0, decode_s=t2 - t1, steps=steps)


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
        text = full[len(self.prefix):] if full.startswith(self.prefix) else self.tokenizer.decode(ids)
        hits = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.text = text[: min(hits)]
            return self.flush(), True
        self.text = text
        safe = len(text)
        while safe > self.emitted and text[safe - 1] == "\ufffd":
            safe -= 1
        safe -= max((self._stop_prefix(text[self.emitted : safe], stop) for stop in self.stops), default=0)
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

    @property
    def seconds(self) -> float:
        return self.prefill_s + self.decode_s

    @property
    def tokens_per_sec(self) -> float:
        """New tokens per second of generation, prefill included."""
        return self.new_tokens / self.seconds if self.seconds > 0 else 0.0

    def stats(self) -> dict:
        return {
            "prompt_tokens": self.prompt_tokens, "new_tokens": self.new_tokens, "batches": self.batches,
            "prefill_s": round(self.prefill_s, 4), "decode_s": round(self.decode_s, 4),
            "seconds": round(self.seconds, 4), "tokens_per_sec": round(self.tokens_per_sec, 2),
            "prefill_tokens_per_sec": round(self.prompt_tokens / self.prefill_s, 2) if self.prefill_s else None,
            "threads": self.threads[0] if self.threads else None,
            "threads_reason": self.threads[1] if self.threads else None,
        }

    def to_dict(self) -> dict:
        """What `generate --json` prints."""
        return {"model": self.model, "seed": self.seed,
                "samples": [asdict(s) for s in self.samples], "stats": self.stats()}


# Called with (sample number, text that just became final) while generating; `on_done` with the
# finished Sample.
TextCallback = Callable[[int, str], None]


def encode_prompts(tokenizer, prompts: Sequence[str], block_size: int, max_new_tokens: int,
                   truncate: bool) -> list[tuple[list[int], bool]]:
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
                f"prompt {i + 1} has {len(ids)} tokens (with BOS) but the model's context is {block_size}, "
                "leaving no room to generate; shorten it or pass --truncate to keep its last tokens"
            )
        out.append((ids, False))
    return out


EncodedPrompts = list[tuple[list[int], bool]]  # (BOS + ids, truncated) per prompt


def prepare_prompts(loaded, prompts: Sequence[str], params: SamplingParams,
                    truncate: bool = False) -> EncodedPrompts:
    """Every check that needs the loaded model and tokenizer, and the encoded prompts.

    `run` calls this before anything is shown, so that a bad prompt (too long for the context,
    say) is the command's only output rather than an error after the prompt was echoed.
    """
    if not prompts:
        raise UserError("no prompt given; pass --prompt TEXT (repeatable) or --prompt-file FILE")
    tokenizer, model = loaded.tokenizer, loaded.model
    if tokenizer is None:
        raise UserError(f"{loaded.source} has no tokenizer.model beside it or in its run directory; "
                        "copy the tokenizer there")
    return encode_prompts(tokenizer, prompts, model.config.block_size, params.max_new_tokens, truncate)


def generate(loaded, prompts: Sequence[str], params: SamplingParams, *, num_samples: int = 1,
             batch_size: int = 8, truncate: bool = False, on_text: TextCallback | None = None,
             on_done: Callable[[Sample], None] | None = None, forward: Callable | None = None,
             encoded: EncodedPrompts | None = None) -> GenerationResult:
    """Sample `num_samples` completions of every prompt with a LoadedModel (model + tokenizer).

    Rows (prompt x sample, prompt-major) are decoded `batch_size` at a time; sample number n in
    the callbacks is the row's index in that order. `encoded` is `prepare_prompts`' result when
    the caller has already checked the prompts.
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
    samples: list[Sample] = []
    prefill_s = decode_s = 0.0
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

        result = generate_tokens(model, ids, params, eos_id=tokenizer.eos_id, generator=generator,
                                 on_token=on_token, forward=forward, vocab_limit=tokenizer.vocab_size)
        prefill_s, decode_s = prefill_s + result.prefill_s, decode_s + result.decode_s
        for row, (p, s) in enumerate(chunk):
            stream = streams[row]
            if result.finish_reasons[row] != "stop":
                stream.update(result.tokens[row])
            tail = stream.flush()
            if tail and on_text is not None:
                on_text(first + row, tail)
            sample = Sample(prompt_index=p, sample_index=s, prompt=prompts[p], completion=stream.text,
                            tokens=result.tokens[row], prompt_tokens=len(ids[row]),
                            finish_reason=result.finish_reasons[row], truncated=encoded[p][1])
            samples.append(sample)
            if on_done is not None:
                on_done(sample)
    return GenerationResult(samples=samples, seed=seed,
                            prompt_tokens=sum(len(encoded[p][0]) for p, _ in rows),
                            new_tokens=sum(len(s.tokens) for s in samples), prefill_s=prefill_s,
                            decode_s=decode_s, batches=(len(rows) + batch_size - 1) // batch_size,
                            model=str(loaded.source))


# --- loading ------------------------------------------------------------------------------------


def load_for_generation(path, device: str = "auto", dtype: str = "auto", compile: bool = False):
    """(LoadedModel, decode-step forward or None, notes for the user).

    The model's q/k/v projections are fused (`Llama.fuse_projections`): the loaded model is for
    inference only.

    torch.compile is applied to the one-token decode step, and only on CUDA: on CPU the
    compile time (tens of seconds) outweighs the gain for a single command.
    """
    from tinyllama_cli.load import load_model

    resolved = resolve_device(device, NO_CUDA)
    loaded = load_model(path, device=resolved, dtype=resolve_dtype(dtype, resolved))
    loaded.model.fuse_projections()  # fewer, larger matrix-vector products per decode step
    notes = []
    forward = None
    if compile:
        if resolved.type == "cuda":
            forward = torch.compile(loaded.model, dynamic=True)
        else:
            notes.append("--compile is used on CUDA only; running eagerly on CPU")
    return loaded, forward, notes


def run(ckpt, prompts: Sequence[str], prompt_file: str | None, params: SamplingParams, *,
        num_samples: int = 1, batch_size: int = 8, truncate: bool = False, device: str = "auto",
        dtype: str = "auto", compile: bool = False, threads: int | None = None,
        on_start: Callable[[list[str], list[str]], None] | None = None,
        on_text: TextCallback | None = None,
        on_done: Callable[[Sample], None] | None = None) -> GenerationResult:
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
    # On CPU only idle cores get a thread unless --threads says otherwise: decoding is many small
    # ops, and threads waiting for a core another process holds made it 50x slower.
    on_cpu = resolve_device(device, NO_CUDA).type == "cpu"
    threads_used = set_cpu_threads(threads) if on_cpu else None
    loaded, forward, notes = load_for_generation(ckpt, device=device, dtype=dtype, compile=compile)
    encoded = prepare_prompts(loaded, prompts, params, truncate)
    if on_start is not None:
        on_start(prompts, notes)
    result = generate(loaded, prompts, params, num_samples=num_samples, batch_size=batch_size,
                      truncate=truncate, on_text=on_text, on_done=on_done, forward=forward,
                      encoded=encoded)
    result.threads = threads_used
    return result


def read_prompt_file(path) -> list[str]:
    """One prompt per line; a trailing newline does not make an extra empty prompt."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise UserError(f"prompt file {path} does not exist; pass a text file with one prompt per line")
    return path.read_text(encoding="utf-8").splitlines()
