"""data/dataset.py at TinyLlama's file counts: thousands of shards under a low `ulimit -n`."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.train.tokendata import make_tokenizer, write_token_data
from tinyllama_cli.data.dataset import OpenShards, PretrainData, TokenStream


@pytest.fixture(scope="module")
def many_shards(tmp_path_factory):
    """Two sources in 1,300 shards of 50 tokens (windows of 33 tokens straddle shards often)."""
    root = tmp_path_factory.mktemp("shards")
    tok = make_tokenizer(root / "tok.model")
    return write_token_data(
        root / "data",
        tok,
        {"web": {"train": 45000, "val": 500}, "code": {"train": 20000, "val": 200}},
        shard_tokens=50,
    )


def concatenated(data, source: str, split: str) -> np.ndarray:
    stream = TokenStream(PretrainData(data, 32, 0).manifest, source, split)
    return np.concatenate([np.fromfile(f, dtype=stream.dtype) for f in stream.files]).astype(
        np.int64
    )


def test_reads_across_thousands_of_shards_equal_the_concatenated_stream(many_shards):
    data = PretrainData(many_shards, 32, seed=0)
    assert sum(len(s.files) for s in data.streams) >= 1300
    whole = {name: concatenated(many_shards, name, "train") for name in data.names}
    shards = OpenShards(capacity=8)
    streams = {name: TokenStream(data.manifest, name, "train", shards) for name in data.names}
    rng = np.random.default_rng(0)
    for _ in range(500):
        name = data.names[int(rng.integers(len(data.names)))]
        start = int(rng.integers(0, len(whole[name]) - 100))
        assert np.array_equal(streams[name].read(start, 100), whole[name][start : start + 100])
        assert shards.open_count() <= 8
    shards.close()
    assert shards.open_count() == 0


def test_a_truncated_shard_is_one_clear_error(many_shards, tmp_path):
    from tinyllama_cli.errors import UserError

    shards = OpenShards()
    path = tmp_path / "short.bin"
    np.arange(10, dtype=np.uint16).tofile(path)
    with pytest.raises(UserError, match="ended after 20 bytes, the manifest implies at least 40"):
        shards.read(path, 0, 40)


def test_training_over_1300_shards_under_ulimit_n_100(many_shards, tmp_path):
    """Every step samples windows from all over both sources; with one descriptor per shard
    touched, this run opens >1000 files within a few steps and dies at a limit of 100."""
    code = textwrap.dedent(f"""
        import resource
        resource.setrlimit(resource.RLIMIT_NOFILE, (100, 100))
        from tinyllama_cli.config import TrainConfig
        from tinyllama_cli.train import launch
        from tinyllama_cli.data.dataset import SHARDS
        launch.pretrain(TrainConfig.of(data={str(many_shards)!r}, out={str(tmp_path / "run")!r},
                        model="cpu-tiny", seq_len=32, micro_batch_size=16, global_batch_size=64,
                        max_steps=6, warmup_steps=1, log_every=1, save_every=3, eval_every=3,
                        eval_samples=16, num_threads=1, tensorboard=False, precision="fp32"))
        print("open shards", SHARDS.open_count())
    """)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=300
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "open shards" in out.stdout
    assert int(out.stdout.split("open shards")[1].split()[0]) <= 64
    assert (tmp_path / "run" / "checkpoints" / "step-00000006").is_dir()
