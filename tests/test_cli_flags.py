"""pretrain/resume flags generated from TrainConfig's sections."""

from __future__ import annotations

from tinyllama_cli.cli_flags import train_flags, with_train_flags
from tinyllama_cli.config import Resume, section_fields, sections, train_fields


def test_one_flag_per_field_of_the_sections_in_order():
    params = train_flags(sections(Resume.CHANGE), panel="p")
    changeable = [n for n, f in train_fields().items() if f.resume is Resume.CHANGE]
    assert [p.name for p in params] == changeable and "seed" not in changeable
    flag = {p.name: p for p in params}
    assert (
        flag["max_steps"].annotation == (int | None) and flag["max_steps"].default.default is None
    )
    assert flag["tensorboard"].default.param_decls == ("--tensorboard/--no-tensorboard",)
    assert flag["tensorboard"].default.help.endswith(r"\[default: tensorboard]")
    assert flag["warmup_steps"].default.help == r"Linear warmup steps. \[default: 2000]"
    assert flag["data"].default.help.endswith("prepare-data`.")  # no default: nothing shown
    assert {p.default.rich_help_panel for p in params} == {"p"}


def test_the_command_gets_its_own_parameters_then_the_flags():
    import inspect

    @with_train_flags(("launch",), panel="p")
    def command(run_dir: str, **flags):
        return run_dir, flags

    names = list(inspect.signature(command).parameters)
    assert names[0] == "run_dir" and names[1:] == list(section_fields("launch"))
    assert command(run_dir="r", devices=2) == ("r", {"devices": 2})
