"""`tinyllama eval` end to end: aliases with local data, every --dtype spelling, the table's
reference rows and --json."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest


def test_aliases_run_through_the_cli_with_local_data(env, tmp_path):
    out = tmp_path / "results.json"
    cmd = [
        sys.executable,
        "-m",
        "tinyllama_cli",
        "eval",
        str(env["run"]),
        "--tasks",
        "arc_e,obqa",
        "--dataset",
        f"arc_e={env['files']['arc_easy']}",
        "--dataset",
        f"obqa={env['files']['openbookqa']}",
        "--limit",
        "2",
        "--batch-size",
        "2",
        "--output",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "ARC_e" in proc.stdout and "Obqa" in proc.stdout and "avg" in proc.stdout
    results = json.loads(out.read_text())
    assert set(results["results"]) == {"arc_easy", "openbookqa"}
    assert results["n-samples"]["arc_easy"]["effective"] == 2
    assert "acc_norm,none" in results["results"]["openbookqa"]


@pytest.mark.parametrize(
    "spelling, dtype",
    [
        ("fp32", "torch.float32"),
        ("float32", "torch.float32"),
        ("bf16", "torch.bfloat16"),
        ("bfloat16", "torch.bfloat16"),
        ("fp16", "torch.float16"),
        ("float16", "torch.float16"),
    ],
)
def test_cli_dtype_takes_every_spelling(env, tmp_path, spelling, dtype):
    from typer.testing import CliRunner

    from tinyllama_cli.cli import app

    out = tmp_path / "results.json"
    result = CliRunner().invoke(
        app,
        [
            "eval",
            str(env["run"]),
            "--tasks",
            "arc_e",
            "--dataset",
            f"arc_e={env['files']['arc_easy']}",
            "--limit",
            "1",
            "--batch-size",
            "2",
            "--device",
            "cpu",
            "--dtype",
            spelling,
            "--output",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "arc_easy" in json.loads(result.stdout)["scores"]
    assert json.loads(out.read_text())["config"]["model_dtype"] == dtype  # the weights as held


def test_eval_cli_table_has_reference_rows(unigram_env, tmp_path):
    """The table: the score with ± lm-eval's standard error, then chance and unigram rows."""
    cmd = [
        sys.executable,
        "-m",
        "tinyllama_cli",
        "eval",
        str(unigram_env["run"]),
        "--tasks",
        "tiny_mc",
        "--tasks-dir",
        str(unigram_env["tasks"]),
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines() if line.strip()}
    assert rows["chance"][1:] == ["36.11", "36.11"]  # the task, then avg
    assert rows["unigram"][1:] == ["33.33", "33.33"]
    p = float(rows["20"][2]) / 100  # the model's acc_norm, then lm-eval's standard error (not N/A)
    assert rows["20"][3] == f"±{100 * math.sqrt(p * (1 - p) / 2):.2f}"
    assert "6k training tokens" in proc.stdout

    proc = subprocess.run(
        cmd + ["--json", "--no-baseline"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["unigram"] is None and out["scores"]["tiny_mc"]["unigram"] is None
    score = out["scores"]["tiny_mc"]
    assert score["chance"] == pytest.approx(13 / 36)
    assert score["stderr"] == pytest.approx(math.sqrt(score["value"] * (1 - score["value"]) / 2))
