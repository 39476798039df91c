"""The model is Llama: parity with transformers, exact attention, cache and loss."""

import math

import pytest
import torch
import torch.nn.functional as F

from tinyllama_cli.config import ModelConfig
from tinyllama_cli.formats.hf import hf_config_dict, native_to_hf_state_dict
from tinyllama_cli.model import Llama, apply_rope, attention, linear_cross_entropy, rope_tables

CONFIG = ModelConfig(
    name="t",
    vocab_size=97,
    n_layer=3,
    n_embd=64,
    n_head=8,
    n_kv_head=2,
    intermediate_size=160,
    block_size=64,
)


def model(seed=0, config=CONFIG):
    torch.manual_seed(seed)
    return Llama(config).eval()


def naive_attention(q, k, v):
    """Textbook causal softmax(QK^T/sqrt(d))V over (B, T, H, D), K/V repeated per group."""
    group = q.size(2) // k.size(2)
    k, v = k.repeat_interleave(group, dim=2), v.repeat_interleave(group, dim=2)
    scores = torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(q.size(-1))
    T, S = q.size(1), k.size(1)
    causal = torch.ones(T, S, dtype=torch.bool).tril(diagonal=S - T)
    scores = scores.masked_fill(~causal, float("-inf"))
    return torch.einsum("bhts,bshd->bthd", scores.softmax(-1), v)


def test_sdpa_attention_equals_naive_reference():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 10, 8, 16), torch.randn(2, 10, 2, 16), torch.randn(2, 10, 2, 16)
    torch.testing.assert_close(
        attention(q, k, v, None), naive_attention(q, k, v), atol=1e-5, rtol=1e-5
    )


def test_single_query_attends_to_every_cached_key():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 1, 8, 16), torch.randn(2, 7, 2, 16), torch.randn(2, 7, 2, 16)
    torch.testing.assert_close(
        attention(q, k, v, None), naive_attention(q, k, v), atol=1e-5, rtol=1e-5
    )


def test_rope_is_half_split_rotation():
    cos, sin = rope_tables(CONFIG)
    x = torch.randn(1, 5, 1, CONFIG.head_dim)
    y = apply_rope(x, cos[:5], sin[:5])
    half = CONFIG.head_dim // 2
    # Pair (i, i + half) is rotated by angle pos * base^(-2i/d): norms are preserved per pair.
    pair_norm = lambda t: t[..., :half] ** 2 + t[..., half:] ** 2
    torch.testing.assert_close(pair_norm(y), pair_norm(x))
    torch.testing.assert_close(y[:, 0], x[:, 0])  # position 0 is not rotated


def test_logits_match_transformers_llama():
    transformers = pytest.importorskip("transformers")
    ours = model()
    hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(**hf_config_dict(CONFIG))).eval()
    missing, unexpected = hf.load_state_dict(
        native_to_hf_state_dict(ours.state_dict()), strict=False
    )
    assert not unexpected and all("rotary" in k for k in missing)
    idx = torch.randint(0, CONFIG.vocab_size, (2, 40))
    with torch.no_grad():
        expected = hf(idx).logits
        actual = ours(idx)
    torch.testing.assert_close(actual, expected, atol=2e-5, rtol=1e-5)


def test_kv_cache_decoding_equals_full_forward():
    m = model()
    idx = torch.randint(0, CONFIG.vocab_size, (2, 20))
    with torch.no_grad():
        full = m(idx)
        m.setup_kv_cache(batch_size=2, max_seq_len=32)
        prefill = m(idx[:, :12], input_pos=0)
        steps = [m(idx[:, t : t + 1], input_pos=t) for t in range(12, 16)]
        chunk = m(idx[:, 16:20], input_pos=16)  # multi-token step against the cache
    incremental = torch.cat([prefill, *steps, chunk], dim=1)
    torch.testing.assert_close(incremental, full, atol=1e-5, rtol=1e-5)


