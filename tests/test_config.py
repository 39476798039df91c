import pytest
import torch
import yaml

from tinyllama_cli.config import (
    PARSERS,
    PRESETS,
    ModelConfig,
    Resume,
    TrainConfig,
    fields_kept_on_resume,
    get_preset,
    load_train_config,
    load_yaml,
    section_fields,
    sections,
    train_fields,
)
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


# --- TrainConfig: sections, flat names, parsing --------------------------------------------


def test_train_config_sections_hold_every_field_once_by_its_flat_name():
    names = list(train_fields())
    assert len(names) == len(set(names)) == 56  # 43 + lr schedule (5) + downstream eval (5) + 3
    assert list(TrainConfig().to_dict()) == names
    assert [n for s in sections() for n in section_fields(s)] == names
    cfg = TrainConfig.of(lr=1e-3, devices=2, precision="bfloat16", mix="a=1")
    assert (cfg.schedule.lr, cfg.launch.devices, cfg.speed.precision, cfg.data_order.mix) == (
        1e-3,
        2,
        "bf16",
        "a=1",
    )
    assert cfg.replace(seq_len=64).data_order.seq_len == 64 and cfg.data_order.seq_len is None
    assert TrainConfig.of(**cfg.to_dict()) == cfg
    with pytest.raises(TypeError, match="learning_rate"):
        TrainConfig.of(learning_rate=1.0)


def test_what_resume_keeps_follows_from_the_sections():
    """The model, the run dir and the data order are a run's own; launch fields never are."""
    assert sections(Resume.KEEP) == ("run", "model", "data_order")
    assert set(fields_kept_on_resume()) == {
        "out",
        "overwrite",
        "model",
        "vocab_size",
        "init_from",
        "seed",
        "mix",
        "seq_len",
        "global_batch_size",
        "global_batch_tokens",
    }
    assert set(section_fields("launch")) == {
        "accelerator",
        "devices",
        "nodes",
        "node_rank",
        "rdzv_endpoint",
        "master_addr",
        "master_port",
        "num_threads",
        "dp_shard",
    }
    assert all(train_fields()[n].resume is Resume.CHANGE for n in section_fields("launch"))


def test_every_field_type_has_a_parser():
    assert {f.kind for f in train_fields().values()} == set(PARSERS)
    assert train_fields()["max_steps"].type_text == "int | None"


@pytest.mark.parametrize(
    "name, value, parsed",
    [
        ("lr", "4e-4", 4e-4),
        ("max_steps", "1e3", 1000),
        ("max_steps", 2.0, 2),
        ("tensorboard", "no", False),
        ("compile", "Yes", True),
        ("wandb", True, True),
        ("mix", {"web": 3, "code": 1}, "web=3,code=1"),
        ("vocab_size", None, None),
        ("accelerator", "cpu", "cpu"),
        ("peak_flops", 1, 1.0),
    ],
)
def test_yaml_values_are_parsed_by_their_fields_type(tmp_path, name, value, parsed):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({name: value}, sort_keys=False))
    got = load_train_config(path, {})[0].to_dict()[name]
    assert got == parsed and type(got) is type(parsed)


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("max_steps", 2.5, "max_steps has value 2.5, which is not a valid int | None"),
        ("tensorboard", "maybe", "tensorboard has value 'maybe', which is not a valid bool"),
        ("lr", None, "lr cannot be empty"),
        (
            "seed",
            "x",
            "seed has value 'x', which is not a valid int; fix it in the YAML or the flag",
        ),
    ],
)
def test_bad_yaml_values_name_the_field_and_its_type(tmp_path, name, value, message):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({name: value}, sort_keys=False))
    with pytest.raises(UserError, match=message.replace("|", r"\|")):
        load_train_config(path, {})
