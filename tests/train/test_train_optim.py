"""train/optim.py: the AdamW it builds (fused on CPU) and its update."""

import torch

from tinyllama_cli.config import PRESETS, Optimizer, Schedule
from tinyllama_cli.model import Llama
from tinyllama_cli.train.optim import build_optimizer


def _model_with_grads(seed: int) -> Llama:
    torch.manual_seed(seed)
    model = Llama(PRESETS["cpu-tiny"])
    model.init_weights()
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    return model


def test_cpu_adamw_is_fused_and_matches_the_per_parameter_loop():
    """The fused kernel is what the CPU step uses (benchmarks/bench_optimizer.py: 6.5x faster)
    and gives torch's reference AdamW update to fp32 rounding over several steps."""
    fused_model, loop_model = _model_with_grads(0), _model_with_grads(0)
    cfg, schedule = Optimizer(), Schedule(lr=1e-2)
    fused = build_optimizer(fused_model, cfg, schedule, torch.device("cpu"))
    assert fused.defaults["fused"] is True
    loop = torch.optim.AdamW(
        loop_model.parameters(),
        lr=schedule.lr,
        betas=(cfg.beta1, cfg.beta2),
        eps=cfg.eps,
        weight_decay=cfg.weight_decay,
        foreach=False,
    )
    for _ in range(3):
        fused.step()
        loop.step()
    for (name, a), b in zip(fused_model.named_parameters(), loop_model.parameters()):
        assert not torch.equal(a, _model_with_grads(0).get_parameter(name)), name  # it moved
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=name)
