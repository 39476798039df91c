"""NativeLM: log-likelihoods against a direct forward pass (shared contexts, padding, left
truncation), greedy generation and rolling log-likelihoods against lm-eval's HFLM."""

from __future__ import annotations

import random

import pytest
import torch

from tests.eval.files import sentence


def test_loglikelihood_is_the_sum_of_token_logprobs(env):
    """The adapter's numbers against a direct forward pass, including batching with padding."""
    from tinyllama_cli.eval.native_lm import NativeLM
    from tinyllama_cli.load import load_model

    loaded = load_model(env["run"])
    lm = NativeLM(loaded.model, loaded.tokenizer, batch_size=3)
    tok = env["tokenizer"]
    reqs = []
    long_ctx = sentence(random.Random(5), 80)  # longer than the 128-token context: left-truncated
    for ctx, cont in (
        ("the man cooks", " onions"),
        ("a dog", " runs fast away"),
        ("rain", " is"),
        ("the man cooks", " onions"),
        ("the sun is warm and", " light"),
        ("the man cooks", " a song"),
        ("rain", " is cold"),
        (long_ctx, " the end"),
        ("a dog", " runs"),
    ):
        c, w = lm.tok_encode(ctx), lm.tok_encode(ctx + cont)
        reqs.append(((ctx, cont), c, w[len(c) :]))
    assert len(reqs[7][1]) > 128
    got = lm._loglikelihood_tokens(reqs, disable_tqdm=True)
    for (_, ctx, cont), (ll, greedy) in zip(reqs, got):
        ids = torch.tensor([(ctx + cont)[-129:]])
        with torch.no_grad():
            logp = torch.log_softmax(loaded.model(ids[:, :-1]).float(), -1)[0]
        expected = logp[-len(cont) :].gather(1, torch.tensor(cont)[:, None]).sum().item()
        assert ll == pytest.approx(expected, abs=1e-4)
        assert greedy == bool((logp[-len(cont) :].argmax(-1) == torch.tensor(cont)).all())
    assert got[0] == got[3]
    assert lm.tok_encode("the man") == [tok.bos_id] + tok.encode("the man")


def test_generate_until_and_rolling_match_hf(env, tmp_path):
    """Greedy generation with the KV cache (left-padded batch, stop strings) and rolling
    log-likelihoods agree with lm-eval's HFLM on the same weights."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from tinyllama_cli.eval.native_lm import NativeLM
    from tinyllama_cli.formats.hf import save_hf
    from tinyllama_cli.load import load_model

    loaded = load_model(env["run"])
    native = NativeLM(loaded.model, loaded.tokenizer, batch_size=3)
    hf_dir = save_hf(loaded.model, tmp_path / "hf", loaded.tokenizer)
    hf = HFLM(pretrained=str(hf_dir), dtype="float32", batch_size=3, device="cpu")
    gen = [
        Instance(
            "generate_until",
            {},
            (p, {"until": [" cat", "\n"], "max_gen_toks": 12, "do_sample": False}),
            0,
        )
        for p in ("the man", "a dog runs fast and the", "rain", "question what is the sun")
    ]
    got, want = (
        native.generate_until(gen, disable_tqdm=True),
        hf.generate_until(gen, disable_tqdm=True),
    )
    assert got == want
    assert any(got)  # something was generated
    text = " ".join(
        sentence(random.Random(3), 60) for _ in range(3)
    )  # longer than the 128-token context
    rolling = [
        Instance("loglikelihood_rolling", {}, (t,), 0) for t in (text, "the man cooks onions")
    ]
    for x, y in zip(
        native.loglikelihood_rolling(rolling, disable_tqdm=True),
        hf.loglikelihood_rolling(rolling, disable_tqdm=True),
    ):
        assert x == pytest.approx(y, abs=1e-3)


def test_generate_until_with_prompt_lookup_or_compile_gives_the_same_text(env):
    """Prompt lookup drafts and the compiled decode step inside generate_until (batched, stop
    strings) change no text."""
    from lm_eval.api.instance import Instance

    from tinyllama_cli.eval.native_lm import NativeLM
    from tinyllama_cli.load import load_model

    loaded = load_model(env["run"])
    kwargs = {"until": [" cat", "\n"], "max_gen_toks": 24, "do_sample": False}
    gen = [
        Instance("generate_until", {}, (p, kwargs), 0)
        for p in ("the man cooks the man cooks the", "a dog runs fast and the", "rain rain rain")
    ]
    plain = NativeLM(loaded.model, loaded.tokenizer, batch_size=3).generate_until(
        gen, disable_tqdm=True
    )
    lookup = NativeLM(loaded.model, loaded.tokenizer, batch_size=3, prompt_lookup=3)
    assert lookup.generate_until(gen, disable_tqdm=True) == plain
    assert any(plain)
    # --compile: the same requests through decode_step's compiled graphs (plain and lookup)
    for options in ({}, {"prompt_lookup": 3}):
        compiled = NativeLM(loaded.model, loaded.tokenizer, batch_size=3, compile=True, **options)
        assert compiled.generate_until(gen, disable_tqdm=True) == plain, options
        assert compiled.decoder.shapes  # it did decode through a compiled graph
    tuned = NativeLM(
        loaded.model, loaded.tokenizer, batch_size=3, compile=True, compile_mode="max-autotune"
    )
    assert tuned.generate_until(gen, disable_tqdm=True) == plain  # --compile-mode max-autotune
    assert tuned.decoder.mode == "max-autotune" and tuned.decoder.shapes


def test_generation_kwargs_become_generates_sampling_params():
    """lm-eval's normalized kwargs -> SamplingParams: greedy unless do_sample with a positive
    temperature (lm-eval's own rule); top_k/top_p only where they cut anything."""
    from lm_eval.models.utils import normalize_gen_kwargs

    from tinyllama_cli.eval.native_lm import sampling_params

    def params(**kwargs):
        return sampling_params(normalize_gen_kwargs(kwargs, 256))

    greedy = params(until=["\n"], do_sample=False, temperature=0.7)
    assert (greedy.temperature, greedy.max_new_tokens) == (0.0, 256)
    assert (greedy.top_k, greedy.top_p) == (None, None)
    assert params(do_sample=True, temperature=0.0).temperature == 0.0
    sampled = params(do_sample=True, temperature=0.7, top_k=0, top_p=1.0, max_gen_toks=12)
    assert (sampled.temperature, sampled.max_new_tokens) == (0.7, 12)
    assert (sampled.top_k, sampled.top_p) == (None, None)
    cut = params(do_sample=True, temperature=1.0, top_k=40, top_p=0.9)
    assert (cut.top_k, cut.top_p) == (40, 0.9)
    assert greedy.repetition_penalty == 1.0 and not greedy.ignore_eos and not greedy.stop
