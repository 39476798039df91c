"""Reading the standard library: the C modules' pages come from an isolated interpreter."""

from __future__ import annotations

import sys

from tinyllama_cli.data.sample_corpus.stdlib import c_module_pages


def test_c_module_docstrings_come_from_an_isolated_interpreter(monkeypatch):
    """The pages do not depend on this process's state (a replaced sys.excepthook here)."""
    monkeypatch.setattr(sys, "excepthook", lambda *a: None)
    pages = c_module_pages(("builtins", "math", "sys", "no_such_module"))
    assert set(pages) == {"builtins", "math", "sys"}
    assert "## class int" in pages["builtins"] and "## sqrt(x, /)" in pages["math"]
    assert "## excepthook(exctype, value, traceback, /)" in pages["sys"]
