"""The Llama-2 model TinyLlama trains, in one file.

Pre-norm transformer blocks (RMSNorm -> grouped-query attention with rotary embeddings ->
residual; RMSNorm -> SwiGLU MLP -> residual), a final RMSNorm and an untied output head. No
biases anywhere. Module names follow Meta's Llama code (`tok_embeddings`, `layers.N.attention.wq`,
`feed_forward.w1/w2/w3`, `output`); `formats/hf.py` maps them to Hugging Face's names, and the two
give the same logits (tests/test_model.py checks this against `transformers`).

RoPE uses the half-split ("rotate_half") pairing, as Hugging Face Llama does, so q/k weights need
no permutation between the two formats.

The model is plain single-device PyTorch: FSDP2, torch.compile and activation checkpointing are
applied from outside (`tinyllama_cli/train/`).
"""

from __future__ import annotations

import hashlib
import math
import threading

import torch
import torch.nn.functional as F
from torch import nn

from tinyllama_cli.config import LOSS_CHUNK_ELEMENTS, ModelConfig

try:  # flash-attn 2: CUDA only, optional (`pip install tinyllama-cli[gpu]`)
    from flash_attn import flash_attn_func
except Exception:  # noqa: BLE001 -- ImportError, or a CUDA library mismatch at import time
    flash_attn_func = None


class RMSNorm(nn.Module):
    """x / rms(x) * weight, normalised in fp32 and cast back, exactly as HF LlamaRMSNorm."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32:  # the same computation, two no-op casts fewer per call
            return F.rms_norm(x, (x.size(-1),), self.weight, eps=self.eps)
        normed = F.rms_norm(x.float(), (x.size(-1),), eps=self.eps)
        return self.weight * normed.to(x.dtype)


def rope_tables(
    config: ModelConfig, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of every (position, frequency) pair, shape (block_size, head_dim), fp32."""
    dim = config.head_dim
    inv_freq = 1.0 / (config.rope_base ** (torch.arange(0, dim, 2, device=device).float() / dim))
    positions = torch.arange(config.block_size, device=device).float()
    freqs = torch.outer(positions, inv_freq)
    angles = torch.cat((freqs, freqs), dim=-1)  # half-split: pair i with i + dim/2
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (B, T, H, D) queries or keys; cos/sin are (T, D) or already (T, 1, D)."""
    if cos.dim() == 2:
        cos, sin = cos[:, None, :], sin[:, None, :]
    if cos.dtype != x.dtype:
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, flash: bool = True
) -> torch.Tensor:
    """Causal attention over (B, T, H, D) tensors with fewer kv heads than query heads (GQA).

    `mask=None` means plain causal attention, aligned at the end of the keys (the last query sees
    every key). flash-attn 2 serves that case on CUDA in half precision (unless `flash` is off);
    everything else goes to PyTorch's SDPA with native GQA, so K/V are never materialised per
    query head.
    """
    if (
        flash
        and mask is None
        and flash_attn_func is not None
        and q.is_cuda
        and q.dtype in (torch.float16, torch.bfloat16)
    ):
        return flash_attn_func(q, k, v, causal=True)
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    if mask is None:
        # One query against the cache attends everything; otherwise T_q == T_k here.
        y = F.scaled_dot_product_attention(q, k, v, is_causal=q.size(2) > 1, enable_gqa=True)
    else:
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
    return y.transpose(1, 2)


class KVCache(nn.Module):
    """Preallocated keys and values for incremental decoding, (B, max_seq_len, n_kv_head, D)."""

    def __init__(
        self,
        batch_size: int,
        max_seq_len: int,
        n_kv_head: int,
        head_dim: int,
        dtype: torch.dtype,
        device: torch.device | str | None,
    ):
        super().__init__()
        shape = (batch_size, max_seq_len, n_kv_head, head_dim)
        self.register_buffer("k", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v", torch.zeros(shape, dtype=dtype, device=device), persistent=False)

    def update(
        self, start: int | torch.Tensor, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k/v at positions start.. and return every key/value up to the new end.

        A tensor `start` is the compiled decode step's (decode_step.py): the positions of k's
        tokens, (T,), as data, so one graph serves every step, and the whole cache comes back,
        its unwritten tail hidden by that step's mask.
        """
        if isinstance(start, torch.Tensor):
            self.k.index_copy_(1, start, k)
            self.v.index_copy_(1, start, v)
            return self.k, self.v
        batch, length = k.size(0), k.size(1)
        end = start + length
        if end > self.k.size(1) or batch > self.k.size(0):
            raise ValueError(
                f"KV cache of shape {tuple(self.k.shape)} cannot hold positions up to {end} for "
                f"batch {batch}"
            )
        # narrow + copy_ rather than slice assignment: fewer dispatches in the per-token loop.
        cache_k, cache_v = (
            (self.k, self.v) if batch == self.k.size(0) else (self.k[:batch], self.v[:batch])
        )
        cache_k.narrow(1, start, length).copy_(k)
        cache_v.narrow(1, start, length).copy_(v)
        return cache_k.narrow(1, 0, end), cache_v.narrow(1, 0, end)


