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
