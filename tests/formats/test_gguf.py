"""formats/gguf.py: the q/k permutation makes llama.cpp's interleaved RoPE compute what the
native half-split RoPE does, and is undone exactly on read-back. (Writing and reading whole
files: tests/convert/test_convert_gguf.py.)"""

from __future__ import annotations

import torch

from tinyllama_cli.config import ModelConfig
from tinyllama_cli.formats.gguf import permute_for_gguf, unpermute_from_gguf
from tinyllama_cli.model import apply_rope, rope_tables


def interleaved_rope(x: torch.Tensor, base: float) -> torch.Tensor:
    """llama.cpp's LLAMA_ROPE_TYPE_NORM: rotate adjacent pairs (2i, 2i+1) by pos * base^(-2i/D)."""
    T, D = x.size(1), x.size(-1)
    inv_freq = 1.0 / base ** (torch.arange(0, D, 2).float() / D)
    angles = torch.outer(torch.arange(T).float(), inv_freq)[None, :, None, :]
    cos, sin = angles.cos(), angles.sin()
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2)


def test_permutation_makes_interleaved_rope_equal_half_split_rope():
    torch.manual_seed(0)
    n_head, head_dim, d, T = 4, 16, 64, 12
    wq, wk = torch.randn(n_head * head_dim, d), torch.randn(n_head * head_dim, d)
    x = torch.randn(1, T, d)
    config = ModelConfig(
        name="rope",
        vocab_size=320,
        n_layer=2,
        n_embd=n_head * head_dim,
        n_head=n_head,
        n_kv_head=n_head,
        intermediate_size=160,
        block_size=64,
    )
    cos, sin = rope_tables(config)

    def scores(q, k):
        return torch.einsum("bthd,bshd->bhts", q, k)

    ours = scores(
        apply_rope((x @ wq.T).view(1, T, n_head, head_dim), cos[:T], sin[:T]),
        apply_rope((x @ wk.T).view(1, T, n_head, head_dim), cos[:T], sin[:T]),
    )
    theirs = scores(
        interleaved_rope(
            (x @ permute_for_gguf(wq, n_head).T).view(1, T, n_head, head_dim), 10000.0
        ),
        interleaved_rope(
            (x @ permute_for_gguf(wk, n_head).T).view(1, T, n_head, head_dim), 10000.0
        ),
    )
    torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=1e-4)
    # Without the permutation llama.cpp would compute something else.
    wrong = scores(
        interleaved_rope((x @ wq.T).view(1, T, n_head, head_dim), 10000.0),
        interleaved_rope((x @ wk.T).view(1, T, n_head, head_dim), 10000.0),
    )
    assert (wrong - ours).abs().max() > 1.0
    torch.testing.assert_close(
        unpermute_from_gguf(permute_for_gguf(wq, n_head), n_head), wq, atol=0, rtol=0
    )
