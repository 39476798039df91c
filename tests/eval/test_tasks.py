"""Task resolution: aliases and groups, --dataset arguments, --tasks-dir YAMLs."""

from __future__ import annotations

import json
import random

import pytest

from tests.eval.files import SEVEN, sentence
from tinyllama_cli.errors import UserError


def test_aliases_and_group_expand():
    from tinyllama_cli.eval import expand_tasks

    assert expand_tasks("arc_e,arc_c,obqa") == ["arc_easy", "arc_challenge", "openbookqa"]
    assert expand_tasks("tinyllama") == SEVEN
    assert expand_tasks("piqa,tinyllama,arc_e") == ["piqa"] + [t for t in SEVEN if t != "piqa"]
    with pytest.raises(UserError, match="no tasks"):
        expand_tasks(" , ")


def test_bad_dataset_arguments_are_user_errors(env, tmp_path):
    from tinyllama_cli.eval import evaluate, parse_datasets

    with pytest.raises(UserError, match="does not exist"):
        parse_datasets([f"piqa={tmp_path / 'nope.jsonl'}"])
    with pytest.raises(UserError, match="TASK=PATH"):
        parse_datasets(["piqa"])
    bad = tmp_path / "piqa.jsonl"
    bad.write_text(json.dumps({"question": "x"}) + "\n")
    with pytest.raises(UserError, match="piqa"):
        evaluate(env["run"], "piqa", datasets=[f"piqa={bad}"], bootstrap_iters=0)
    with pytest.raises(UserError, match="not in --tasks"):
        evaluate(env["run"], "piqa", datasets=[f"boolq={env['files']['boolq']}"], bootstrap_iters=0)


def test_tasks_dir_adds_a_custom_task(env, tmp_path):
    from tinyllama_cli.eval import evaluate

    tasks_dir = tmp_path / "tasks"
    tasks_dir.mkdir()
    data = tmp_path / "mine.jsonl"
    data.write_text(
        "".join(json.dumps({"q": sentence(random.Random(i)), "a": i % 2}) + "\n" for i in range(4))
    )
    (tasks_dir / "mine.yaml").write_text(
        f"task: my_yesno\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\n"
        'test_split: test\noutput_type: multiple_choice\ndoc_to_text: "{{q}}?"\ndoc_to_target: a\n'
        'doc_to_choice: ["no", "yes"]\nmetric_list:\n  - metric: acc\n'
    )
    result = evaluate(env["run"], "my_yesno", tasks_dir=tasks_dir, bootstrap_iters=0)
    assert (
        result.scores["my_yesno"][0] == "acc"
        and result.results["n-samples"]["my_yesno"]["effective"] == 4
    )
