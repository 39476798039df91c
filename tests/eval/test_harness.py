"""lm-eval's side effects: no git error on stderr outside a checkout."""

from __future__ import annotations

import subprocess
import sys


def test_eval_outside_a_git_checkout_prints_no_git_error(env, tmp_path):
    """lm-eval records `git describe` of the working directory; run from a directory that is not
    a git checkout, git's "fatal: not a git repository" must not reach the user's stderr."""
    assert (
        subprocess.run(
            ["git", "rev-parse"], cwd=tmp_path, capture_output=True, check=False
        ).returncode
        != 0
    )
    cmd = [
        sys.executable,
        "-m",
        "tinyllama_cli",
        "eval",
        str(env["run"]),
        "--tasks",
        "arc_e",
        "--dataset",
        f"arc_e={env['files']['arc_easy']}",
        "--limit",
        "2",
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "ARC_e" in proc.stdout
    assert "not a git repository" not in proc.stderr and "fatal" not in proc.stderr


def test_torchs_environment_report_runs_once_per_process(unigram_env, monkeypatch):
    """lm-eval runs torch's get_pretty_env_info (pip and other subprocesses, seconds) in every
    simple_evaluate; one eval with the unigram baseline makes two of those. The report is made
    once per process, and both results still hold it with the rest of lm-eval's environment."""
    from torch.utils import collect_env

    from tinyllama_cli.eval import evaluate

    calls = []

    def report() -> str:
        calls.append(1)
        return "the environment"

    monkeypatch.setattr(collect_env, "get_pretty_env_info", report)
    result = evaluate(
        unigram_env["run"], "tiny_mc", tasks_dir=unigram_env["tasks"], bootstrap_iters=0
    )
    assert len(calls) == 1
    for results in (result.results, result.baseline.results):
        assert results["pretty_env_info"] == "the environment"
        assert {"transformers_version", "lm_eval_version", "upper_git_hash"} <= set(results)
    assert collect_env.get_pretty_env_info is report  # torch's own name is back after the call
