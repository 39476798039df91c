"""decode_step.py: the static-cache decode step, eager and compiled, against generate's own loop.

The model is test_generate's (trained a few dozen steps, so greedy choices are clear-cut);
compiling it (a real inductor compile, C++ compiler included) takes seconds here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from tests.test_generate import PROMPTS, greedy, loaded, run_dir  # noqa: F401 (fixtures)
from tinyllama_cli.decode_step import CompiledDecoder, cache_length
from tinyllama_cli.generate import generate_tokens


def prompt_ids(loaded_model) -> list[list[int]]:
    tokenizer = loaded_model.tokenizer
    return [[tokenizer.bos_id, *tokenizer.encode(p)] for p in PROMPTS]


def test_cache_length_buckets_by_powers_of_two_within_the_context():
    assert [cache_length(n, 2048) for n in (1, 256, 257, 600, 2048)] == [256, 256, 512, 1024, 2048]
    assert cache_length(300, 400) == 400  # capped at the context
    assert cache_length(50, 96) == 96  # a context under 256 is one bucket


@pytest.mark.parametrize("width", [1, 3])
def test_static_step_gives_the_eager_logits_with_padding(loaded, width):  # noqa: F811
    """Teacher-forced: the same tokens through the static step (not compiled), `width` at a time
    (the last chunk shorter), and through the model's own cache, a left-padded batch of two;
    fp32 logits agree to rounding."""
    model = loaded.model
    rows = [[1, 17, 40, 9, 33, 5], [1, 22, 8]]
    tokens = torch.zeros(2, 6, dtype=torch.long)
    key_mask = torch.ones(2, 6, dtype=torch.bool)
    tokens[0], tokens[1, 3:] = torch.tensor(rows[0]), torch.tensor(rows[1])
    key_mask[1, :3] = False
    follow = torch.randint(3, model.config.vocab_size, (2, 10))
    total = 6 + follow.size(1)
    full_mask = torch.cat([key_mask, torch.ones(2, follow.size(1), dtype=torch.bool)], 1)

    def run(step=None):
        logits = []
        with torch.inference_mode():
            model(tokens, input_pos=0, key_mask=key_mask)
            for i in range(0, follow.size(1), width):
                pos, chunk = 6 + i, follow[:, i : i + width]
                forward = step or model
                mask = full_mask[:, : pos + chunk.size(1)]
                logits.append(forward(chunk, input_pos=pos, key_mask=mask))
        model.clear_kv_cache()
        return torch.cat(logits, dim=1)

    decoder = CompiledDecoder(model, compile=False)
    with torch.inference_mode():
        step = decoder.begin(2, total, key_mask, width)
    static = run(step)
    with torch.inference_mode():
        model.setup_kv_cache(2, total)
    eager = run()
    assert static.shape == eager.shape == (2, follow.size(1), model.config.vocab_size)
    torch.testing.assert_close(static, eager, rtol=1e-5, atol=1e-5)


def test_compiled_decoder_keeps_greedy_text_and_compiles_each_shape_once(loaded):  # noqa: F811
    """A padded batch of four, then a single prompt, then both again with other lengths: the
    tokens are eager decoding's, one graph per (batch, cache length) and none made twice."""
    from torch._dynamo.utils import counters

    model, ids = loaded.model, prompt_ids(loaded)
    decoder = CompiledDecoder(model)
    for batch in (ids, ids[:1], ids[1:3] + ids[:2], ids[3:]):
        for n in (12, 20):
            graphs, made = counters["stats"]["unique_graphs"], len(decoder.shapes)
            compiled = generate_tokens(model, batch, greedy(n), decoder=decoder)
            if len(decoder.shapes) == made:  # a shape met before: dynamo traced nothing new
                assert counters["stats"]["unique_graphs"] == graphs, (len(batch), n)
            eager = generate_tokens(model, batch, greedy(n))
            assert compiled.tokens == eager.tokens, (len(batch), n)
            assert compiled.finish_reasons == eager.finish_reasons
    # batch 4, batch 1, and no other: context 96 is one cache length for every call
    assert [(s.batch, s.length, s.width) for s in decoder.shapes] == [(4, 96, 1), (1, 96, 1)]
    assert all(s.seconds > 0 for s in decoder.shapes)


def test_compiled_speculative_steps_keep_greedy_text(loaded):  # noqa: F811
    """Prompt lookup's verify steps (up to k + 1 = 4 tokens, fewer when the lookup finds less)
    in one compiled graph of width 4: plain eager greedy's tokens, the last steps near the end
    of the context included (there the step falls back to the model, over the same cache)."""
    from tinyllama_cli.speculative import PromptLookup

    model, ids = loaded.model, prompt_ids(loaded)
    decoder = CompiledDecoder(model)
    for batch, n in ((ids, 30), (ids[:1], 90)):  # 90: runs into the context's end (96)
        spec = generate_tokens(model, batch, greedy(n), decoder=decoder, drafter=PromptLookup(3))
        plain = generate_tokens(model, batch, greedy(n))
        assert spec.tokens == plain.tokens, (len(batch), n)
        assert spec.accepted > 0  # drafts were verified several tokens a step
    assert {s.width for s in decoder.shapes} == {4}


