"""generate.py and `tinyllama generate`: sampling options, stops, batching, parity with
transformers.

A tokenizer and a tiny model are trained here (a few dozen steps on synthetic sentences), so the
model's greedy choices are clear-cut and token-for-token comparisons are meaningful.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from tests.generation_runs import corpus, write_run_dir
from tinyllama_cli.config import ModelConfig
from tinyllama_cli.errors import UserError
from tinyllama_cli.generate import (
    SamplingParams,
    apply_repetition_penalty,
    filter_logits,
    generate,
    generate_tokens,
    load_for_generation,
    sample_next,
)
from tinyllama_cli.load import load_model
from tinyllama_cli.tokenizer import train_tokenizer

VOCAB = 320
CONFIG = ModelConfig(
    name="gen-test",
    vocab_size=VOCAB,
    n_layer=2,
    n_embd=64,
    n_head=4,
    n_kv_head=2,
    intermediate_size=176,
    block_size=96,
)
PROMPTS = ["the quick fox", "a cat", "", "seven green birds sing over the old river"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run dir (checkpoint + tokenizer) of a model trained 60 steps, and its HF conversion."""
    from tinyllama_cli.formats.hf import save_hf
    from tinyllama_cli.model import Llama

    root = tmp_path_factory.mktemp("gen")
    texts = corpus()
    tokenizer = train_tokenizer(texts, VOCAB, root / "tokenizer.model", num_threads=1)
    stream = []
    for text in texts:
        stream += [tokenizer.bos_id, *tokenizer.encode(text), tokenizer.eos_id]
    data = torch.tensor(stream)
    torch.manual_seed(0)
    model = Llama(CONFIG)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    seq = 48
    for _ in range(60):
        starts = torch.randint(0, len(data) - seq - 1, (16,))
        batch = torch.stack([data[s : s + seq + 1] for s in starts.tolist()])
        optimizer.zero_grad()
        model(batch[:, :-1], batch[:, 1:]).backward()
        optimizer.step()
    write_run_dir(model, root / "tokenizer.model", root / "run", step=60)
    save_hf(model.eval(), root / "hf", tokenizer)
    return root


@pytest.fixture(scope="module")
def loaded(run_dir):
    """The model as `tinyllama generate` loads it: projections fused (load_for_generation)."""
    loaded, _, _ = load_for_generation(run_dir / "run", device="cpu")
    assert loaded.model.layers[0].attention.wqkv is not None
    return loaded


def greedy(n=24, **kw) -> SamplingParams:
    return SamplingParams(max_new_tokens=n, temperature=0.0, **kw)


# --- sampling primitives ---------------------------------------------------------------------


def test_top_k_keeps_exactly_the_k_largest():
    torch.manual_seed(0)
    logits = torch.randn(3, 50)
    kept = torch.isfinite(filter_logits(logits, top_k=5, top_p=None))
    assert kept.sum(-1).tolist() == [5, 5, 5]
    assert torch.equal(kept, torch.zeros_like(kept).scatter(1, logits.topk(5).indices, True))


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.05, 0.9, 0.03, 0.02]])
    kept = torch.isfinite(filter_logits(probs.log(), top_k=None, top_p=0.75))
    assert kept.tolist() == [[True, True, False, False], [False, True, False, False]]
    # Sampling never leaves the support, whatever the seed.
    params = SamplingParams(temperature=1.0, top_p=0.75)
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([sample_next(probs.log(), params, g) for _ in range(300)])
    assert set(draws[:, 0].tolist()) == {0, 1} and set(draws[:, 1].tolist()) == {1}


def test_top_k_sampling_stays_in_support_and_seeds_reproduce():
    torch.manual_seed(1)
    logits = torch.randn(2, 100)
    params = SamplingParams(temperature=1.5, top_k=3)
    support = logits.topk(3).indices

    def draws(seed):
        g = torch.Generator().manual_seed(seed)
        return torch.stack([sample_next(logits, params, g) for _ in range(200)])

    first = draws(7)
    assert torch.equal(first, draws(7))
    assert not torch.equal(first, draws(8))
    for row in range(2):
        assert set(first[:, row].tolist()) == set(support[row].tolist())  # all 3 seen, nothing else


