"""The table's numbers: TinyLlama's metric per task, lm-eval's standard errors, chance levels,
the unigram baseline's scores and `summary` (--json)."""

from __future__ import annotations

import json
import math

import pytest

from tests.eval.files import SEVEN


def test_table_scores_use_tinyllamas_metric_per_task(both_backends):
    native, _ = both_backends
    assert {t: m for t, (m, _) in native.scores.items()} == {
        "hellaswag": "acc_norm",
        "openbookqa": "acc_norm",
        "winogrande": "acc",
        "arc_challenge": "acc_norm",
        "arc_easy": "acc_norm",
        "boolq": "acc",
        "piqa": "acc_norm",
    }
    assert native.average == pytest.approx(sum(v for _, v in native.scores.values()) / 7)
    assert native.step == 20 and native.tokens_seen == 20 * 4096  # the run dir's newest checkpoint


def test_stderr_and_chance_of_the_seven_tasks(both_backends):
    """lm-eval's standard error of the mean of n = 3 per-document 0/1 scores, sqrt(p(1-p)/(n-1)),
    for every task; chance = 1/choices (4 for hellaswag, arc and obqa here, 2 for the others)."""
    native, hf = both_backends
    for task, (_, p) in native.scores.items():
        assert native.stderr[task] == pytest.approx(math.sqrt(p * (1 - p) / 2)), task
        assert hf.stderr[task] == pytest.approx(native.stderr[task])
    assert any(se > 0 for se in native.stderr.values())
    four = {"hellaswag", "openbookqa", "arc_challenge", "arc_easy"}
    assert native.chance == {t: pytest.approx(0.25 if t in four else 0.5) for t in SEVEN}
    assert native.reference_average(native.chance) == pytest.approx((4 * 0.25 + 3 * 0.5) / 7)
    assert native.baseline.note and not native.baseline.scores  # the fixture run names no data


def test_chance_stderr_and_unigram_baseline_by_hand(unigram_env):
    """Unigram p(t) = (c(t) + 1) / (N + V), N = 6000 tokens counted, V = 320, effective counts
    mixed 0.75/0.25: c(▁) = 2000, c(y) = c(es) = 1500, c(n) = c(o) = 500, others 0. So
    ll(yes) = -4.03, ll(no) = -6.22, ll(yes no) = -10.25, any choice with an unseen piece < -8.7:
    acc picks no, yes, no -> 2 of 3 right; acc_norm (ll / characters) picks "yes no" (-1.71 vs
    -3.11), yes, no -> 1 of 3. Both standard errors: sqrt(p (1 - p) / (n - 1)) = 1/3."""
    from tinyllama_cli.eval import evaluate, summary

    result = evaluate(unigram_env["run"], "tiny_mc", tasks_dir=unigram_env["tasks"])
    assert result.chance == {"tiny_mc": pytest.approx(13 / 36)}
    metric, p = result.scores["tiny_mc"]
    assert metric == "acc_norm"
    assert result.stderr["tiny_mc"] == pytest.approx(
        math.sqrt(p * (1 - p) / 2)
    )  # lm-eval's, not N/A

    base = result.baseline
    assert base is not None and base.note == "" and base.tokens_counted == 6000
    assert base.scores == {"tiny_mc": ("acc_norm", pytest.approx(1 / 3))}
    assert base.results["results"]["tiny_mc"]["acc,none"] == pytest.approx(2 / 3)
    assert base.stderr["tiny_mc"] == pytest.approx(1 / 3) and base.stderr["tiny_mc"] > 0
    assert base.results["results"]["tiny_mc"]["acc_stderr,none"] == pytest.approx(1 / 3)

    out = summary(result)
    assert out["scores"]["tiny_mc"] == {
        "metric": "acc_norm",
        "value": p,
        "stderr": result.stderr["tiny_mc"],
        "chance": pytest.approx(13 / 36),
        "unigram": pytest.approx(1 / 3),
    }
    assert out["chance_avg"] == pytest.approx(13 / 36)
    assert (
        out["unigram"]["avg"] == pytest.approx(1 / 3) and out["unigram"]["tokens_counted"] == 6000
    )
    json.dumps(out)  # --json prints it
    assert result.to_dict() == out


