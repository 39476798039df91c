"""A model vocabulary larger than its tokenizer (a padded embedding): nothing samples an id the
tokenizer lacks (generate, and eval's generation tasks), and a tokenizer larger than the model is
refused."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import torch.distributed.checkpoint as dcp

from tinyllama_cli.config import ModelConfig
from tinyllama_cli.generate import (
    SamplingParams,
    generate,
    generate_tokens,
    load_for_generation,
    sample_next,
)
from tinyllama_cli.load import load_model
from tinyllama_cli.model import Llama
from tinyllama_cli.tokenizer import train_tokenizer

TOKENIZER_VOCAB, MODEL_VOCAB = 320, 512
CONFIG = ModelConfig(name="padded", vocab_size=MODEL_VOCAB, n_layer=1, n_embd=32, n_head=4, n_kv_head=2,
                     intermediate_size=64, block_size=64)
TEXTS = [f"the quick brown fox jumps over the lazy dog {i} times" for i in range(300)]


def write_run(root, model: Llama) -> None:
    checkpoint = root / "checkpoints" / "step-00000001"
    checkpoint.mkdir(parents=True)
    dcp.save({"model": model.state_dict()}, checkpoint_id=str(checkpoint), no_dist=True)
    (checkpoint / "state.json").write_text(json.dumps({"step": 1, "model_config": model.config.to_dict()}))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run whose padded output rows win every argmax: the real rows of the head are zero, the
    192 unused ones random, so without a mask greedy decoding picks an id past the tokenizer."""
    root = tmp_path_factory.mktemp("padded") / "run"
    root.mkdir()
    train_tokenizer(TEXTS, TOKENIZER_VOCAB, root / "tokenizer.model", num_threads=1)
    torch.manual_seed(0)
    model = Llama(CONFIG)
    with torch.no_grad():
        model.output.weight[:TOKENIZER_VOCAB] = 0.0
        model.output.weight[TOKENIZER_VOCAB:] *= 50.0
    write_run(root, model)
    return root


@pytest.fixture(scope="module")
def loaded(run_dir):
    return load_for_generation(run_dir, device="cpu")[0]


def test_the_fixture_would_sample_unknown_ids_without_the_limit(loaded):
    ids = [[loaded.tokenizer.bos_id, *loaded.tokenizer.encode("the quick brown fox")]]
    free = generate_tokens(loaded.model, ids, SamplingParams(max_new_tokens=8, temperature=0.0))
    assert max(free.tokens[0]) >= TOKENIZER_VOCAB  # the bug this file guards against
    bounded = generate_tokens(loaded.model, ids, SamplingParams(max_new_tokens=8, temperature=0.0),
                              vocab_limit=TOKENIZER_VOCAB)
    assert max(bounded.tokens[0]) < TOKENIZER_VOCAB


@pytest.mark.parametrize("params", [
    SamplingParams(temperature=0.0), SamplingParams(temperature=1.0, seed=1),
    SamplingParams(temperature=1.0, top_k=5, seed=2), SamplingParams(temperature=1.0, top_p=0.5, seed=3),
    SamplingParams(temperature=0.0, repetition_penalty=1.3),
], ids=["greedy", "sample", "top-k", "top-p", "repetition"])
def test_sample_next_never_picks_an_id_past_the_limit(params):
    logits = torch.randn(64, MODEL_VOCAB)
    logits[:, TOKENIZER_VOCAB:] += 100.0
    seen = torch.zeros(64, MODEL_VOCAB, dtype=torch.bool)
    generator = torch.Generator().manual_seed(0)
    picked = sample_next(logits, params, generator, seen, vocab_limit=TOKENIZER_VOCAB)
    assert picked.max() < TOKENIZER_VOCAB


@pytest.mark.parametrize("params", [SamplingParams(max_new_tokens=12, temperature=0.0),
                                    SamplingParams(max_new_tokens=12, temperature=1.0, top_k=40, seed=4)],
                         ids=["greedy", "sampled"])
def test_generate_emits_only_tokenizer_ids_batched(loaded, params):
    result = generate(loaded, ["the quick", "a lazy dog jumps", ""], params, num_samples=2)
    assert all(t < TOKENIZER_VOCAB for s in result.samples for t in s.tokens)
    assert all(len(s.tokens) > 0 for s in result.samples)


@pytest.mark.parametrize("gen_kwargs", [{"do_sample": False},
                                        {"do_sample": True, "temperature": 1.0}],
                         ids=["greedy", "sampled"])
def test_eval_generate_until_emits_only_tokenizer_ids(run_dir, gen_kwargs):
    """lm-eval's generation tasks on the native adapter decode only ids the tokenizer has: the
    text of each row is decoded from them (an id past the tokenizer has no piece)."""
    from lm_eval.api.instance import Instance

    from tinyllama_cli.eval.native_lm import NativeLM

    loaded = load_model(run_dir)
    lm = NativeLM(loaded.model, loaded.tokenizer, batch_size=2)
    decoded: list[list[int]] = []
    decode = lm.tok_decode
    lm.tok_decode = lambda ids, **kw: decoded.append(list(ids)) or decode(ids, **kw)
    kwargs = {"until": ["\n"], "max_gen_toks": 8, **gen_kwargs}
    requests = [Instance("generate_until", {}, (prompt, kwargs), 0)
                for prompt in ("the quick", "a lazy dog jumps", "")]
    texts = lm.generate_until(requests, disable_tqdm=True)
    assert len(texts) == 3 and all(isinstance(t, str) for t in texts)
    generated = [t for ids in decoded for t in ids]
    assert generated and max(generated) < TOKENIZER_VOCAB


def test_cli_greedy_json_and_streaming_do_not_crash(run_dir):
    base = [sys.executable, "-m", "tinyllama_cli", "generate", str(run_dir), "--prompt", "the quick",
            "--temperature", "0", "--max-new-tokens", "10", "--threads", "1"]
    out = subprocess.run([*base, "--json"], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    tokens = json.loads(out.stdout)["samples"][0]["tokens"]
    assert tokens and max(tokens) < TOKENIZER_VOCAB
    streamed = subprocess.run(base, capture_output=True, text=True, check=False)
    assert streamed.returncode == 0 and "Traceback" not in streamed.stderr, streamed.stderr
