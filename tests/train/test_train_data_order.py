"""The deterministic sample order: a pure function of (seed, k, manifest), independent of
workers."""

import numpy as np
import pytest

from tinyllama_cli.data.dataset import PretrainData
from tinyllama_cli.data.mixture import Mixture, block_quotas, feistel_permutation, parse_mix
from tinyllama_cli.errors import UserError


@pytest.mark.parametrize("n", [1, 2, 3, 17, 1000, 4097])
def test_feistel_is_a_permutation(n):
    out = feistel_permutation(np.arange(n), n, key=12345)
    assert sorted(out.tolist()) == list(range(n))
    if n > 16:  # and actually shuffles, differently per key
        assert out.tolist() != list(range(n))
        assert feistel_permutation(np.arange(n), n, key=54321).tolist() != out.tolist()


def test_quotas_sum_and_follow_weights():
    q = block_quotas([0.693584, 0.306416], 10_000)
    assert q.tolist() == [6936, 3064]
    q = block_quotas([1 / 3] * 3, 10)
    assert q.sum() == 10 and max(q) - min(q) == 1


def test_mixture_counts_within_source_are_consecutive():
    mix = Mixture([0.7, 0.3], seed=3, block=100)
    seen = {0: [], 1: []}
    for k in range(1000):
        s, j = mix.locate(k)
        seen[s].append(j)
    assert seen[0] == list(range(700)) and seen[1] == list(range(300))


def test_parse_mix_errors():
    tokens = {"web": 100, "code": 50, "empty": 0}
    assert parse_mix(None, tokens) == pytest.approx({"web": 2 / 3, "code": 1 / 3})
    assert parse_mix("web=3,code=1", tokens) == pytest.approx({"web": 0.75, "code": 0.25})
    with pytest.raises(UserError, match="does not have"):
        parse_mix("books=1", tokens)
    with pytest.raises(UserError, match="NAME=WEIGHT"):
        parse_mix("web", tokens)
    with pytest.raises(UserError, match="no training tokens"):
        parse_mix("empty=1,web=1", tokens)


def test_samples_are_pure_and_cover_each_window_once_per_epoch(token_data):
    data = PretrainData(token_data, seq_len=32, seed=7, mix="web=1")
    n = data.windows[0]
    again = PretrainData(token_data, seq_len=32, seed=7, mix="web=1")
    windows = []
    for k in range(n):
        sample = data.sample(k)
        assert sample.shape == (33,)
        np.testing.assert_array_equal(sample, again.sample(k))
        windows.append(tuple(sample[:4]))
    stream = data.streams[0].read(0, data.streams[0].n_tokens)
    expected = {tuple(stream[w * 32 : w * 32 + 4]) for w in range(n)}
    assert set(windows) == expected and len(windows) == n  # every window once, none twice
    # The next epoch is another order of the same windows.
    second = [tuple(data.sample(k)[:4]) for k in range(n, 2 * n)]
    assert set(second) == expected and second != windows
    assert not np.array_equal(
        PretrainData(token_data, 32, seed=8, mix="web=1").sample(0), data.sample(0)
    ) or not np.array_equal(
        PretrainData(token_data, 32, seed=8, mix="web=1").sample(1), data.sample(1)
    )


def test_targets_are_inputs_shifted_and_in_vocab(token_data):
    data = PretrainData(token_data, seq_len=16, seed=1)
    x, y = data.batch(10, 4)
    assert x.shape == y.shape == (4, 16)
    assert (x[:, 1:] == y[:, :-1]).all()
    assert int(y.max()) < data.manifest.vocab_size


def test_validation_padding_rows_are_ignored(token_data):
    data = PretrainData(token_data, seq_len=16, seed=1)
    windows = data.validation_windows(5)
    assert sum(len(w) for w in windows.values()) == 5 and set(windows) == {"code", "web"}
    _, y = data.validation_batch("web", windows["web"][:2], 4)
    assert (y[2:] == -100).all() and (y[:2] != -100).all()


def test_validation_windows_follow_the_mix_and_span_the_stream(token_data):
    """Shares by the mix weights (a source short of its share gives the rest away), windows
    spread over the whole val stream by a seeded permutation, the same set on every call."""
    data = PretrainData(token_data, seq_len=16, seed=1, mix="web=0.75,code=0.25")
    n = {
        name: data.val_streams[data.val_names.index(name)].num_windows(16)
        for name in ("web", "code")
    }
    assert n == {"web": 52, "code": 27}
    windows = data.validation_windows(40)
    assert {k: len(v) for k, v in windows.items()} == {"web": 30, "code": 10}
    assert max(windows["web"]) > 40 and windows["web"] != list(range(30))  # not just the first ones
    assert all(len(set(v)) == len(v) and max(v) < n[k] for k, v in windows.items())
    assert data.validation_windows(40) == windows
    assert (
        PretrainData(token_data, 16, seed=2, mix="web=0.75,code=0.25").validation_windows(40)
        != windows
    )
    everything = data.validation_windows(1000)  # more than there is: every window once
    assert {k: sorted(v) for k, v in everything.items()} == {k: list(range(n[k])) for k in n}
    only_web = PretrainData(token_data, seq_len=16, seed=1, mix="web=1,code=0").validation_windows(
        8
    )
    assert set(only_web) == {"web"} and len(only_web["web"]) == 8