def _group_tasks_dir(tmp_path, env, weight_by_size: bool):
    """A group of two local multiple-choice tasks (3 and 5 documents, 2 and 4 choices), as
    lm-eval writes mmlu: `aggregate_metric_list` over the members."""
    import random

    from tests.eval.files import sentence

    tasks_dir = tmp_path / "tasks"
    tasks_dir.mkdir()
    for name, n, choices in (("mine_two", 3, 2), ("mine_four", 5, 4)):
        data = tmp_path / f"{name}.jsonl"
        data.write_text(
            "".join(
                json.dumps({"q": sentence(random.Random(i)), "a": i % choices}) + "\n"
                for i in range(n)
            )
        )
        (tasks_dir / f"{name}.yaml").write_text(
            f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\n"
            'test_split: test\noutput_type: multiple_choice\ndoc_to_text: "{{q}}?"\n'
            f"doc_to_target: a\ndoc_to_choice: {json.dumps([f'c{k}' for k in range(choices)])}\n"
            "metric_list:\n  - metric: acc\n"
        )
    (tasks_dir / "mine.yaml").write_text(
        "group: mine\ntask:\n  - mine_two\n  - mine_four\naggregate_metric_list:\n  - metric: acc\n"
        f"    weight_by_size: {str(weight_by_size).lower()}\n"
    )
    return tasks_dir


@pytest.mark.parametrize("weight_by_size", [True, False])
def test_a_group_is_one_column_its_aggregate_with_its_chance(env, tmp_path, weight_by_size):
    from tinyllama_cli.display import eval_table
    from tinyllama_cli.eval import evaluate

    tasks_dir = _group_tasks_dir(tmp_path, env, weight_by_size)
    result = evaluate(
        env["run"],
        "mine,hellaswag",
        tasks_dir=tasks_dir,
        datasets=[f"hellaswag={env['files']['hellaswag']}"],
        baseline=False,
    )
    assert list(result.scores) == ["mine", "hellaswag"]  # not mine_two, mine_four
    two, four = (result.results["results"][t]["acc,none"] for t in ("mine_two", "mine_four"))
    weights = (3, 5) if weight_by_size else (1, 1)
    expected = (two * weights[0] + four * weights[1]) / sum(weights)
    assert result.scores["mine"] == ("acc", pytest.approx(expected))  # lm-eval's aggregate
    assert result.chance["mine"] == pytest.approx(
        (0.5 * weights[0] + 0.25 * weights[1]) / sum(weights)
    )
    assert result.average == pytest.approx(
        (result.scores["mine"][1] + result.scores["hellaswag"][1]) / 2
    )
    table = eval_table([result], list(result.scores), "t")
    assert [c.header.split("\n")[0] for c in table.columns] == [
        "step",
        "tokens",
        "mine",
        "HellaSwag",
        "avg",
    ]
    assert set(result.to_dict()["scores"]) == {"mine", "hellaswag"}


def test_a_groups_unigram_baseline_is_lm_evals_aggregate_too(unigram_env, tmp_path, env):
    from tinyllama_cli.eval import evaluate

    tasks_dir = _group_tasks_dir(tmp_path, env, True)
    result = evaluate(unigram_env["run"], "mine", tasks_dir=tasks_dir)
    base = result.baseline.results["results"]
    expected = (base["mine_two"]["acc,none"] * 3 + base["mine_four"]["acc,none"] * 5) / 8
    assert list(result.baseline.scores) == ["mine"]
    assert result.baseline.scores["mine"] == ("acc", pytest.approx(expected))
