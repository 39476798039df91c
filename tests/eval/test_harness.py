"""lm-eval's side effects: no git error on stderr outside a checkout."""

from __future__ import annotations

import subprocess
import sys


def test_eval_outside_a_git_checkout_prints_no_git_error(env, tmp_path):
    """lm-eval records `git describe` of the working directory; run from a directory that is not
    a git checkout, git's "fatal: not a git repository" must not reach the user's stderr."""
    assert subprocess.run(["git", "rev-parse"], cwd=tmp_path, capture_output=True, check=False).returncode != 0
    cmd = [sys.executable, "-m", "tinyllama_cli", "eval", str(env["run"]), "--tasks", "arc_e",
           "--dataset", f"arc_e={env['files']['arc_easy']}", "--limit", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "ARC_e" in proc.stdout
    assert "not a git repository" not in proc.stderr and "fatal" not in proc.stderr