def test_repetition_penalty_and_greedy():
    logits = torch.tensor([[2.0, 1.5, -1.0]])
    seen = torch.tensor([[True, False, True]])
    assert apply_repetition_penalty(logits, seen, 2.0).tolist() == [[1.0, 1.5, -2.0]]
    assert sample_next(logits, SamplingParams(temperature=0), None).tolist() == [0]
    assert sample_next(
        logits, SamplingParams(temperature=0, repetition_penalty=2.0), None, seen
    ).tolist() == [1]


# --- the model loop ------------------------------------------------------------------------------


def test_last_only_logits_equal_the_last_position(loaded):
    idx = torch.randint(3, VOCAB, (2, 11))
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(idx, last_only=True), loaded.model(idx)[:, -1:])


def test_batched_left_padded_greedy_equals_one_by_one(loaded):
    prompts = [[1, *loaded.tokenizer.encode(p)] for p in PROMPTS]
    assert len({len(p) for p in prompts}) == len(prompts)  # really different lengths
    batched = generate_tokens(loaded.model, prompts, greedy(20, ignore_eos=True))
    alone = [
        generate_tokens(loaded.model, [p], greedy(20, ignore_eos=True)).tokens[0] for p in prompts
    ]
    assert batched.tokens == alone
    assert all(len(t) == 20 for t in alone)


def test_sampling_is_reproducible_with_a_seed(loaded):
    params = SamplingParams(max_new_tokens=30, temperature=1.0, seed=123)
    a = generate(loaded, ["a cat"], params, num_samples=3)
    b = generate(loaded, ["a cat"], params, num_samples=3)
    assert [s.tokens for s in a.samples] == [s.tokens for s in b.samples]
    assert len({tuple(s.tokens) for s in a.samples}) > 1  # the samples differ from each other
    c = generate(
        loaded,
        ["a cat"],
        SamplingParams(max_new_tokens=30, temperature=1.0, seed=124),
        num_samples=3,
    )
    assert [s.tokens for s in a.samples] != [s.tokens for s in c.samples]


def test_eos_stops_a_row_and_is_not_returned(loaded):
    # The model learned sentences ending in ".</s>": greedy continuation must hit EOS.
    result = generate(loaded, ["the quick fox jumps over the lazy"], greedy(40))
    sample = result.samples[0]
    assert sample.finish_reason == "eos"
    assert loaded.tokenizer.eos_id not in sample.tokens and len(sample.tokens) < 40
    ids = [loaded.tokenizer.bos_id, *loaded.tokenizer.encode(sample.prompt)]
    assert sample.prompt + sample.completion == loaded.tokenizer.decode(ids + sample.tokens)
    # Without the EOS stop the same row runs to max_new_tokens and contains EOS.
    full = generate_tokens(
        loaded.model, [[1, *loaded.tokenizer.encode(sample.prompt)]], greedy(40, ignore_eos=True)
    )
    assert full.tokens[0][: len(sample.tokens) + 1] == [*sample.tokens, loaded.tokenizer.eos_id]


def test_stop_string_cuts_the_text_and_ends_the_row(loaded):
    free = generate(loaded, ["a cat"], greedy(30))
    text = free.samples[0].completion
    stop = text.split()[1]  # the second word of what the model writes
    cut = generate(loaded, ["a cat"], greedy(30, stop=[stop, "never-there"]))
    sample = cut.samples[0]
    assert sample.finish_reason == "stop"
    assert sample.completion == text[: text.index(stop)]
    assert len(sample.tokens) < len(free.samples[0].tokens)


