"""The package's face (`tinyllama_cli/eval/__init__.py`): importing it is cheap, and the two
lm-eval models are importable from it."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_importing_the_package_loads_neither_torch_nor_lm_eval():
    """The CLI imports the package before its argument checks; they stay fast."""
    code = (
        "import sys, tinyllama_cli.eval as ev; ev.evaluate, ev.evaluate_series, ev.EvalResult; "
        "print(sorted(m for m in ('torch', 'lm_eval') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_lm_eval_models_import_from_the_package():
    import tinyllama_cli.eval as ev
    from tinyllama_cli.eval.baseline import UnigramLM
    from tinyllama_cli.eval.native_lm import NativeLM

    assert ev.NativeLM is NativeLM and ev.UnigramLM is UnigramLM
    assert all(getattr(ev, name) is not None for name in ev.__all__)
    with pytest.raises(AttributeError, match="NoSuchName"):
        ev.NoSuchName  # noqa: B018
