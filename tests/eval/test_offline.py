"""Offline: a task whose data is neither local nor cached is one line naming --dataset."""

from __future__ import annotations

import subprocess
import sys


def test_missing_data_is_one_line_naming_dataset(env, tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "tinyllama_cli",
        "eval",
        str(env["run"]),
        "--tasks",
        "piqa,boolq",
        "--dataset",
        f"piqa={env['files']['piqa']}",
    ]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")},
    )
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--dataset boolq=" in lines[0] and "Traceback" not in proc.stderr, (
        proc.stderr
    )