def test_streamed_text_equals_final_completion(loaded):
    pieces: dict[int, list[str]] = {}
    stops = [".", " twelve", "e s"]  # overlapping beginnings: " t..." / "e s..." are held back
    result = generate(
        loaded,
        PROMPTS[:3],
        SamplingParams(max_new_tokens=25, temperature=1.0, seed=3, stop=stops),
        num_samples=2,
        batch_size=4,
        on_text=lambda n, t: pieces.setdefault(n, []).append(t),
    )
    assert len(result.samples) == 6 and result.batches == 2
    for n, sample in enumerate(result.samples):
        assert "".join(pieces.get(n, [])) == sample.completion
        assert not any(stop in sample.completion for stop in stops)
    assert [(s.prompt_index, s.sample_index) for s in result.samples] == [
        (0, 0),
        (0, 1),
        (1, 0),
        (1, 1),
        (2, 0),
        (2, 1),
    ]


def test_empty_prompt_starts_from_bos(loaded):
    result = generate(loaded, [""], greedy(10, ignore_eos=True))
    assert result.samples[0].prompt_tokens == 1
    expected = generate_tokens(
        loaded.model, [[loaded.tokenizer.bos_id]], greedy(10, ignore_eos=True)
    )
    assert result.samples[0].tokens == expected.tokens[0]


def test_too_long_prompt_is_an_error_or_truncated(loaded):
    long_prompt = " ".join(corpus(40))
    with pytest.raises(UserError, match="--truncate"):
        generate(loaded, [long_prompt], greedy(8))
    result = generate(loaded, [long_prompt], greedy(8, ignore_eos=True), truncate=True)
    sample = result.samples[0]
    assert sample.truncated and sample.prompt_tokens == CONFIG.block_size - 8
    assert len(sample.tokens) == 8


def test_generation_stops_at_the_end_of_the_context(loaded):
    prompt = [1, *loaded.tokenizer.encode(" ".join(corpus(40)))][: CONFIG.block_size - 5]
    result = generate_tokens(loaded.model, [prompt], greedy(50, ignore_eos=True))
    assert len(result.tokens[0]) == 5 and result.finish_reasons == ["length"]


# --- parity with transformers --------------------------------------------------------------------


def test_greedy_equals_transformers_generate(run_dir, loaded):
    transformers = pytest.importorskip("transformers")
    hf = transformers.AutoModelForCausalLM.from_pretrained(
        run_dir / "hf", dtype=torch.float32
    ).eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(run_dir / "hf")
    eos = hf.generation_config.eos_token_id
    for prompt in PROMPTS:
        ids = [loaded.tokenizer.bos_id, *loaded.tokenizer.encode(prompt)]
        hf_ids = (
            hf_tok(prompt, return_tensors="pt").input_ids
            if prompt
            else torch.tensor([[hf_tok.bos_token_id]])
        )
        assert hf_ids[0].tolist() == ids
        hf.generation_config.eos_token_id = None  # 40 tokens whatever they are (EOS included)
        with torch.no_grad():
            out = hf.generate(
                hf_ids,
                attention_mask=torch.ones_like(hf_ids),
                do_sample=False,
                max_new_tokens=40,
                pad_token_id=0,
            )
        hf.generation_config.eos_token_id = eos
        ours = generate_tokens(loaded.model, [ids], greedy(40, ignore_eos=True)).tokens[0]
        assert out.size(1) == len(ids) + 40
        assert ours == out[0, len(ids) :].tolist(), prompt
        assert loaded.tokenizer.eos_id in ours  # the comparison runs across sentence ends
        with torch.no_grad():  # and both end at the first EOS when it is honoured
            out = hf.generate(
                hf_ids, attention_mask=torch.ones_like(hf_ids), do_sample=False, max_new_tokens=40
            )
        stopped = generate_tokens(loaded.model, [ids], greedy(40), eos_id=loaded.tokenizer.eos_id)
        assert stopped.finish_reasons == ["eos"]
        assert out[0, len(ids) :].tolist() == [*stopped.tokens[0], loaded.tokenizer.eos_id]


