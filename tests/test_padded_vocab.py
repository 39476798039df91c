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
CONFIG = ModelConfig(
    name="padded",
    vocab_size=MODEL_VOCAB,
    n_layer=1,
    n_embd=32,
    n_head=4,
    n_kv_head=2,
    intermediate_size=64,
    block_size=64,
)
TEXTS = [f"the quick brown fox jumps over the lazy dog {i} times" for i in range(300)]


def write_run(root, model: Llama) -> None:
    checkpoint = root / "checkpoints" / "step-00000001"
    checkpoint.mkdir(parents=True)
    dcp.save({"model": model.state_dict()}, checkpoint_id=str(checkpoint), no_dist=True)
    (checkpoint / "state.json").write_text(
        json.dumps({"step": 1, "model_config": model.config.to_dict()})
    )


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
    bounded = generate_tokens(
        loaded.model,
        ids,
        SamplingParams(max_new_tokens=8, temperature=0.0),
        vocab_limit=TOKENIZER_VOCAB,
    )
    assert max(bounded.tokens[0]) < TOKENIZER_VOCAB


@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(temperature=0.0),
        SamplingParams(temperature=1.0, seed=1),
        SamplingParams(temperature=1.0, top_k=5, seed=2),
        SamplingParams(temperature=1.0, top_p=0.5, seed=3),
        SamplingParams(temperature=0.0, repetition_penalty=1.3),
    ],
    ids=["greedy", "sample", "top-k", "top-p", "repetition"],
)
def test_sample_next_never_picks_an_id_past_the_limit(params):
    logits = torch.randn(64, MODEL_VOCAB)
    logits[:, TOKENIZER_VOCAB:] += 100.0
    seen = torch.zeros(64, MODEL_VOCAB, dtype=torch.bool)
    generator = torch.Generator().manual_seed(0)
    picked = sample_next(logits, params, generator, seen, vocab_limit=TOKENIZER_VOCAB)
    assert picked.max() < TOKENIZER_VOCAB


@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(max_new_tokens=12, temperature=0.0),
        SamplingParams(max_new_tokens=12, temperature=1.0, top_k=40, seed=4),
    ],
    ids=["greedy", "sampled"],
)
def test_generate_emits_only_tokenizer_ids_batched(loaded, params):
    result = generate(loaded, ["the quick", "a lazy dog jumps", ""], params, num_samples=2)
    assert all(t < TOKENIZER_VOCAB for s in result.samples for t in s.tokens)
    assert all(len(s.tokens) > 0 for s in result.samples)


@pytest.mark.parametrize(
    "gen_kwargs",
    [{"do_sample": False}, {"do_sample": True, "temperature": 1.0}],
    ids=["greedy", "sampled"],
)
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
    requests = [
        Instance("generate_until", {}, (prompt, kwargs), 0)
        for prompt in ("the quick", "a lazy dog jumps", "")
    ]
    texts = lm.generate_until(requests, disable_tqdm=True)
    assert len(texts) == 3 and all(isinstance(t, str) for t in texts)
    generated = [t for ids in decoded for t in ids]
    assert generated and max(generated) < TOKENIZER_VOCAB