def _assert_same_logits_and_decode_steps(a: Llama, b: Llama, tol: float) -> None:
    """Full-sequence logits, and a 12-token prefill then 8 one-token steps against the KV cache,
    agree between two models with the same parameters (to `tol`)."""
    idx = torch.randint(0, CONFIG.vocab_size, (2, 20))
    with torch.no_grad():
        torch.testing.assert_close(a(idx), b(idx), atol=tol, rtol=tol)
        for m in (a, b):
            m.setup_kv_cache(batch_size=2, max_seq_len=32)
            m(idx[:, :12], input_pos=0)
        for t in range(12, 20):
            step = idx[:, t : t + 1]
            torch.testing.assert_close(
                a(step, input_pos=t), b(step, input_pos=t), atol=tol, rtol=tol
            )


def test_fused_projections_give_the_same_logits_and_state_dict():
    plain, fused = model(), model()
    fused.fuse_projections()
    layer = fused.layers[0]
    assert layer.attention.wqkv.shape == (CONFIG.n_embd + 2 * CONFIG.kv_dim, CONFIG.n_embd)
    assert layer.attention.wk.weight.data_ptr() != layer.attention.wqkv.data_ptr()  # a view into it
    assert (
        layer.attention.wk.weight.untyped_storage().data_ptr()
        == layer.attention.wqkv.untyped_storage().data_ptr()
    )
    # Same parameters, names and values: checkpoints and conversion do not see the fusion.
    assert fused.num_params() == plain.num_params()
    assert list(fused.state_dict()) == list(plain.state_dict())
    for name, tensor in plain.state_dict().items():
        assert torch.equal(fused.state_dict()[name], tensor), name
    _assert_same_logits_and_decode_steps(fused, plain, tol=1e-6)
    fused.fuse_projections()  # a second call is a no-op
    assert fused.layers[0].attention.wqkv is layer.attention.wqkv


def test_input_major_weights_give_the_same_logits_and_keep_memory():
    plain, stored = model(), model()
    stored.fuse_projections()
    stored.store_weights_input_major()
    attn = stored.layers[0].attention
    linears = [m for m in stored.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.stride(0) == 1 for m in linears)  # (in, out) in memory
    assert attn.wqkv.stride() == (1, attn.wqkv.size(0))
    # wq/wk/wv are still views into the fused weight: nothing is stored twice.
    storages = {m.weight.untyped_storage().data_ptr() for m in (attn.wq, attn.wk, attn.wv)}
    assert storages == {attn.wqkv.untyped_storage().data_ptr()}
    assert sum(p.numel() for p in stored.parameters()) == plain.num_params()
    for name, tensor in plain.state_dict().items():
        assert torch.equal(stored.state_dict()[name], tensor), name
    _assert_same_logits_and_decode_steps(stored, plain, tol=1e-5)
    before = [m.weight for m in linears]
    stored.store_weights_input_major()  # a second call is a no-op
    assert all(m.weight is w for m, w in zip(linears, before))


