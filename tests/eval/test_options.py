"""eval's flags checked where they are built, before any task or model is loaded."""

from __future__ import annotations

import pytest

from tinyllama_cli.errors import UserError
from tinyllama_cli.eval import EvalOptions, evaluate_checkpoint


def test_an_existing_output_needs_overwrite(tmp_path):
    output = tmp_path / "results.json"
    output.write_text("{}")
    with pytest.raises(
        UserError, match="already exists; choose another --output or pass --overwrite"
    ):
        evaluate_checkpoint(tmp_path / "no-model", "hellaswag", EvalOptions(output=str(output)))
    EvalOptions(output=str(output), overwrite=True).check()
    EvalOptions(output=str(tmp_path / "new.json")).check()


@pytest.mark.parametrize("limit, passed", [(None, None), (0.5, 0.5), (5.0, 5), (1, 1)])
def test_limit_from_one_up_is_a_count(limit, passed):
    kwargs = EvalOptions(limit=limit).evaluate_kwargs()
    assert kwargs["limit"] == passed and type(kwargs["limit"]) is type(passed)
    assert kwargs["baseline"] is True and kwargs["log_samples"] is False


def test_prompt_lookup_is_checked_before_loading(tmp_path):
    with pytest.raises(UserError, match="--prompt-lookup must be at least 1"):
        evaluate_checkpoint(tmp_path / "no-model", "hellaswag", EvalOptions(prompt_lookup=0))
    with pytest.raises(UserError, match="use --backend native"):
        evaluate_checkpoint(
            tmp_path / "no-model", "hellaswag", EvalOptions(prompt_lookup=3, backend="hf")
        )
    assert EvalOptions(prompt_lookup=3).evaluate_kwargs()["prompt_lookup"] == 3
    with pytest.raises(UserError, match="--compile speeds up the native backend"):
        evaluate_checkpoint(
            tmp_path / "no-model", "hellaswag", EvalOptions(compile=True, backend="hf")
        )
    assert EvalOptions(compile=True).evaluate_kwargs()["compile"] is True


def test_compile_mode_is_checked_before_loading_and_implies_compile(tmp_path):
    with pytest.raises(UserError, match="unknown --compile-mode 'fast'"):
        evaluate_checkpoint(tmp_path / "no-model", "hellaswag", EvalOptions(compile_mode="fast"))
    with pytest.raises(UserError, match="--compile-mode speeds up the native backend"):
        evaluate_checkpoint(
            tmp_path / "no-model",
            "hellaswag",
            EvalOptions(compile_mode="max-autotune", backend="hf"),
        )
    kwargs = EvalOptions(compile_mode="max-autotune").evaluate_kwargs()
    assert (kwargs["compile"], kwargs["compile_mode"]) == (True, "max-autotune")
    assert EvalOptions().evaluate_kwargs()["compile"] is False
