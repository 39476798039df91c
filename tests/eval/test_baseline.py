"""The unigram baseline: its log-likelihoods by hand, counts spread over shards and mixed by the
run's weights, and a note (not an error) where the training data cannot be found."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.eval.files import write_data_dir
from tinyllama_cli.config import dump_yaml
from tinyllama_cli.errors import UserError


def test_unigram_lm_log_likelihoods_by_hand(unigram_env, env):
    """The baseline LM's numbers: sum of smoothed log-frequencies, whatever the context, on the
    same continuation tokens as NativeLM's; rolling = every token of the text."""
    from lm_eval.api.instance import Instance

    from tinyllama_cli.eval.baseline import UnigramLM, count_unigrams, find_training_data
    from tinyllama_cli.eval.native_lm import NativeLM
    from tinyllama_cli.load import load_model

    loaded = load_model(unigram_env["run"])
    training, note = find_training_data(loaded.source, loaded.kind, loaded.tokenizer)
    assert note == "" and training.weights == {"a": 0.75, "b": 0.25}
    lm = UnigramLM(count_unigrams(training, 320), loaded.tokenizer, 128)
    space, no = math.log(2001 / 6320), math.log(501 / 6320)
    reqs = [
        Instance("loglikelihood", {}, (ctx, " no"), 0)
        for ctx in ("the man cooks", "rain?", "a dog")
    ]
    assert [ll for ll, _ in lm.loglikelihood(reqs)] == pytest.approx([space + 2 * no] * 3)
    native = NativeLM(loaded.model, loaded.tokenizer)
    assert [native._encode_pair(*r.args) for r in reqs] == [lm._encode_pair(*r.args) for r in reqs]
    assert lm.loglikelihood([Instance("loglikelihood", {}, ("x", " no"), 0)])[0][1] is False
    rolled = lm.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, ("no no",), 0)])
    bos = math.log(
        1 / 6320
    )  # the rolling windows score the BOS of tok_encode too, as NativeLM's do
    assert rolled == pytest.approx([bos + 2 * (space + 2 * no)])


def test_unigram_counts_spread_over_shards_and_follow_the_mix(env, tmp_path):
    from tinyllama_cli.data.dataset import Manifest
    from tinyllama_cli.eval.baseline import TrainingData, count_unigrams, spread_blocks

    data = write_data_dir(
        tmp_path / "data",
        env["tokenizer"],
        {"a": [[10] * 1000, [11] * 1000, [12] * 1000], "b": [[20] * 3000]},
    )
    training = TrainingData(Manifest.load(data), {"a": 0.5, "b": 0.5})
    # 300 tokens of each source in 3 blocks of 100, spread: one block from each of a's shards.
    assert spread_blocks(3000, 300, 100) == [(0, 100), (1450, 100), (2900, 100)]
    small = count_unigrams(training, 320, budget=600, block=100)
    assert small.tokens_counted == 600
    expected = {10: 100, 11: 100, 12: 100, 20: 300}
    for token, count in expected.items():
        assert small.logprobs[token] == pytest.approx(math.log((count + 1) / (600 + 320)))
    assert small.logprobs[30] == pytest.approx(math.log(1 / 920))
    # Everything counted when it fits; the mix (not the token counts) weighs the sources.
    full = count_unigrams(
        TrainingData(Manifest.load(data), {"a": 0.9, "b": 0.1}), 320, budget=10**9
    )
    assert full.tokens_counted == 6000
    assert full.logprobs[10] == pytest.approx(math.log((0.3 * 6000 + 1) / 6320))
    assert full.logprobs[20] == pytest.approx(math.log((0.1 * 6000 + 1) / 6320))
    assert float(np.exp(full.logprobs).sum()) == pytest.approx(1.0)
    wrong = write_data_dir(tmp_path / "wrong", env["tokenizer"], {"a": [[5, 400, 7]]})
    with pytest.raises(UserError, match="token id 400, outside the model's vocabulary of 320"):
        count_unigrams(TrainingData(Manifest.load(wrong), None), 320)


def test_no_training_data_means_a_note_not_a_baseline(env, unigram_env, tmp_path):
    from tinyllama_cli.eval import evaluate
    from tinyllama_cli.eval.baseline import find_training_data
    from tinyllama_cli.load import load_model

    result = evaluate(env["run"], "tiny_mc", tasks_dir=unigram_env["tasks"], bootstrap_iters=0)
    assert result.baseline.scores == {} and "names no training data" in result.baseline.note
    assert result.stderr == {"tiny_mc": None}  # bootstrap_iters=0: lm-eval computes none
    loaded = load_model(unigram_env["run"])
    moved = tmp_path / "run"
    (moved / "checkpoints").mkdir(parents=True)
    dump_yaml({"data": {"dir": str(tmp_path / "gone")}}, moved / "config.yaml")
    _, note = find_training_data(moved / "checkpoints" / "step-1", "native", loaded.tokenizer)
    assert "gone" in note and str(tmp_path / "gone") in note
    _, note = find_training_data(tmp_path, "hf", loaded.tokenizer)
    assert "Hugging Face" in note
    manifest = json.loads((unigram_env["data"] / "manifest.json").read_text())
    manifest["tokenizer"]["sha256"] = "0" * 64  # data written with another tokenizer
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "manifest.json").write_text(json.dumps(manifest))
    dump_yaml({"data": {"dir": str(tmp_path / "other")}}, moved / "config.yaml")
    _, note = find_training_data(moved / "checkpoints" / "step-1", "native", loaded.tokenizer)
    assert "another tokenizer" in note