def test_left_padded_rows_match_unpadded_rows():
    m = model()
    short, long = (
        torch.randint(3, CONFIG.vocab_size, (1, 5)),
        torch.randint(3, CONFIG.vocab_size, (1, 9)),
    )
    batch = torch.cat([torch.cat([torch.zeros(1, 4, dtype=torch.long), short], 1), long])
    key_mask = torch.ones(2, 9, dtype=torch.bool)
    key_mask[0, :4] = False
    with torch.no_grad():
        m.setup_kv_cache(batch_size=2, max_seq_len=16)
        padded = m(batch, input_pos=0, key_mask=key_mask)
        nxt = torch.randint(3, CONFIG.vocab_size, (2, 1))
        key_mask = torch.cat([key_mask, torch.ones(2, 1, dtype=torch.bool)], 1)
        step = m(nxt, input_pos=9, key_mask=key_mask)
        m.clear_kv_cache()
        alone_short = m(torch.cat([short, nxt[:1]], 1))
        alone_long = m(torch.cat([long, nxt[1:]], 1))
    assert torch.isfinite(padded).all()
    torch.testing.assert_close(padded[0, 4:], alone_short[0, :5], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(padded[1], alone_long[0, :9], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(step[0, 0], alone_short[0, 5], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(step[1, 0], alone_long[0, 9], atol=1e-5, rtol=1e-5)


def test_hidden_states_are_the_logits_without_the_head():
    """`hidden_states` is `forward` up to the final norm: the head applied to it gives the logits,
    with a key mask and against a KV cache too (what eval's scoring relies on)."""
    m = model()
    idx = torch.randint(3, CONFIG.vocab_size, (2, 12))
    key_mask = torch.ones(2, 12, dtype=torch.bool)
    key_mask[0, :3] = False
    with torch.no_grad():
        hidden = m.hidden_states(idx, key_mask=key_mask)
        assert hidden.shape == (2, 12, CONFIG.n_embd)
        assert torch.equal(m.output(hidden), m(idx, key_mask=key_mask))
        assert torch.equal(m.output(m.hidden_states(idx)), m(idx))
        m.setup_kv_cache(batch_size=2, max_seq_len=16)
        m.hidden_states(idx[:, :8], input_pos=0, key_mask=key_mask[:, :8])
        rest = m.hidden_states(idx[:, 8:], input_pos=8, key_mask=key_mask)
        m.clear_kv_cache()
    torch.testing.assert_close(rest, hidden[:, 8:], atol=1e-5, rtol=1e-5)


def test_context_length_is_enforced():
    m = model()
    with pytest.raises(ValueError, match="context length"):
        m(torch.zeros(1, CONFIG.block_size + 1, dtype=torch.long))


def test_loss_and_gradients_equal_plain_cross_entropy(monkeypatch):
    import tinyllama_cli.model as model_module

    monkeypatch.setattr(model_module, "LOSS_CHUNK_ELEMENTS", 97 * 7)  # force several chunks
    torch.manual_seed(0)
    h = torch.randn(3, 11, 64, requires_grad=True)
    w = torch.randn(97, 64, requires_grad=True)
    targets = torch.randint(0, 97, (3, 11))
    targets[0, :3] = -100  # ignored positions
    loss = linear_cross_entropy(h, w, targets)
    loss.backward()
    grads = h.grad.clone(), w.grad.clone()
    h.grad = w.grad = None
    reference = F.cross_entropy((h @ w.t()).view(-1, 97), targets.view(-1), ignore_index=-100)
    reference.backward()
    torch.testing.assert_close(loss, reference, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grads[0], h.grad, atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(grads[1], w.grad, atol=1e-6, rtol=1e-4)
    with torch.no_grad():
        torch.testing.assert_close(
            linear_cross_entropy(h, w, targets), reference, atol=1e-5, rtol=1e-5
        )


@pytest.mark.parametrize("staged", [True, False], ids=["staged-sum", "mixed-dtype-sum"])
def test_bf16_loss_and_gradients_match_autocast_cross_entropy(monkeypatch, staged):
    """The bf16 path (fp32 softmax in a reused scratch buffer, bf16 gradient of the logits,
    fp32 sum of the head's gradient) against autograd through F.cross_entropy under the same
    autocast, over several chunks; the head's gradient summed both ways: staged through the fp32
    scratch (CPU) and by a mixed-dtype `+=` (CUDA's way, run here on CPU)."""
    import tinyllama_cli.model as model_module

    monkeypatch.setattr(model_module, "LOSS_CHUNK_ELEMENTS", 97 * 7)
    monkeypatch.setattr(model_module, "_mixed_add_is_slow", lambda device: staged)
    torch.manual_seed(0)
    h = torch.randn(3, 11, 64, requires_grad=True)
    w = torch.randn(97, 64, requires_grad=True)
    targets = torch.randint(0, 97, (3, 11))
    targets[1, 4:] = -100
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = linear_cross_entropy(h, w, targets)
    loss.backward()
    grads = h.grad.clone(), w.grad.clone()
    h.grad = w.grad = None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = (h @ w.t()).float()
    reference = F.cross_entropy(logits.view(-1, 97), targets.view(-1), ignore_index=-100)
    reference.backward()
    torch.testing.assert_close(loss, reference, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(grads[0], h.grad, atol=2e-3, rtol=2e-2)
    torch.testing.assert_close(grads[1], w.grad, atol=2e-3, rtol=2e-2)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_loss_results_do_not_alias_its_reused_buffers(monkeypatch, precision):
    """The loss keeps its large temporaries between calls (on CPU); nothing it returns or saves
    for backward may be a view of them: two losses taken before one backward give each input
    the gradient it gets alone."""
    import tinyllama_cli.model as model_module

    monkeypatch.setattr(model_module, "LOSS_CHUNK_ELEMENTS", 97 * 7)
    torch.manual_seed(0)
    w = torch.randn(97, 64, requires_grad=True)
    inputs = [(torch.randn(33, 64, requires_grad=True), torch.randint(0, 97, (33,))) for _ in "ab"]

    def loss_of(h, targets):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            return linear_cross_entropy(h, w, targets)

    alone = []
    for h, targets in inputs:
        loss = loss_of(h, targets)
        loss.backward()
        alone.append((loss.detach(), h.grad.clone()))
        h.grad = None
    losses = [loss_of(h, targets) for h, targets in inputs]
    sum(losses).backward()
    for loss, (h, _), (loss_alone, grad_alone) in zip(losses, inputs, alone):
        assert torch.equal(loss.detach(), loss_alone)
        assert torch.equal(h.grad, grad_alone)


def _loss_and_grads(h, w, targets):
    h = h.detach().requires_grad_(True)
    loss = linear_cross_entropy(h, w, targets)
    loss.backward()
    return loss.detach(), h.grad


def test_loss_after_a_call_under_inference_mode_still_trains():
    """A first call under inference mode (a user's validation pass) must not leave inference
    tensors in the reused buffers: a training call after it writes into them."""
    torch.manual_seed(0)
    h, w, targets = torch.randn(2, 5, 16), torch.randn(50, 16), torch.randint(0, 50, (2, 5))

    def in_fresh_thread():
        with torch.inference_mode():
            first = linear_cross_entropy(h, w, targets)
        return first, _loss_and_grads(h, w, targets), linear_cross_entropy(h, w, targets)

    first, (loss, grad_h), evaluated = _in_new_thread(in_fresh_thread)
    expected = F.cross_entropy((h @ w.t()).view(-1, 50), targets.view(-1))
    torch.testing.assert_close(first, expected)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(evaluated, expected)
    assert grad_h.abs().sum() > 0


def test_loss_of_an_empty_batch_is_zero():
    h, w, targets = torch.randn(0, 16), torch.randn(50, 16), torch.randint(0, 50, (0,))
    loss, grad_h = _loss_and_grads(h, w, targets)
    assert loss.item() == 0.0 and grad_h.shape == (0, 16)


def test_loss_under_a_meta_default_device_uses_the_inputs_device():
    torch.manual_seed(0)
    h, w, targets = torch.randn(6, 16), torch.randn(11, 16), torch.randint(0, 11, (6,))

    def in_fresh_thread():
        with torch.device("meta"):
            loss = linear_cross_entropy(h, w, targets)
        return loss, linear_cross_entropy(h, w, targets)

    inside, after = _in_new_thread(in_fresh_thread)
    expected = F.cross_entropy(h @ w.t(), targets)
    assert inside.device.type == "cpu"
    torch.testing.assert_close(inside, expected)
    torch.testing.assert_close(after, expected)


def test_loss_can_be_traced_by_torch_compile():
    """Whole-model compiles trace the loss too: dynamo must get through its buffer logic."""
    torch.manual_seed(0)
    h, w, targets = torch.randn(6, 16), torch.randn(11, 16), torch.randint(0, 11, (6,))
    compiled = torch.compile(linear_cross_entropy, backend="eager")

    def in_fresh_thread():
        with torch.no_grad():
            evaluated = compiled(h, w, targets)
        hc = h.clone().requires_grad_(True)
        loss = compiled(hc, w, targets)
        loss.backward()
        return evaluated, loss.detach(), hc.grad

    evaluated, loss, grad_h = _in_new_thread(in_fresh_thread)
    eager_loss, eager_grad = _loss_and_grads(h, w, targets)
    torch.testing.assert_close(evaluated, eager_loss)
    torch.testing.assert_close(loss, eager_loss)
    torch.testing.assert_close(grad_h, eager_grad)


def _in_new_thread(fn):
    """Run fn in a thread of its own: the loss's reused buffers are per thread, so it starts
    with none (what a process's first call sees)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn).result()


def test_model_loss_matches_logits_and_trains():
    m = model().train()
    idx = torch.randint(0, CONFIG.vocab_size, (4, 16))
    targets = torch.roll(idx, -1, dims=1)
    loss = m(idx, targets)
    expected = F.cross_entropy(m(idx).view(-1, CONFIG.vocab_size), targets.view(-1))
    torch.testing.assert_close(loss, expected, atol=1e-5, rtol=1e-5)
    optimizer = torch.optim.AdamW(m.parameters(), lr=1e-2)
    for _ in range(20):
        optimizer.zero_grad()
        m(idx, targets).backward()
        optimizer.step()
    assert m(idx, targets).item() < 0.5 * loss.item()


def test_training_fuses_projections_into_the_same_function():
    """Train mode runs q/k/v and gate/up as one matmul each (weights concatenated per forward);
    eval mode runs them one by one. Same loss, same gradients, same parameters."""
    m = model()
    idx = torch.randint(0, CONFIG.vocab_size, (2, 24))
    targets = torch.roll(idx, -1, dims=1)
    grads = {}
    for train in (True, False):
        m.train(train)
        m.zero_grad()
        loss = m(idx, targets)
        loss.backward()
        grads[train] = (loss.detach(), {n: p.grad.clone() for n, p in m.named_parameters()})
    torch.testing.assert_close(grads[True][0], grads[False][0], atol=1e-6, rtol=1e-6)
    for name, grad in grads[False][1].items():
        torch.testing.assert_close(grads[True][1][name], grad, atol=1e-6, rtol=1e-5, msg=name)
    assert m.layers[0].attention.wqkv is None  # nothing fused is kept between steps


def test_bf16_autocast_loss_is_close_to_fp32():
    m = model()
    idx = torch.randint(0, CONFIG.vocab_size, (2, 16))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = m(idx, torch.roll(idx, -1, 1))
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, m(idx, torch.roll(idx, -1, 1)), atol=5e-2, rtol=5e-2)


def test_init_follows_tinyllama():
    config = ModelConfig(
        name="init",
        vocab_size=1000,
        n_layer=4,
        n_embd=256,
        n_head=4,
        n_kv_head=2,
        intermediate_size=512,
        block_size=32,
    )
    m = model(config=config)
    std = math.sqrt(2 / (5 * 256))
    assert abs(m.tok_embeddings.weight.std().item() - std) < 0.05 * std
    assert abs(m.layers[0].attention.wq.weight.std().item() - std) < 0.05 * std
    residual = 1 / math.sqrt(256) / 4
    assert abs(m.layers[0].attention.wo.weight.std().item() - residual) < 0.05 * residual
    assert abs(m.layers[0].feed_forward.w2.weight.std().item() - residual) < 0.05 * residual
    assert torch.equal(m.norm.weight, torch.ones(256))


def test_meta_init_then_materialise():
    with torch.device("meta"):
        m = Llama(CONFIG)
    m.to_empty(device="cpu")
    torch.manual_seed(0)
    m.init_weights()
    reference = model(seed=0)
    torch.testing.assert_close(m.rope_cos, reference.rope_cos)
    assert torch.isfinite(m(torch.zeros(1, 4, dtype=torch.long))).all()


def test_loss_gradients_scale_with_the_loss_gradient_and_backward_runs_once():
    """The backward scales the precomputed gradients in place: a scaled loss (gradient
    accumulation's `loss / steps`) gets scaled gradients, and a second backward through the same
    graph fails autograd's version check rather than scaling them twice."""
    torch.manual_seed(0)
    h, w, targets = torch.randn(6, 16), torch.randn(11, 16), torch.randint(0, 11, (6,))
    _, grad_h = _loss_and_grads(h, w, targets)
    hs, ws = h.clone().requires_grad_(True), w.clone().requires_grad_(True)
    (linear_cross_entropy(hs, ws, targets) / 4).backward()
    torch.testing.assert_close(hs.grad, grad_h / 4)
    wr = w.clone().requires_grad_(True)
    F.cross_entropy(h @ wr.t(), targets).backward()
    torch.testing.assert_close(ws.grad, wr.grad / 4)
    again = linear_cross_entropy(h.clone().requires_grad_(True), w, targets)
    again.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        again.backward()