class Attention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = (
            config.n_head,
            config.n_kv_head,
            config.head_dim,
        )
        self.wq = nn.Linear(config.n_embd, config.n_head * config.head_dim, bias=False)
        self.wk = nn.Linear(config.n_embd, config.kv_dim, bias=False)
        self.wv = nn.Linear(config.n_embd, config.kv_dim, bias=False)
        self.wo = nn.Linear(config.n_head * config.head_dim, config.n_embd, bias=False)
        self.wqkv: torch.Tensor | None = None  # [wq; wk; wv], set by Llama.fuse_projections
        self.kv_cache: KVCache | None = None
        self.flash = True  # flash-attn where it applies; Llama.set_attention("sdpa") turns it off

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        start: int | torch.Tensor,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        B, T, _ = x.shape
        if self.wqkv is not None or self.training:  # one matmul for q, k and v, one RoPE call
            wqkv = self.wqkv if self.wqkv is not None else _cat_weights(self.wq, self.wk, self.wv)
            qkv = F.linear(x, wqkv).view(B, T, self.n_head + 2 * self.n_kv_head, self.head_dim)
            qk = apply_rope(qkv[:, :, : self.n_head + self.n_kv_head], cos, sin)
            q, k = qk.split((self.n_head, self.n_kv_head), dim=2)
            # A copy, so backward's saved v does not keep the whole qkv output alive as a view.
            v = qkv[:, :, self.n_head + self.n_kv_head :].contiguous()
        else:
            q = apply_rope(self.wq(x).view(B, T, self.n_head, self.head_dim), cos, sin)
            k = apply_rope(self.wk(x).view(B, T, self.n_kv_head, self.head_dim), cos, sin)
            v = self.wv(x).view(B, T, self.n_kv_head, self.head_dim)
        if self.kv_cache is not None:
            k, v = self.kv_cache.update(start, k, v)
        y = attention(q, k, v, mask, self.flash)
        return self.wo(y.reshape(B, T, -1))