def test_cli_greedy_json_and_streaming_do_not_crash(run_dir):
    base = [
        sys.executable,
        "-m",
        "tinyllama_cli",
        "generate",
        str(run_dir),
        "--prompt",
        "the quick",
        "--temperature",
        "0",
        "--max-new-tokens",
        "10",
        "--threads",
        "1",
    ]
    out = subprocess.run([*base, "--json"], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    tokens = json.loads(out.stdout)["samples"][0]["tokens"]
    assert tokens and max(tokens) < TOKENIZER_VOCAB
    streamed = subprocess.run(base, capture_output=True, text=True, check=False)
    assert streamed.returncode == 0 and "Traceback" not in streamed.stderr, streamed.stderr


# --- conversion: Hugging Face and GGUF ---------------------------------------------------------


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A padded-vocabulary model trained a little (60 steps), so greedy text is clear-cut."""
    from tinyllama_cli.tokenizer import Tokenizer

    root = tmp_path_factory.mktemp("padded-trained") / "run"
    root.mkdir()
    train_tokenizer(TEXTS, TOKENIZER_VOCAB, root / "tokenizer.model", num_threads=1)
    tok = Tokenizer(root / "tokenizer.model")
    data = torch.tensor([i for t in TEXTS for i in (tok.bos_id, *tok.encode(t), tok.eos_id)])
    torch.manual_seed(0)
    model = Llama(CONFIG)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(60):
        starts = torch.randint(0, len(data) - 33, (16,)).tolist()
        batch = torch.stack([data[s : s + 33] for s in starts])
        optimizer.zero_grad()
        model(batch[:, :-1], batch[:, 1:]).backward()
        optimizer.step()
    write_run(root, model.eval())
    return root


def greedy_ids(loaded, prompt: str, n: int = 12) -> tuple[list[int], list[int]]:
    ids = [loaded.tokenizer.bos_id, *loaded.tokenizer.encode(prompt)]
    out = generate_tokens(
        loaded.model,
        [ids],
        SamplingParams(max_new_tokens=n, temperature=0.0, ignore_eos=True),
        vocab_limit=loaded.tokenizer.vocab_size,
    )
    return ids, out.tokens[0]


@pytest.mark.parametrize("which", ["adversarial", "trained"])
def test_hf_export_keeps_the_vocabulary_and_generates_our_greedy_text(
    which, run_dir, trained_run, tmp_path
):
    transformers = pytest.importorskip("transformers")
    from tinyllama_cli.convert.api import convert

    src = run_dir if which == "adversarial" else trained_run
    out = tmp_path / "hf"
    convert(str(src), "hf", str(out))
    assert json.loads((out / "config.json").read_text())["vocab_size"] == MODEL_VOCAB
    assert json.loads((out / "generation_config.json").read_text())["suppress_tokens"] == list(
        range(TOKENIZER_VOCAB, MODEL_VOCAB)
    )
    auto = transformers.AutoTokenizer.from_pretrained(str(out))
    text = "the quick brown fox jumps over the lazy dog 7 times"
    assert len(auto) == TOKENIZER_VOCAB
    assert auto.decode(auto(text)["input_ids"], skip_special_tokens=True) == text
    ours = load_for_generation(src, device="cpu")[0]
    ids, expected = greedy_ids(ours, "the quick brown fox")
    assert auto(text[:19])["input_ids"] == ids
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
    kwargs = {"max_new_tokens": 12, "min_new_tokens": 12, "do_sample": False}
    got = hf.generate(
        torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long), **kwargs
    )
    assert got[0, len(ids) :].tolist() == expected and max(expected) < TOKENIZER_VOCAB
    if (
        which == "adversarial"
    ):  # without the export's suppress_tokens transformers picks unused rows
        free = hf.generate(
            torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            suppress_tokens=None,
            **kwargs,
        )
        assert max(free[0, len(ids) :].tolist()) >= TOKENIZER_VOCAB


def test_gguf_export_has_one_token_per_embedding_row(trained_run, tmp_path):
    gguf = pytest.importorskip("gguf")
    from tinyllama_cli.convert.api import convert

    path = tmp_path / "model.gguf"
    convert(str(trained_run), "gguf", str(path))
    reader = gguf.GGUFReader(str(path))
    field = reader.fields["tokenizer.ggml.tokens"]
    tokens = [bytes(field.parts[i]).decode() for i in field.data]
    types = reader.fields["tokenizer.ggml.token_type"]
    kinds = [int(types.parts[i][0]) for i in types.data]
    embedding = next(t for t in reader.tensors if t.name == "token_embd.weight")
    assert len(tokens) == MODEL_VOCAB == int(embedding.shape[-1])
    assert tokens[TOKENIZER_VOCAB] == f"[PAD{TOKENIZER_VOCAB}]"
    assert set(kinds[TOKENIZER_VOCAB:]) == {int(gguf.TokenType.UNUSED)}


def test_llama_cpp_loads_the_padded_export_and_generates_our_greedy_text(trained_run, tmp_path):
    """Runs where llama-cpp-python is installed (`pip install llama-cpp-python` builds llama.cpp,
    ~9 min; not a dev dependency)."""
    llama_cpp = pytest.importorskip("llama_cpp")
    from tinyllama_cli.convert.api import convert

    path = tmp_path / "model.gguf"
    convert(str(trained_run), "gguf", str(path))
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=CONFIG.block_size, n_threads=1, verbose=False)
    ours = load_for_generation(trained_run, device="cpu")[0]
    for prompt in ("the quick brown fox", "the lazy dog 3"):
        ids, expected = greedy_ids(ours, prompt)
        assert llm.tokenize(prompt.encode(), add_bos=True) == ids
        got = []
        for token in llm.generate(ids, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0):
            got.append(token)
            if len(got) == len(expected):
                break
        assert got == expected, prompt


def test_a_tokenizer_larger_than_the_model_is_refused_by_every_command(tmp_path):
    """A model of 256 rows beside a 320-piece tokenizer: generate, eval and convert say so in one
    line, exit 2, and write nothing."""
    root = tmp_path / "run"
    root.mkdir()
    train_tokenizer(TEXTS, TOKENIZER_VOCAB, root / "tokenizer.model", num_threads=1)
    torch.manual_seed(0)
    write_run(root, Llama(CONFIG.replace(vocab_size=256)))
    hellaswag = tmp_path / "h.jsonl"
    hellaswag.write_text(
        json.dumps(
            {
                "ind": 0,
                "activity_label": "a",
                "ctx_a": "the quick",
                "ctx_b": "",
                "ctx": "the quick",
                "endings": ["fox", "dog", "cat", "cow"],
                "source_id": "x",
                "split": "val",
                "split_type": "indomain",
                "label": "0",
            }
        )
        + "\n"
    )
    commands = [
        ["generate", str(root), "--prompt", "the"],
        ["convert", str(root), "--to", "hf", "--out", str(tmp_path / "hf")],
        ["eval", str(root), "--tasks", "hellaswag", "--dataset", f"hellaswag={hellaswag}"],
    ]
    for args in commands:
        out = subprocess.run(
            [sys.executable, "-m", "tinyllama_cli", *args],
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == 2, (args, out.stderr)
        assert "tokenizer has 320 pieces but the model's vocabulary is 256" in out.stderr
        assert out.stderr.strip().count("\n") == 0 and out.stdout == ""
    assert not (tmp_path / "hf").exists()
