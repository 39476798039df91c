"""evaluate: the native adapter against lm-eval's own HF backend on all seven tasks' schemas."""

from __future__ import annotations

import math

import pytest

from tests.eval.files import SEVEN, per_sample


def test_native_matches_hf_backend_on_all_seven_schemas(both_backends):
    native, hf = both_backends
    a, b = per_sample(native), per_sample(hf)
    assert sorted(a) == sorted(SEVEN)
    for task in SEVEN:
        assert [d for d, _ in a[task]] == [0, 1, 2], task  # every local row was scored
        for (_, lls_a), (_, lls_b) in zip(a[task], b[task]):
            assert len(lls_a) == len(lls_b) >= 2
            for x, y in zip(lls_a, lls_b):
                assert math.isfinite(x) and x < 0
                assert x == pytest.approx(y, abs=2e-4), task
        for metric in ("acc", "acc_norm"):
            key = f"{metric},none"
            if key in hf.results["results"][task]:
                assert native.results["results"][task][key] == hf.results["results"][task][key], (
                    task,
                    metric,
                )


def test_native_backend_prepares_the_model_as_generate_does(env, tmp_path):
    """eval's generate_until decodes with the loader of `tinyllama generate`: q/k/v fused and,
    on a CPU, input-major weights (scoring sees the same logits either way)."""
    import torch

    from tinyllama_cli.eval.run import build_lm

    lm, loaded = build_lm(env["run"], "native", "fp32", "cpu", 4, 0, tmp_path)
    assert lm.model is loaded.model
    linears = [m for m in loaded.model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.stride(0) == 1 for m in linears)
    assert all(layer.attention.wqkv is not None for layer in loaded.model.layers)
