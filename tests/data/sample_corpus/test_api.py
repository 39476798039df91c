"""build_sample_corpus and `tinyllama sample-corpus`: the same bytes in another process, and
refusal of an existing directory or a too small target."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.data.sample_corpus.corpus_files import TARGET, tree
from tinyllama_cli.data.sample_corpus import build_sample_corpus
from tinyllama_cli.errors import UserError


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tinyllama_cli", *args],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_same_bytes_again_and_overwrite(built, tmp_path):
    """A second build in a fresh interpreter (other hash seed, via the CLI) writes the same bytes;
    --overwrite replaces what was there."""
    out, _ = built
    again = tmp_path / "again"
    again.mkdir()
    (again / "mine.txt").write_text("the user's file")
    proc = _cli(
        "sample-corpus",
        "--out",
        str(again),
        "--tokens-target",
        str(TARGET),
        "--overwrite",
        env={"PYTHONHASHSEED": "12345"},
    )
    assert proc.returncode == 0, proc.stderr
    assert tree(again) == tree(out)
    assert not list(tmp_path.glob(".again*"))  # no temporary directory left behind


def test_refuses_existing_dir(tmp_path):
    out = tmp_path / "corpus"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    proc = _cli("sample-corpus", "--out", str(out), "--tokens-target", str(TARGET))
    assert proc.returncode == 2
    assert "--overwrite" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    with pytest.raises(UserError, match="too small"):
        build_sample_corpus(tmp_path / "x", tokens_target=10)