class FeedForward(nn.Module):
    """SwiGLU: w2(silu(w1 x) * w3 x)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.w1 = nn.Linear(config.n_embd, config.intermediate_size, bias=False)  # gate
        self.w3 = nn.Linear(config.n_embd, config.intermediate_size, bias=False)  # up
        self.w2 = nn.Linear(config.intermediate_size, config.n_embd, bias=False)  # down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:  # one matmul for gate and up (see _cat_weights)
            gate, up = F.linear(x, _cat_weights(self.w1, self.w3)).chunk(2, dim=-1)
        else:
            gate, up = self.w1(x), self.w3(x)
        return self.w2(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.attention_norm = RMSNorm(config.n_embd, config.norm_eps)
        self.attention = Attention(config)
        self.ffn_norm = RMSNorm(config.n_embd, config.norm_eps)
        self.feed_forward = FeedForward(config)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        start: int | torch.Tensor,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x), cos, sin, start, mask)
        return x + self.feed_forward(self.ffn_norm(x))


class Llama(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.n_embd)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm = RMSNorm(config.n_embd, config.norm_eps)
        self.output = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        cos, sin = rope_tables(config, device=self.output.weight.device)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self, seed: int | None = None) -> None:
        """TinyLlama's init: N(0, sqrt(2/(5d))) everywhere, the two residual output projections
        (attention wo, MLP w2) N(0, 1/sqrt(d)/n_layer), norms at one.

        With a `seed`, each parameter comes from its own generator, seeded by (seed, its name):
        its values then depend on nothing else, so a sharded model can initialise its shards
        one parameter at a time and get exactly what one device gets (`train.distributed`).
        Without one, the global RNG is used in parameter order. Also (re)computes the RoPE
        tables, so a model built on the meta device and `to_empty()`-ed is complete after this
        call (loading weights instead: `init_rope()`).
        """
        for name, param in self.named_parameters():
            init_parameter(
                self.config, name, param, None if seed is None else param_generator(seed, name)
            )
        self.init_rope()

    @torch.no_grad()
    def init_rope(self) -> None:
        """Fill the (non-persistent) RoPE tables; needed after `to_empty()` from the meta device."""
        cos, sin = rope_tables(self.config, device=self.rope_cos.device)
        self.rope_cos.copy_(cos)
        self.rope_sin.copy_(sin)

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        *,
        input_pos: int | None = None,
        key_mask: torch.Tensor | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """Logits (B, T, vocab), or the mean cross-entropy when `targets` is given.

        input_pos: with a KV cache (`setup_kv_cache`), the position of idx[:, 0].
        key_mask: (B, >= input_pos + T) bool, False for padding keys (left-padded batches); RoPE
            is relative, so a left-padded row gives the same logits as the row alone.
        targets: (B, T) token ids; -100 is ignored. The loss never materialises the full
            (B*T, vocab) logits (see `linear_cross_entropy`).
        last_only: logits for the last position only, (B, 1, vocab) (a generation prefill).
        """
        x = self.hidden_states(
            idx, input_pos=input_pos, key_mask=key_mask, last_only=last_only and targets is None
        )
        if targets is None:
            return self.output(x)
        return linear_cross_entropy(x, self.output.weight, targets)

    def hidden_states(
        self,
        idx: torch.Tensor,
        *,
        input_pos: int | None = None,
        key_mask: torch.Tensor | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """The final norm's output (B, T, n_embd): `forward` without the output head.

        For callers that need the head at a few positions only: lm-eval scoring projects just
        the positions that predict a continuation token, not (B x T x vocab) logits. Arguments
        as in `forward`; call it on a plain module (FSDP's hooks run on `forward`).
        """
        T = idx.size(1)
        start = 0 if input_pos is None else input_pos
        if start + T > self.config.block_size:
            raise ValueError(
                f"sequence end {start + T} exceeds the context length {self.config.block_size}"
            )
        # (T, 1, D) once per forward instead of a reshape per layer and per q/k.
        cos, sin = self.rope_cos[start : start + T, None], self.rope_sin[start : start + T, None]
        mask = self._attention_mask(T, start, key_mask, idx.device)
        x = self.tok_embeddings(idx)
        for layer in self.layers:
            x = layer(x, cos, sin, start, mask)
        if last_only:
            x = x[:, -1:]
        return self.norm(x)

    @staticmethod
    def _attention_mask(
        T: int, start: int, key_mask: torch.Tensor | None, device: torch.device
    ) -> torch.Tensor | None:
        """None where plain causal attention is right; else a bool (T, end) or (B, 1, T, end)
        mask."""
        if key_mask is None and (start == 0 or T == 1):
            return None
        end = start + T
        if T == 1:  # one decoding step: the valid keys, and the query's own key always
            allowed = key_mask[:, :end].clone()
            allowed[:, -1] = True
            return allowed[:, None, None]
        query_pos = torch.arange(start, end, device=device)[:, None]
        key_pos = torch.arange(end, device=device)[None, :]
        allowed = key_pos <= query_pos
        if key_mask is None:
            return allowed
        allowed = (allowed & key_mask[:, None, :end]) | (
            key_pos == query_pos
        )  # a pad query sees itself: no NaN rows
        return allowed[:, None]

    def setup_kv_cache(
        self,
        batch_size: int,
        max_seq_len: int | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        """Preallocate a KV cache in every layer for decoding up to max_seq_len positions."""
        max_seq_len = max_seq_len or self.config.block_size
        dtype = dtype or self.output.weight.dtype
        device = device or self.output.weight.device
        for layer in self.layers:
            layer.attention.kv_cache = KVCache(
                batch_size, max_seq_len, self.config.n_kv_head, self.config.head_dim, dtype, device
            )

    def set_attention(self, backend: str) -> None:
        """ "auto" or "flash": flash-attn 2 where it applies (CUDA, half precision, no padding
        mask); "sdpa": PyTorch's SDPA everywhere (to compare the two, or to avoid flash-attn)."""
        for block in self.layers:
            block.attention.flash = backend != "sdpa"

    @torch.no_grad()
    def fuse_projections(self) -> None:
        """Inference only: one matmul for q, k and v in every layer, and one RoPE call for q and k.

        Decoding a token is a chain of small matrix products whose fixed cost (dispatch, thread
        wake-up, cold caches) rivals their work: the three q/k/v products of the 50M preset take
        29 us one by one and 21 us as one (batch 1, 2 cores; tinyllama-1.1b shapes 431 -> 401 us).
        The MLP's gate/up pair is left separate: fused it was faster at batch 1 but up to 40%
        slower at batch 8, where MKL picks a worse kernel for the wider matrix.

        The fused weight is a plain tensor attribute (not a parameter or buffer, so `state_dict()`
        and `parameters()` are unchanged) and wq/wk/wv become views into it, so memory does not
        grow. Call it last, on a loaded model: `.to()` would give the views their own storage and
        leave the fused weight behind, and training would let it go stale.
        """
        for layer in self.layers:
            attn = layer.attention
            if attn.wqkv is None:
                attn.wqkv = _stack_weights(attn.wq, attn.wk, attn.wv)

    def store_weights_input_major(self) -> None:
        """Inference on a CPU only: keep every matrix weight transposed in memory, its shape and
        values unchanged (each weight becomes a view of an (in, out) contiguous tensor).

        At batch 1 every linear is a matrix-vector product that streams its weight from memory.
        MKL's fp32 kernel for `x @ W.T` reads torch's (out, in) layout at 6-8 GB/s on the 2-core
        AMD EPYC measured, and W.T stored contiguously (one run of memory per input element: an
        axpy per input) at 13-20 GB/s; the trained cpu-small decoded 1.42x faster, same tokens
        (benchmarks/README.md). From 32 rows on (prefill, scoring) the layouts are within 6%.
        Call it after `fuse_projections`: wq/wk/wv stay views into the fused weight, so memory
        does not grow. A second call is a no-op.
        """
        for layer in self.layers:
            attn = layer.attention
            if attn.wqkv is not None and not _is_input_major(attn.wqkv):
                attn.wqkv = _input_major(attn.wqkv)
                _view_rows(attn.wqkv, attn.wq, attn.wk, attn.wv)
        for module in self.modules():
            if isinstance(module, nn.Linear) and not _is_input_major(module.weight):
                module.weight = nn.Parameter(_input_major(module.weight), requires_grad=False)

    def clear_kv_cache(self) -> None:
        for layer in self.layers:
            layer.attention.kv_cache = None

    def num_params(self, include_embedding: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n if include_embedding else n - self.tok_embeddings.weight.numel()


def param_generator(seed: int, name: str) -> torch.Generator:
    """The CPU generator of parameter `name` for a run seeded with `seed`."""
    digest = hashlib.sha256(f"init/{seed}/{name}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))


@torch.no_grad()
def init_parameter(
    config: ModelConfig, name: str, param: torch.Tensor, generator: torch.Generator | None = None
) -> None:
    """Fill one parameter (a full, unsharded tensor) by TinyLlama's rule for its name; with a
    (CPU) `generator`, the values are drawn on the CPU whatever the parameter's device."""
    if name.endswith("norm.weight"):
        param.fill_(1.0)
        return
    residual = name.endswith(("attention.wo.weight", "feed_forward.w2.weight"))
    std = (
        1.0 / math.sqrt(config.n_embd) / config.n_layer
        if residual
        else math.sqrt(2.0 / (5 * config.n_embd))
    )
    if generator is None:
        param.normal_(0.0, std)
    else:
        param.copy_(
            torch.empty(param.shape, dtype=torch.float32).normal_(0.0, std, generator=generator)
        )


def empty_model(
    config: ModelConfig, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> Llama:
    """A model with uninitialised weights, for loading into: built on the meta device, so no
    time is spent on a random init that the loaded weights overwrite; the RoPE tables are set."""
    with torch.device("meta"):
        model = Llama(config)
    model = model.to_empty(device=device).to(dtype)
    model.init_rope()
    return model


def _cat_weights(*linears: nn.Linear) -> torch.Tensor:
    """The linears' weights stacked along the output dim, for one matmul in their place.

    Training concatenates per forward (the weights change every step; the copy is small next to
    the matmul's activations): under autocast the shared input is then cast to bf16 once, not
    once per projection (q/k/v: one cast forward and one back instead of three each), and one
    wider matmul replaces two or three narrow ones. Inference concatenates once
    (`Llama.fuse_projections`): decoding one token cannot afford a weight copy per step.
    """
    return torch.cat([lin.weight for lin in linears])


def _stack_weights(*linears: nn.Linear) -> torch.Tensor:
    """The linears' weights stacked along the output dim; each linear's weight becomes a view."""
    stacked = torch.cat([lin.weight.detach() for lin in linears])
    _view_rows(stacked, *linears)
    return stacked


def _view_rows(stacked: torch.Tensor, *linears: nn.Linear) -> None:
    """Each linear's weight becomes its block of rows of `stacked`, in order."""
    row = 0
    for lin in linears:
        rows = lin.weight.size(0)
        lin.weight = nn.Parameter(stacked[row : row + rows], requires_grad=False)
        row += rows


def _input_major(weight: torch.Tensor) -> torch.Tensor:
    """The same (out, in) matrix, stored (in, out) contiguously (see store_weights_input_major)."""
    return weight.detach().t().contiguous().t()


def _is_input_major(weight: torch.Tensor) -> bool:
    return weight.dim() == 2 and weight.stride(0) == 1 and weight.size(0) > 1


# --- loss ---------------------------------------------------------------------------------------


def linear_cross_entropy(
    h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100
) -> torch.Tensor:
    """Mean cross-entropy of `h @ weight.T` against `targets`, without the full logits matrix.

    For TinyLlama's micro batch (8 x 2048 tokens, 32000 vocabulary) fp32 logits alone are 2 GiB,
    and autograd would keep them (and their softmax) for the backward pass. Here the rows are
    processed in chunks; each chunk's logits become its loss and, when gradients are needed, its
    d(loss)/d(logits), which is folded into the gradients of h and weight on the spot (the
    approach of Liger-Kernel's fused linear cross-entropy). No recomputation, and the peak is one
    chunk of logits. Under autocast the matmuls run in the autocast dtype; softmax and
    accumulation are fp32.
    """
    if torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad):
        return _LinearCrossEntropy.apply(h, weight, targets, ignore_index)
    loss_sum, count, _, _ = _chunked_loss(h, weight, targets, ignore_index, need_grad=False)
    return loss_sum / count


def _compute_dtype(t: torch.Tensor) -> torch.dtype:
    device_type = t.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return t.dtype


_scratch = threading.local()


def _scratch_buffer(role: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device):
    """An uninitialised tensor for one of the loss's large temporaries, reused across calls on CPU.

    Why: glibc's malloc serves every block over 32 MiB with a fresh mmap, so a chunk of logits
    (134 MB in fp32 for 1,048 rows of a 32,000 vocabulary) is page-faulted in, 4 KiB at a time,
    each time it is first written: on every chunk of every micro batch. Reusing one buffer per role
    pays that once per thread (benchmarks/README.md, "the loss's temporaries"). On CUDA the caching
    allocator already reuses memory, so there it is plain `torch.empty`. Nothing returned by the
    loss may be a view of one of these. Not cached either: under inference mode (its tensors
    could not be written outside it afterwards) or while torch.compile traces (dynamo cannot
    follow a thread-local dict; inductor plans the memory of a compiled graph itself).
    """
    if device.type != "cpu" or torch.is_inference_mode_enabled() or torch.compiler.is_compiling():
        return torch.empty(shape, dtype=dtype, device=device)
    numel = math.prod(shape)
    key = f"{role}:{dtype}"
    buffer = getattr(_scratch, key, None)
    if buffer is None or buffer.numel() < numel:
        setattr(_scratch, key, None)  # free the old one before allocating the larger
        buffer = torch.empty(numel, dtype=dtype, device=device)
        setattr(_scratch, key, buffer)
    return buffer[:numel].view(shape)


def _mixed_add_is_slow(device: torch.device) -> bool:
    """Whether `fp32 += bf16` is slower than a bf16 -> fp32 copy and an fp32 `+=`: on CPU torch's
    mixed-dtype elementwise kernels are not vectorised (29.7 vs 8.4 ms for a 32000 x 512 add)."""
    return device.type == "cpu"


def _chunked_loss(
    h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, ignore_index: int, need_grad: bool
):
    dtype = _compute_dtype(h)
    h2 = h.reshape(-1, h.size(-1))
    t = targets.reshape(-1)
    vocab, dim = weight.shape
    rows = max(1, min(h2.size(0), LOSS_CHUNK_ELEMENTS // vocab))  # 1 row even for none
    count = (t != ignore_index).sum().clamp(min=1).float()
    loss_sum = torch.zeros((), dtype=torch.float32, device=h.device)
    grad_h = torch.empty_like(h2) if need_grad else None
    grad_w = (
        torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_grad else None
    )
    # One chunk of logits, overwritten in place by its gradient. Below fp32 the softmax runs in an
    # fp32 copy, which on CPU (being free by then) also stages the head's gradient for the fp32
    # sum: torch's mixed-dtype `+=` is not vectorised there (3.5x slower); on CUDA it is.
    stage_grad_w = need_grad and _mixed_add_is_slow(h.device)
    logits = _scratch_buffer("logits", (rows, vocab), dtype, h.device)
    if dtype == torch.float32:
        fp32 = logits
    else:
        fp32 = _scratch_buffer(
            "fp32", (max(rows, dim if stage_grad_w else 0), vocab), torch.float32, h.device
        )
        grad_w_part = (
            _scratch_buffer("grad_w", (vocab, dim), dtype, h.device) if need_grad else None
        )
    with torch.autocast(h.device.type, enabled=False):
        w = (
            weight
            if weight.dtype == dtype
            else _scratch_buffer("weight", (vocab, dim), dtype, h.device).copy_(weight)
        )
        for i in range(0, h2.size(0), rows):
            hc, tc = h2[i : i + rows].to(dtype), t[i : i + rows]
            n = hc.size(0)
            valid = tc != ignore_index
            safe_t = torch.where(valid, tc, 0)[:, None]
            # One pass of exp for the loss and its gradient, in place over the fp32 logits:
            # loss = log(sum(exp(z - max))) - (z_target - max); d(loss)/dz = softmax(z) - onehot.
            z = torch.mm(hc, w.t(), out=logits[:n])
            if fp32 is not logits:
                z = fp32[:n].copy_(z)
            z -= z.amax(dim=-1, keepdim=True)
            target = z.gather(1, safe_t).squeeze(1)
            exps = z.exp_()
            total = exps.sum(dim=-1)
            loss_sum += ((total.log() - target) * valid).sum()
            if need_grad:
                scale = valid.float() / count  # the mean over the micro batch's valid targets
                grad_logits = exps.mul_((scale / total)[:, None])
                grad_logits.scatter_add_(1, safe_t, -scale[:, None])
                grad_logits = logits[:n].copy_(grad_logits) if fp32 is not logits else grad_logits
                if grad_h.dtype == dtype:
                    torch.mm(grad_logits, w, out=grad_h[i : i + n])
                else:
                    grad_h[i : i + n] = grad_logits @ w
                if dtype == torch.float32:
                    grad_w.addmm_(grad_logits.t(), hc)
                else:
                    torch.mm(grad_logits.t(), hc, out=grad_w_part)
                    if stage_grad_w:
                        grad_w += fp32.view(-1)[: vocab * dim].view(vocab, dim).copy_(grad_w_part)
                    else:
                        grad_w += grad_w_part
    return loss_sum, count, grad_h, grad_w


class _LinearCrossEntropy(torch.autograd.Function):
    """The gradients are computed in the forward and only scaled by the loss's own gradient in
    the backward. They are scaled in place: they belong to this call alone, and a fresh copy of
    the head's gradient (64 MB in fp32 for a 32000 x 512 head) is a page-faulted allocation per
    micro batch on CPU. Hence one backward per forward: after `retain_graph=True` a second one
    fails autograd's check of the saved tensors' versions instead of scaling them twice
    (Liger-Kernel's fused loss scales in place too)."""

    @staticmethod
    def forward(ctx, h, weight, targets, ignore_index):
        loss_sum, count, grad_h, grad_w = _chunked_loss(
            h, weight, targets, ignore_index, need_grad=True
        )
        ctx.save_for_backward(grad_h.view_as(h), grad_w.to(weight.dtype))
        return loss_sum / count

    @staticmethod
    def backward(ctx, grad_output):
        grad_h, grad_w = ctx.saved_tensors
        return grad_h.mul_(grad_output), grad_w.mul_(grad_output), None, None