def test_hf_directory_generates_the_same_text(run_dir, loaded):
    from_hf = load_model(run_dir / "hf")  # unfused: the fusion changes no token either
    a = generate(loaded, PROMPTS, greedy(20))
    b = generate(from_hf, PROMPTS, greedy(20))
    assert [s.completion for s in a.samples] == [s.completion for s in b.samples]


# --- CLI -----------------------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tinyllama_cli", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )


def test_cli_json_and_prompt_file(run_dir, loaded):
    prompt_file = run_dir / "prompts.txt"
    prompt_file.write_text("a cat\nthe quick fox\n")
    result = run_cli(
        "generate",
        str(run_dir / "run"),
        "--prompt-file",
        str(prompt_file),
        "--prompt",
        "my old dog",
        "--temperature",
        "0",
        "--max-new-tokens",
        "12",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [s["prompt"] for s in data["samples"]] == ["my old dog", "a cat", "the quick fox"]
    expected = generate(loaded, ["my old dog", "a cat", "the quick fox"], greedy(12))
    assert [s["completion"] for s in data["samples"]] == [s.completion for s in expected.samples]
    assert list(data) == ["model", "seed", "samples", "stats"] and data["model"] == expected.model
    assert expected.model == str(loaded.source)
    assert data["stats"]["new_tokens"] == sum(len(s["tokens"]) for s in data["samples"]) > 0
    assert data["stats"]["tokens_per_sec"] > 0
    assert (data["stats"]["threads"], data["stats"]["threads_reason"]) == (1, "OMP_NUM_THREADS")
    pinned = run_cli(
        "generate",
        str(run_dir / "run"),
        "--prompt",
        "a",
        "--max-new-tokens",
        "2",
        "--threads",
        "1",
        "--json",
    )
    assert json.loads(pinned.stdout)["stats"]["threads_reason"] == "--threads"


def test_cli_default_threads_are_the_idle_cores(run_dir):
    """Without OMP_NUM_THREADS or --threads, the thread count comes from the idle cores."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tinyllama_cli",
            "generate",
            str(run_dir / "run"),
            "--prompt",
            "a",
            "--max-new-tokens",
            "2",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)["stats"]
    assert stats["threads"] >= 1 and "CPUs idle" in stats["threads_reason"]


def test_cli_streams_text_and_reports_speed(run_dir, loaded):
    result = run_cli(
        "generate",
        str(run_dir / "run"),
        "--prompt",
        "a cat",
        "--temperature",
        "0",
        "--max-new-tokens",
        "12",
    )
    assert result.returncode == 0, result.stderr
    expected = generate(loaded, ["a cat"], greedy(12)).samples[0]
    assert result.stdout == "a cat" + expected.completion + "\n"
    assert "tokens/s" in result.stderr
    quiet = run_cli(
        "generate",
        str(run_dir / "run"),
        "--prompt",
        "a cat",
        "--temperature",
        "0",
        "--max-new-tokens",
        "12",
        "--quiet",
    )
    assert quiet.stdout == result.stdout and quiet.stderr == ""


def test_cli_user_errors_exit_2(run_dir):
    result = run_cli("generate", str(run_dir / "nowhere"), "--prompt", "x")
    assert (
        result.returncode == 2
        and "does not exist" in result.stderr
        and "Traceback" not in result.stderr
    )
    result = run_cli("generate", str(run_dir / "run"), "--prompt", "x", "--top-p", "1.5")
    assert result.returncode == 2 and "--top-p" in result.stderr
    result = run_cli("generate", str(run_dir / "run"))
    assert result.returncode == 2 and "no prompt given" in result.stderr
    result = run_cli("generate", str(run_dir / "run"), "--prompt", "x", "--threads", "0")
    assert result.returncode == 2 and "--threads must be at least 1" in result.stderr


def test_cli_speculative_decoding_keeps_greedy_text_and_reports_acceptance(run_dir, loaded):
    args = [
        "generate",
        str(run_dir / "run"),
        "-p",
        "the quick fox",
        "-p",
        "a cat",
        "--temperature",
        "0",
        "-n",
        "16",
        "--json",
    ]
    plain = json.loads(run_cli(*args).stdout)
    assert plain["stats"]["speculation"] is None
    for extra, method in [
        (["--draft", str(run_dir / "hf"), "--draft-tokens", "3"], "draft"),
        (["--prompt-lookup", "3"], "prompt-lookup"),
    ]:
        result = run_cli(*args, *extra)
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert [s["tokens"] for s in data["samples"]] == [s["tokens"] for s in plain["samples"]]
        stats = data["stats"]
        assert stats["speculation"] == method and stats["draft_tokens"] == 3
        assert 0 <= stats["accepted"] <= stats["drafted"]
    # The same weights as the draft (from the HF copy): every drafted token is accepted.
    drafted = json.loads(run_cli(*args, "--draft", str(run_dir / "hf")).stdout)["stats"]
    assert (
        drafted["acceptance_rate"] == 1.0
        and drafted["target_forwards"] < plain["stats"]["new_tokens"]
    )


def test_cli_draft_with_another_vocabulary_or_flags_exit_2(run_dir, tmp_path):
    from tinyllama_cli.model import Llama

    other = train_tokenizer(corpus(), VOCAB - 20, tmp_path / "other.model", num_threads=1)
    write_run_dir(Llama(CONFIG), other.path, tmp_path / "other")
    result = run_cli(
        "generate", str(run_dir / "run"), "-p", "a", "--draft", str(tmp_path / "other")
    )
    assert result.returncode == 2 and "another vocabulary" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    result = run_cli(
        "generate",
        str(run_dir / "run"),
        "-p",
        "a",
        "--draft",
        str(run_dir / "hf"),
        "--prompt-lookup",
        "2",
    )
    assert result.returncode == 2 and "pass one" in result.stderr


@pytest.mark.parametrize("prompts", [["a cat " * 60], ["a cat", "a cat " * 60]])
def test_cli_too_long_prompt_is_the_only_output(run_dir, prompts):
    """The prompt is checked before anything is printed: no echo of it before the error line."""
    args = [a for p in prompts for a in ("--prompt", p)]
    result = run_cli("generate", str(run_dir / "run"), *args, "--temperature", "0", "-n", "4")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and result.stdout == "", result.stdout
    assert len(lines) == 1 and f"prompt {len(prompts)} has" in lines[0] and "--truncate" in lines[0]


@pytest.mark.parametrize(
    "spelling, dtype",
    [
        ("auto", torch.float32),
        ("fp32", torch.float32),
        ("float32", torch.float32),
        ("bf16", torch.bfloat16),
        ("bfloat16", torch.bfloat16),
        ("fp16", torch.float16),
        ("float16", torch.float16),
    ],
)
def test_cli_dtype_takes_every_spelling(run_dir, monkeypatch, spelling, dtype):
    from typer.testing import CliRunner

    from tinyllama_cli import generate as gen
    from tinyllama_cli.cli import app

    seen = []

    def spy(*args, **kwargs):
        result = load_for_generation(*args, **kwargs)
        seen.append(result[0].model.output.weight.dtype)
        return result

    monkeypatch.setattr(gen, "load_for_generation", spy)
    result = CliRunner().invoke(
        app,
        [
            "generate",
            str(run_dir / "run"),
            "--prompt",
            "a cat",
            "-n",
            "3",
            "--temperature",
            "0",
            "--device",
            "cpu",
            "--dtype",
            spelling,
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert seen == [dtype] and len(json.loads(result.stdout)["samples"][0]["tokens"]) > 0