def test_max_autotune_freezes_the_weights_and_keeps_greedy_text(loaded):  # noqa: F811
    """--compile-mode max-autotune: plain steps and prompt lookup's verify steps give eager
    greedy's tokens, and on CPU the products really ran in inductor's C++ GEMM templates over
    frozen weights (torch 2.13 ignores `freezing` given as a compile option: this catches it)."""
    from torch._dynamo.utils import counters

    from tinyllama_cli.speculative import PromptLookup

    model, ids = loaded.model, prompt_ids(loaded)
    templates = counters["inductor"]["cpp_templated_kernel_counter"]
    decoder = CompiledDecoder(model, mode="max-autotune")
    for drafter in (None, PromptLookup(3)):
        tuned = generate_tokens(model, ids[:1], greedy(40), decoder=decoder, drafter=drafter)
        plain = generate_tokens(model, ids[:1], greedy(40))
        assert tuned.tokens == plain.tokens
    assert [s.width for s in decoder.shapes] == [1, 4]
    assert counters["inductor"]["cpp_templated_kernel_counter"] > templates


def test_more_decode_graphs_than_dynamos_recompile_limit(loaded):  # noqa: F811
    """Every decode step is one code object to dynamo, which refuses a ninth graph of one code
    object by default: a long-lived process (eval over many batch sizes) must not hit that.
    With the limit set to 2, three batch sizes still decode (and give eager's tokens)."""
    import torch._dynamo.config as dynamo_config

    torch._dynamo.reset()  # this process's earlier decode graphs are not counted against it
    model, ids = loaded.model, prompt_ids(loaded)
    decoder = CompiledDecoder(model)
    with dynamo_config.patch(recompile_limit=2, accumulated_recompile_limit=2):
        for batch in (ids[:1], ids[:2], ids[:3]):
            compiled = generate_tokens(model, batch, greedy(6), decoder=decoder)
            assert compiled.tokens == generate_tokens(model, batch, greedy(6)).tokens
    assert [s.batch for s in decoder.shapes] == [1, 2, 3]


def test_unknown_compile_mode_is_refused():
    from tinyllama_cli.errors import UserError

    with pytest.raises(UserError, match="max-autotune"):
        CompiledDecoder(torch.nn.Linear(1, 1), mode="fast")  # type: ignore[arg-type]


def _generate(run_dir, cache_dir, *flags):  # noqa: F811 (a path, not the fixture)
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache_dir)}
    proc = subprocess.run(
        [sys.executable, "-m", "tinyllama_cli", "generate", str(run_dir / "run")]
        + ["--prompt", "the quick fox", "--prompt", "a cat", "--temperature", "0"]
        + ["--max-new-tokens", "16", "--json", "--threads", "1", *flags],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.slow
def test_cli_compile_is_cached_on_disk_and_keeps_the_text(run_dir, tmp_path):  # noqa: F811
    """`generate --compile` twice with one inductor cache dir: the first compiles from scratch,
    the second finds the graph on disk (and starts faster); both print eager's text."""
    cache = tmp_path / "inductor"
    eager = _generate(run_dir, cache)
    first = _generate(run_dir, cache, "--compile")
    second = _generate(run_dir, cache, "--compile")
    texts = [[s["completion"] for s in r["samples"]] for r in (eager, first, second)]
    assert texts[0] == texts[1] == texts[2]
    assert eager["stats"]["compiled"] is None
    (made_first,), (made_second,) = first["stats"]["compiled"], second["stats"]["compiled"]
    assert (made_first["batch"], made_first["length"], made_first["width"]) == (2, 96, 1)
    assert (made_first["cache_hit"], made_second["cache_hit"]) == (False, True)
    assert made_second["seconds"] < made_first["seconds"]


def test_cli_compile_without_a_cpp_compiler_exits_2(run_dir, tmp_path):  # noqa: F811
    """No g++/clang++/c++ on PATH and no $CXX: one line naming the fix, before the slow load."""
    env = {k: v for k, v in os.environ.items() if k != "CXX"}
    proc = subprocess.run(
        [sys.executable, "-m", "tinyllama_cli", "generate", str(run_dir / "run")]
        + ["--prompt", "a", "--compile", "--device", "cpu"],
        check=False,
        capture_output=True,
        text=True,
        env={**env, "PATH": str(tmp_path)},
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert "needs a C++ compiler" in proc.stderr and "Traceback" not in proc.stderr
