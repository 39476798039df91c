"""The example recipes load, and the 1.1B one is TinyLlama's recipe exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinyllama_cli.config import get_preset, load_train_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_tinyllama_recipe_is_exact():
    cfg, model = load_train_config(EXAMPLES / "tinyllama-1.1b.yaml", {})
    assert model is None and get_preset(cfg.model.model).num_params() == 1_100_048_384
    s, o, order = cfg.schedule, cfg.optimizer, cfg.data_order
    assert (s.lr, s.min_lr, s.warmup_steps) == (4e-4, 4e-5, 2000)
    assert (o.beta1, o.beta2, o.weight_decay, o.grad_clip) == (0.9, 0.95, 0.1, 1.0)
    assert (order.global_batch_size, order.seq_len, cfg.speed.micro_batch_size) == (1024, 2048, 8)
    assert cfg.launch.devices * cfg.launch.nodes == 16
    assert order.global_batch_size // (8 * 16) == 8  # accumulation
    assert cfg.training.max_steps == 1_430_512
    assert cfg.training.max_steps * 1024 * 2048 == pytest.approx(3.0e12, rel=1e-3)  # ~3T tokens
    assert order.mix == "slimpajama=0.693584,starcoder=0.306416"
    assert cfg.checkpointing.save_every == cfg.logging.eval_every == 5000


@pytest.mark.parametrize("name", ["tinyllama-120m.yaml", "cpu-small.yaml"])
def test_other_recipes_load(name):
    cfg, _ = load_train_config(EXAMPLES / name, {"data": "d", "out": "o"})
    assert get_preset(cfg.model.model).block_size >= (cfg.data_order.seq_len or 0)
    assert cfg.data_order.global_batch_size % cfg.speed.micro_batch_size == 0


def test_the_race_recipe_loads_and_its_commented_key_is_real(tmp_path):
    """examples/cpu-race.yaml (benchmarks/race.py) keeps every checkpoint, leaves --compile to
    auto, and its commented `num_threads` turns into a real setting once uncommented."""
    cfg, _ = load_train_config(EXAMPLES / "cpu-race.yaml", {"data": "d", "out": "o"})
    assert (cfg.training.max_steps, cfg.checkpointing.keep_last, cfg.speed.compile) == (
        150,
        0,
        None,  # left to auto: 150 x 4 micro batches stay eager
    )
    text = (EXAMPLES / "cpu-race.yaml").read_text()
    (tmp_path / "race.yaml").write_text(text.replace("# num_threads:", "num_threads:"))
    cfg, _ = load_train_config(tmp_path / "race.yaml", {"data": "d", "out": "o"})
    assert (cfg.launch.num_threads, cfg.speed.compile) == (2, None)
