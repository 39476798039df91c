import json
import os
import subprocess
import sys

import pytest

from tinyllama_cli import __version__


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tinyllama_cli", *args], capture_output=True, text=True, check=False
    )


def test_help_lists_subcommands():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "models" in result.stdout


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"tinyllama {__version__}"


def test_models_json_has_exact_counts():
    result = run_cli("models", "--json")
    assert result.returncode == 0
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["tinyllama-1.1b"]["params"] == 1_100_048_384
    assert isinstance(rows["tinyllama-1.1b"]["params"], int)
    assert rows["tinyllama-1.1b"]["flops_per_token"] == 7_314_370_560


def test_models_table_shows_the_1_1b_count():
    result = run_cli("models")
    assert result.returncode == 0
    assert "1,100,048,384" in result.stdout
    # the vocab column is the preset's; training takes the data's tokenizer size
    note = [line for line in result.stdout.splitlines() if line.startswith("vocab:")]
    assert len(note) == 1 and "data's tokenizer size" in note[0] and "--vocab-size" in note[0]
    assert "vocab:" not in run_cli("models", "--json").stdout


def test_unknown_command_is_a_usage_error():
    result = run_cli("no-such-command")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("tty", [False, True])
def test_progress_bars_redraw_rarely_when_stderr_is_a_log(monkeypatch, tty):
    import io

    from tinyllama_cli import cli

    class Stderr(io.StringIO):
        def isatty(self):
            return tty

    seen = {}
    monkeypatch.delenv("TQDM_MININTERVAL", raising=False)
    monkeypatch.setattr(cli.sys, "stderr", Stderr())
    monkeypatch.setattr(
        cli, "app", lambda: seen.update(interval=os.environ.get("TQDM_MININTERVAL"))
    )
    cli.main()
    assert seen["interval"] == (None if tty else "30")
