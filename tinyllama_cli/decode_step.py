"""A compiled decode step: every layer, the cache write and the output head as one graph.

Decoding one token of a small model is a few hundred small ops, and in eager PyTorch each costs
a dispatch from Python: for cpu-small that overhead is most of the step. `torch.compile` turns
the step into one generated function, but only if its shapes stay the same from token to token,
so this step decodes over a *static* KV cache:

* the cache holds `length` positions from the start (`cache_length`: the next power of two from
  256, capped at the model's context), and every step attends over all of them, the positions
  not written yet (and a left-padded row's padding) hidden by a mask built from the position;
* the position is a tensor, not a Python int, so it is data to the graph rather than a constant
  baked into it (`KVCache.update` writes at tensor positions with `index_copy_`), and the
  token goes in through one buffer of fixed layout.

One graph per (batch size, cache length, width) then serves every step of every call of that
shape; the width is 1, or k + 1 for speculative decoding, whose verify steps check k drafted
tokens at once (a shorter draft runs in the same graph). The prefill still runs eagerly
(`Llama.forward` over the prompt, writing into the same static cache).

Two compile modes (`COMPILE_MODES`), both the same tokens as eager decoding:

* "default": compiled once, kept on disk. Inductor's FX-graph and AOTAutograd caches (on by
  default in torch >= 2.5) store the generated code under `TORCHINDUCTOR_CACHE_DIR` (default
  /tmp/torchinductor_$USER), so a later process compiling the same shape skips code generation
  and the C++ compiler (it still traces the model: seconds, not tens of seconds). On CPU the
  generated code runs under a C++ wrapper and the matrix products call MKL.
* "max-autotune": the weights are frozen into the graph (inductor's `freezing`) so inductor can
  pre-pack them and generate its own matrix-product kernels for these exact shapes (on CPU its
  C++ GEMM templates, `max_autotune_gemm_backends="CPP"`; on CUDA its Triton templates). Faster
  steps, but a frozen graph bypasses the on-disk caches: every process compiles each shape
  afresh (~20 s on CPU), and the packed weights are a second copy in memory.

docs/generate.md has the figures, cold and warm, that decide when each pays.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from tinyllama_cli.errors import UserError
from tinyllama_cli.hardware import cpp_compiler
from tinyllama_cli.model import KVCache, Llama

MIN_CACHE_LENGTH = 256
COMPILE_MODES = ("default", "max-autotune")


def require_compiler(device: torch.device | str) -> None:
    """On CPU inductor compiles C++; without a compiler `--compile` would fail at its first
    step, after the load, with a long traceback: refuse it up front instead."""
    if torch.device(device).type == "cpu" and cpp_compiler() is None:
        raise UserError(
            "--compile on CPU needs a C++ compiler for inductor and none was found "
            "(g++, clang++ or $CXX); install g++ or leave out --compile"
        )


def check_compile_mode(mode: str) -> None:
    """One line for a mode that is not one of COMPILE_MODES (generate and eval call it before
    their slow load)."""
    if mode not in COMPILE_MODES:
        raise UserError(f"unknown --compile-mode {mode!r}; use one of {', '.join(COMPILE_MODES)}")


def cache_length(needed: int, block_size: int) -> int:
    """Positions of the static cache for a call that needs `needed`: the next power of two from
    256, capped at the context, so a handful of graphs serve every prompt and output length."""
    length = MIN_CACHE_LENGTH
    while length < needed:
        length *= 2
    return max(needed, min(length, block_size))


class StaticDecodeStep(nn.Module):
    """`width` tokens per row (1, or a speculative step's k + 1) over a static cache of `length`
    positions, batch size `batch`."""

    def __init__(self, model: Llama, batch: int, length: int, width: int = 1):
        super().__init__()
        config, weight = model.config, model.output.weight
        self.model = model
        self.caches = nn.ModuleList(
            KVCache(batch, length, config.n_kv_head, config.head_dim, weight.dtype, weight.device)
            for _ in model.layers
        )
        self.register_buffer(
            "positions", torch.arange(length, device=weight.device), persistent=False
        )
        self.register_buffer("offsets", torch.arange(width, device=weight.device), persistent=False)

    def install(self) -> None:
        """Make these caches the model's, so its eager prefill fills them."""
        for layer, cache in zip(self.model.layers, self.caches):
            layer.attention.kv_cache = cache

    def forward(self, tokens: torch.Tensor, pos: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Logits (B, width, vocab) after `tokens` (B, width) at positions pos, pos + 1, ...
        (`pos` of shape (1,)), where `valid` (B, length) is False on padding keys."""
        model = self.model
        at = pos + self.offsets
        cos = model.rope_cos.index_select(0, at)[:, None]
        sin = model.rope_sin.index_select(0, at)[:, None]
        causal = self.positions[None, :] <= at[:, None]  # (width, length)
        mask = (valid[:, None, :] & causal)[:, None]  # (B, 1, width, length)
        x = model.tok_embeddings(tokens)
        for layer in model.layers:
            x = layer(x, cos, sin, at, mask)  # the cache writes at positions `at`
        return model.output(model.norm(x))


@dataclass
class CompiledShape:
    """One graph made: its shape, the seconds its first call took, and whether inductor found
    its code in the on-disk cache (None when that cannot be told, e.g. compile off)."""

    batch: int
    length: int
    width: int
    seconds: float
    cache_hit: bool | None


class CompiledDecoder:
    """A model's compiled decode steps, one per (batch, cache length, width), made on first use.

    `begin(batch, needed, key_mask, width)` installs the static cache in the model (the caller
    runs the prefill next) and returns the step as generate's decode loops call it:
    `step(tokens (B, n), input_pos=int, key_mask=...) -> logits (B, n, vocab)` for n <= width.
    Fewer than `width` tokens (a short speculative draft) run in the same graph: the extra
    positions are computed and ignored, and the cache slots they write lie beyond every real
    token so far (masked now, rewritten before anything attends to them). A step that would
    run past the cache's end goes to the model eagerly, over the same cache. A new shape is
    compiled inside `begin`, by one call on position 0 (which the prefill then overwrites), so
    its cost is in `shapes` and never in the prefill's or the decode's time.
    """

    def __init__(self, model: Llama, compile: bool = True, mode: str = "default"):
        check_compile_mode(mode)
        self.model, self.compile, self.mode = model, compile, mode
        self.steps: dict[tuple[int, int, int], tuple[StaticDecodeStep, Callable]] = {}
        self.shapes: list[CompiledShape] = []

    def begin(
        self, batch: int, needed: int, key_mask: torch.Tensor | None, width: int = 1
    ) -> Callable:
        block = self.model.config.block_size
        length = min(cache_length(needed + width - 1, block), block)
        if (batch, length, width) not in self.steps:
            self.steps[batch, length, width] = self._make(batch, length, width)
        module, run = self.steps[batch, length, width]
        module.install()
        device = module.positions.device
        valid = torch.ones(batch, length, dtype=torch.bool, device=device)
        if key_mask is not None:
            valid[:, : key_mask.size(1)] = key_mask
        pos = torch.zeros(1, dtype=torch.long, device=device)
        # The graph's inputs keep one layout: the loop's token columns are a strided view whose
        # strides change with the call's length, and dynamo would recompile for each.
        tokens_in = torch.zeros(batch, width, dtype=torch.long, device=device)

        def step(tokens: torch.Tensor, input_pos: int, key_mask=None) -> torch.Tensor:
            n = tokens.size(1)
            if input_pos + width > length:  # the last few positions of a full cache
                return self.model(tokens, input_pos=input_pos, key_mask=key_mask)
            pos.fill_(input_pos)
            tokens_in[:, :n] = tokens
            with _only_differentiating_guards():
                return run(tokens_in, pos, valid)[:, :n]

        return step

    def _make(self, batch: int, length: int, width: int) -> tuple[StaticDecodeStep, Callable]:
        module = StaticDecodeStep(self.model, batch, length, width)
        if not self.compile:
            return module, module
        device = module.positions.device
        options = compile_options(device, self.mode)
        _allow_another_graph()
        run = torch.compile(module, fullgraph=True, dynamic=False, options=options)
        module.install()
        hits = _cache_hits()
        started = time.perf_counter()
        with torch.no_grad(), _freezing(self.mode == "max-autotune"):
            run(
                torch.zeros(batch, width, dtype=torch.long, device=device),
                torch.zeros(1, dtype=torch.long, device=device),
                torch.ones(batch, length, dtype=torch.bool, device=device),
            )
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - started
        after = _cache_hits()
        self.shapes.append(
            CompiledShape(batch, length, width, seconds, None if after is None else after > hits)
        )
        return module, run

    @property
    def compile_seconds(self) -> float:
        return sum(shape.seconds for shape in self.shapes)


def compile_options(device: torch.device, mode: str) -> dict | None:
    """inductor's options for a decode step. On CPU a C++ wrapper calls the generated kernels
    instead of a Python one (one step is a few hundred of them). max-autotune adds inductor's
    own GEMM kernels: on CPU only its C++ templates ("CPP", chosen without benchmarking the
    candidates; "CPP,ATEN" benchmarks MKL against them, seconds more compile for no gain
    measured at batch 1)."""
    if device.type == "cpu":
        options = {"cpp_wrapper": True}
        if mode == "max-autotune":
            options |= {"max_autotune": True, "max_autotune_gemm_backends": "CPP"}
        return options
    return {"max_autotune": True} if mode == "max-autotune" else None


_graphs_made = 0  # decode-step graphs compiled in this process, every decoder's


def _allow_another_graph() -> None:
    """Every decode step, of every decoder in the process, is one code object to dynamo
    (`StaticDecodeStep.forward`), and dynamo allows 8 graphs per code object (`recompile_limit`)
    before it gives up, an error under fullgraph. A long-lived process (an eval over many batch
    sizes, a notebook) makes more than 8 shapes, so the limit grows with the graphs made."""
    global _graphs_made
    import torch._dynamo.config as dynamo_config

    _graphs_made += 1
    needed = _graphs_made + 8  # room for the graphs other code compiles of the same object
    dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, needed)
    dynamo_config.accumulated_recompile_limit = max(
        dynamo_config.accumulated_recompile_limit, needed
    )


def _freezing(on: bool):
    """inductor's `freezing` for the compile that runs inside: weights become constants of the
    graph, which its GEMM templates need to pre-pack them. Set in inductor's global config
    because, in torch 2.13, `torch.compile(options={"freezing": True})` compiles without
    freezing (checked: the weights stay graph inputs and the products stay MKL calls)."""
    if not on:
        return contextlib.nullcontext()
    import torch._inductor.config as inductor_config

    return inductor_config.patch(freezing=True)


def _only_differentiating_guards():
    """Dynamo checks ~60 us of guards before each call; a step's inputs are the same tensors
    every time and its shape was compiled in `begin`, so only the guards that tell this module's
    graphs apart are needed (torch's `skip_guard_eval_unsafe`, safe under that condition)."""
    try:
        return torch.compiler.set_stance("default", skip_guard_eval_unsafe=True)
    except (AttributeError, TypeError):  # a torch without the option: all guards, still right
        return contextlib.nullcontext()


def _cache_hits() -> int | None:
    """inductor's count of FX-graph cache hits in this process (a private counter: None if a
    torch release drops it)."""
    try:
        from torch._dynamo.utils import counters
    except ImportError:
        return None
    return int(counters["inductor"]["fxgraph_cache_hit"])
