import pytest
import torch

from tinyllama_cli.config import PRESETS, ModelConfig, get_preset, load_yaml
from tinyllama_cli.errors import UserError
from tinyllama_cli.model import Llama


def test_tinyllama_preset_has_exact_parameter_count():
    config = get_preset("tinyllama-1.1b")
    assert config.num_params() == 1_100_048_384
    with torch.device("meta"):
        model = Llama(config)
    assert model.num_params() == 1_100_048_384


@pytest.mark.parametrize("name", list(PRESETS))
def test_analytic_param_count_matches_model(name):
    config = PRESETS[name]
    with torch.device("meta"):
        model = Llama(config)
    assert model.num_params() == config.num_params()
    assert model.num_params(include_embedding=False) == config.num_params(include_embedding=False)


def test_flops_per_token_gives_tinyllamas_mfu():
    config = get_preset("tinyllama-1.1b")
    flops = config.flops_per_token(2048)
    assert flops == 6 * (1_100_048_384 - 32000 * 2048) + 12 * 22 * 2048 * 2048
    mfu = 24_000 * flops / 312e12  # 24k tokens/s/GPU on an A100 (312 TFLOP/s bf16)
    assert round(mfu * 100, 1) == 56.3


def test_presets_cover_the_sizes_the_toolbox_needs():
    sizes = {name: c.num_params() for name, c in PRESETS.items()}
    assert 100e6 <= sizes["tinyllama-120m"] <= 140e6
    assert 15e6 <= sizes["cpu-bench"] <= 60e6
    assert PRESETS["cpu-bench"].vocab_size == 32000


def test_unknown_preset_names_the_choices():
    with pytest.raises(UserError, match="cpu-tiny"):
        get_preset("gpt-5")


def test_invalid_geometry_is_a_user_error():
    with pytest.raises(UserError, match="n_kv_head"):
        ModelConfig(n_head=32, n_kv_head=5)
    with pytest.raises(UserError, match="unknown model config field"):
        ModelConfig.from_dict({"n_layers": 3})


def test_yaml_errors_are_user_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_yaml(bad)
    with pytest.raises(UserError, match="does not exist"):
        load_yaml(tmp_path / "missing.yaml")
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(UserError, match="mapping"):
        load_yaml(listy)
