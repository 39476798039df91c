"""The CLI's rendering: tables built from result objects, without a terminal or a model."""

from __future__ import annotations

import io
import subprocess
import sys

from rich.console import Console

from tinyllama_cli import display
from tinyllama_cli.config import describe_presets


def text_of(*renderables) -> str:
    console = Console(width=200, record=True, file=io.StringIO())
    for renderable in renderables:
        console.print(renderable)
    return console.export_text()


def test_the_module_needs_no_torch():
    """`tinyllama models` and `plan` import the display, and must stay torch-free."""
    code = "import sys, tinyllama_cli.display; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_models_table_has_every_preset():
    text = text_of(display.models_table(describe_presets()))
    assert "1,100,048,384" in text and "7.31 G" in text
    assert all(row["name"] in text for row in describe_presets())


def test_eval_table_puts_chance_and_unigram_under_the_rows():
    from tinyllama_cli.eval import Baseline, EvalResult

    base = Baseline(scores={"arc_easy": ("acc_norm", 0.3)}, data_dir="/data", tokens_counted=1000)
    result = EvalResult(
        results={},
        scores={"arc_easy": ("acc_norm", 0.5), "wikitext": ("word_perplexity", 123.456)},
        stderr={"arc_easy": 0.05, "wikitext": None},
        chance={"arc_easy": 0.25},
        baseline=base,
        step=7,
        tokens_seen=2048,
    )
    lines = text_of(display.eval_table([result], list(result.scores), title="t")).splitlines()
    row = next(line for line in lines if line.split()[:1] == ["7"])
    assert row.split() == ["7", "2.05K", "50.00", "±5.00", "123.456", "50.00"]
    chance = next(line for line in lines if "chance" in line)
    assert chance.split() == ["chance", "25.00", "-", "25.00"]
    unigram = next(line for line in lines if "unigram" in line)
    assert unigram.split() == ["unigram", "30.00", "-", "30.00"]
