"""`tinyllama plan`: the published TinyLlama figures, the memory model against autograd, --from."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys

import pytest
import torch
import yaml
from typer.testing import CliRunner

from tinyllama_cli.cli import app
from tinyllama_cli.config import PRESETS, ModelConfig, get_preset
from tinyllama_cli.errors import UserError
from tinyllama_cli.plan import (
    GIB,
    PlanRequest,
    head_activation_bytes_per_token,
    layer_activation_bytes_per_token,
    parse_count,
    parse_fraction,
    plan,
    plan_from_run,
    resolve_model,
)

TINY_1B = get_preset("tinyllama-1.1b")


def tinyllama(**kw) -> PlanRequest:
    base = {"model": TINY_1B, "params": TINY_1B.num_params(), "gpu": "a100-40g"}
    return PlanRequest(**{**base, **kw})


# --- the published figures ------------------------------------------------------------------


def test_3t_tokens_on_16_a100s_at_24k_is_90_days():
    p = plan(tinyllama(tokens=3e12, gpus=16, tokens_per_sec_per_gpu=24_000))
    assert p.compute.days == pytest.approx(3e12 / (24_000 * 16) / 86400)
    assert 89 < p.compute.days < 92  # the README: "within a span of just 90 days"
    assert p.compute.mfu == pytest.approx(0.563, abs=0.001)  # and "56% model flops utilization"


def test_300b_tokens_cost_about_3456_a100_gpu_hours():
    p = plan(tinyllama(tokens=300e9, gpus=16, tokens_per_sec_per_gpu=24_000))
    assert p.compute.gpu_hours == pytest.approx(3456, rel=0.01)
    assert p.compute.gpu_hours == pytest.approx(300e9 / 24_000 / 3600)


def test_default_mfu_reproduces_tinyllamas_throughput():
    p = plan(tinyllama(tokens=3e12, gpus=16))
    assert p.compute.mfu == 0.56
    assert p.compute.tokens_per_sec_per_gpu == pytest.approx(24_000, rel=0.01)
    assert p.compute.days == pytest.approx(90, rel=0.01)


def test_chinchilla_optimal_tokens_for_1_1b_is_22b_reached_in_32_hours_on_8_a100s():
    p = plan(tinyllama(tokens=3e12, gpus=8, tokens_per_sec_per_gpu=24_000))
    assert p.chinchilla.optimal_tokens == pytest.approx(22e9, rel=0.001)
    assert p.chinchilla.days_to_optimal_tokens * 24 == pytest.approx(
        32, rel=0.02
    )  # README: 32 h, 8 A100
    assert p.chinchilla.tokens_per_param == pytest.approx(3e12 / 1_100_048_384)
    assert p.chinchilla.multiple_of_optimal == pytest.approx(136.4, abs=0.1)


def test_chinchilla_optimal_model_for_the_same_compute():
    p = plan(tinyllama(tokens=3e12))
    c = 6 * TINY_1B.num_params() * 3e12
    n, d = p.chinchilla.optimal_params_for_compute, p.chinchilla.optimal_tokens_for_compute
    assert 6 * n * d == pytest.approx(c) and d / n == pytest.approx(20)
    # Hoffmann et al. Table 3: 1.0B parameters is optimal at 1.21e20 FLOPs with 20.2B tokens.
    q = plan(PlanRequest(model=None, params=10**9, tokens=20.2e9)).chinchilla
    assert q.compute_6nd == pytest.approx(1.21e20, rel=0.01)
    assert q.optimal_params_for_compute == pytest.approx(1.0e9, rel=0.01)


def test_tokens_default_to_chinchilla_optimal():
    p = plan(tinyllama())
    assert p.tokens == pytest.approx(20 * TINY_1B.num_params())
    assert p.chinchilla.multiple_of_optimal == pytest.approx(1.0)


@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("seq_len", [None, 64])
def test_flops_agree_with_the_model_config(name, seq_len):
    config = PRESETS[name]
    p = plan(PlanRequest(model=config, params=config.num_params(), tokens=1e9, seq_len=seq_len))
    assert p.compute.flops_per_token == config.flops_per_token(seq_len)
    assert p.compute.total_flops == pytest.approx(config.flops_per_token(seq_len) * 1e9)


def test_parameter_count_alone_uses_6n_and_skips_memory():
    config, params = resolve_model("1.1B")
    assert config is None and params == 1_100_000_000
    p = plan(PlanRequest(model=None, params=params, tokens=1e12))
    assert p.compute.flops_per_token == 6 * params
    assert p.memory is None


def test_faster_gpu_and_price():
    a100 = plan(tinyllama(tokens=1e12, gpus=8, mfu=0.4, price_per_gpu_hour=2.0))
    h100 = plan(tinyllama(tokens=1e12, gpus=8, mfu=0.4, gpu="h100", price_per_gpu_hour=2.0))
    assert a100.compute.days / h100.compute.days == pytest.approx(989 / 312)
    assert a100.compute.cost == pytest.approx(a100.compute.gpu_hours * 2.0)
    custom = plan(tinyllama(tokens=1e12, gpus=8, mfu=0.4, peak_tflops=100.0))
    assert custom.peak_tflops == 100.0
    assert custom.compute.tokens_per_sec_per_gpu == pytest.approx(
        0.4 * 100e12 / TINY_1B.flops_per_token()
    )


def test_default_mfu_is_discounted_for_recomputation():
    p = plan(tinyllama(tokens=1e12, activation_checkpointing=True))
    assert p.compute.mfu == pytest.approx(0.56 * 6 / 8)
    assert plan(tinyllama(tokens=1e12, activation_checkpointing=True, mfu=0.5)).compute.mfu == 0.5


# --- memory ---------------------------------------------------------------------------------


def test_tinyllama_micro_batch_8_fits_an_a100_40g_under_fsdp_on_16_gpus():
    m = plan(tinyllama(tokens=3e12, gpus=16, micro_batch=8)).memory
    assert m.fits and m.total < 40 * GIB
    assert m.max_micro_batch >= 8
    # 16k tokens x 22 layers of activations dominate; the sharded states are ~1 GiB.
    assert m.params_fp32 + m.grads_fp32 + m.adamw_state == pytest.approx(
        16 * TINY_1B.num_params() / 16
    )
    assert m.activations > 25 * GIB
    # Twice the micro batch does not fit without checkpointing, and does with it.
    m16 = plan(tinyllama(tokens=3e12, gpus=16, micro_batch=16)).memory
    assert not m16.fits and m16.fits_checkpointed


def test_largest_micro_batch_is_the_boundary():
    for ac in (False, True):
        m = plan(tinyllama(gpus=8, gpu="a100-40g", activation_checkpointing=ac)).memory
        assert m.micro_batch_source == "largest that fits"
        best = m.max_micro_batch_checkpointed if ac else m.max_micro_batch
        assert m.micro_batch == best
        at, above = (plan(tinyllama(gpus=8, micro_batch=b)).memory for b in (best, best + 1))
        fits = (lambda m: m.fits_checkpointed) if ac else (lambda m: m.fits)
        assert fits(at) and not fits(above)


def test_a_tenth_of_memory_is_kept_free_when_choosing_the_micro_batch():
    """TinyLlama on 16 A100-40G: 9 sequences leave only 0.7 GiB of 40; with the default 10%
    margin the choice is 8, TinyLlama's own micro batch (35.45 GiB, 4.55 GiB free)."""
    m = plan(tinyllama(gpus=16)).memory
    assert m.margin_fraction == 0.10 and m.margin == 4 * GIB
    assert m.micro_batch == m.max_micro_batch == 8 and m.fits
    assert m.total <= m.capacity - m.margin < plan(tinyllama(gpus=16, micro_batch=9)).memory.total
    assert not plan(tinyllama(gpus=16, micro_batch=9)).memory.fits
    bare = plan(tinyllama(gpus=16, memory_margin=0.0)).memory
    assert bare.micro_batch == 9 and bare.capacity - bare.total == pytest.approx(
        0.70 * GIB, abs=0.01 * GIB
    )
    with pytest.raises(UserError, match="--memory-margin must be in"):
        plan(tinyllama(memory_margin=1.0))


def test_sharding_divides_the_states_and_one_gpu_needs_checkpointing():
    one = plan(tinyllama(gpus=1, micro_batch=8)).memory
    many = plan(tinyllama(gpus=64, micro_batch=8)).memory
    assert one.adamw_state == pytest.approx(64 * many.adamw_state)
    assert one.activations == many.activations
    assert not one.fits and one.fits_checkpointed  # 17.6 GB of states + 31 GiB of activations


def test_one_gpu_holds_autocast_weight_copies_instead_of_fsdp_buffers():
    cfg = TINY_1B
    vocab_d = cfg.vocab_size * cfg.n_embd
    one = plan(tinyllama(gpus=1, micro_batch=1)).memory
    two = plan(tinyllama(gpus=2, micro_batch=1)).memory
    assert one.bf16_buffers == 2 * (cfg.num_params() - vocab_d)
    root = cfg.num_params() - cfg.n_layer * cfg.block_params()
    assert two.bf16_buffers == 2 * (root + 2 * cfg.block_params()) + 12 * cfg.block_params()


def _saved_bytes_per_token(model: torch.nn.Module, call, batch_sizes=(2, 6), seq=32) -> float:
    """Bytes autograd keeps for backward (excluding parameters and buffers), per token."""
    own = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}

    def measure(batch: int) -> int:
        seen: dict[int, int] = {}

        def pack(t):
            s = t.untyped_storage()
            if s.data_ptr() not in own:
                seen[s.data_ptr()] = s.nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            call(batch, seq)
        return sum(seen.values())

    small, large = (measure(b) for b in batch_sizes)
    return (large - small) / ((batch_sizes[1] - batch_sizes[0]) * seq)


def test_activation_formula_matches_what_autograd_saves():
    """The planner's bytes per token equal what this project's model saves in bf16 on CPU, whose
    SDPA kernel keeps what flash attention keeps (q, k, v, output, log-sum-exp)."""
    from torch.utils.checkpoint import checkpoint

    from tinyllama_cli.model import Llama

    config = ModelConfig(
        vocab_size=512,
        n_layer=2,
        n_embd=128,
        n_head=4,
        n_kv_head=2,
        intermediate_size=352,
        block_size=32,
    )
    model = Llama(config).to(torch.bfloat16)

    def step(batch, seq, wrap=None):
        idx = torch.randint(0, config.vocab_size, (batch, seq))
        if wrap is None:
            return model(idx, idx)
        saved = [layer.forward for layer in model.layers]
        try:
            for layer in model.layers:
                layer.forward = wrap(layer.forward)
            return model(idx, idx)
        finally:
            for layer, forward in zip(model.layers, saved):
                layer.forward = forward

    def block_only(batch, seq):
        x = torch.randn(batch, seq, config.n_embd, dtype=torch.bfloat16, requires_grad=True)
        model.layers[0](x, model.rope_cos[:seq], model.rope_sin[:seq], 0, None)

    layer, head = layer_activation_bytes_per_token(config), head_activation_bytes_per_token(config)
    assert _saved_bytes_per_token(model, block_only) == layer
    # The whole model: every block plus the head; the formula also counts the int64 targets,
    # which the training loop holds but autograd does not save.
    full = _saved_bytes_per_token(model, step)
    assert full + 8 == config.n_layer * layer + head
    # Per-block checkpointing keeps only each block's bf16 input.
    ckpt = _saved_bytes_per_token(
        model, lambda b, s: step(b, s, lambda f: lambda *a: checkpoint(f, *a, use_reentrant=False))
    )
    assert ckpt + 8 == config.n_layer * 2 * config.n_embd + head


# --- parsing and errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,value",
    [
        ("3T", 3e12),
        ("300B", 300e9),
        ("2.5e12", 2.5e12),
        ("1_000_000", 1e6),
        ("120m", 120e6),
        ("22b", 22e9),
        ("7", 7.0),
    ],
)
def test_parse_count(text, value):
    assert parse_count(text) == value


@pytest.mark.parametrize("text", ["", "three", "3X", "-1B", "0", "1e"])
def test_parse_count_rejects(text):
    with pytest.raises(UserError):
        parse_count(text)


def test_parse_fraction():
    assert parse_fraction("56%") == pytest.approx(0.56)
    assert parse_fraction("0.4") == 0.4
    for bad in ("56", "0", "x"):
        with pytest.raises(UserError):
            parse_fraction(bad)


def test_request_errors():
    with pytest.raises(UserError, match="not both"):
        plan(tinyllama(mfu=0.5, tokens_per_sec_per_gpu=1000))
    with pytest.raises(UserError, match="unknown GPU"):
        plan(tinyllama(gpu="tpu-v9"))
    with pytest.raises(UserError, match="exceeds"):
        plan(tinyllama(seq_len=4096))
    with pytest.raises(UserError, match="neither a preset"):
        resolve_model("gpt-5")


def test_model_from_a_yaml_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"model": get_preset("cpu-small").to_dict()}))
    config, params = resolve_model(str(path))
    assert config == get_preset("cpu-small") and params == config.num_params()


# --- --from RUN_DIR -------------------------------------------------------------------------


def write_run(
    tmp_path,
    *,
    rate=5000.0,
    elapsed=True,
    steps=10,
    tokens_per_step=4096,
    extra_lines="",
    hardware=None,
):
    """A synthetic run dir in the pretrain format: config.yaml + metrics.jsonl at a known
    throughput.
    The logged mfu is 0.01 x the logged rate / `rate`: its median is 0.0125 (0.02 and 0.005
    alternate), and every record implies the same peak FLOP/s."""
    run = tmp_path / "run"
    run.mkdir()
    config = get_preset("cpu-tiny")
    (run / "config.yaml").write_text(
        yaml.safe_dump(
            {
                "model": config.to_dict(),
                "train": {
                    "max_steps": 100,
                    "global_batch_size": 32,
                    "micro_batch_size": 4,
                    "seq_len": 128,
                    "devices": 2,
                    "accelerator": "auto",
                },
                **({"hardware": hardware} if hardware else {}),
            }
        )
    )
    lines = []
    for step in range(1, steps + 1):
        seen = step * tokens_per_step
        factor = 2.0 if step % 2 else 0.5
        record = {
            "step": step,
            "loss": 6.0 - 0.1 * step,
            "lr": 1e-3,
            "grad_norm": 1.0,
            "tokens_seen": seen,
            # logged per-step rates are noisy; the wall clock is the truth
            "tokens_per_sec": rate * factor,
            "mfu": 0.01 * factor,
        }
        if elapsed:
            record["elapsed_s"] = 7.0 + seen / rate
        lines.append(json.dumps(record))
        if step == 5:
            lines.append(json.dumps({"step": 5, "val_loss": 5.7, "tokens_seen": seen}))
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n" + extra_lines)
    return run


def test_from_run_projects_the_rest_at_the_measured_throughput(tmp_path):
    run = write_run(tmp_path, extra_lines='{"step": 11, "loss"')  # a torn last line: still writing
    p = plan_from_run(run, price_per_gpu_hour=3.0)
    target = 100 * 32 * 128  # max_steps x global batch x seq_len
    g = p.progress
    assert p.tokens == target and g.target_tokens == target
    assert g.tokens_seen == 10 * 4096 and g.step == 10
    assert g.tokens_per_sec == pytest.approx(5000.0) and g.throughput_source.startswith("elapsed_s")
    assert g.remaining_s == pytest.approx((target - 40960) / 5000.0)
    assert g.remaining_gpu_hours == pytest.approx(g.remaining_s * 2 / 3600)
    assert g.remaining_cost == pytest.approx(g.remaining_gpu_hours * 3.0)
    assert p.gpus == 2 and p.compute.tokens_per_sec_per_gpu == pytest.approx(2500.0)
    assert p.compute.mfu_source.startswith(f"median logged in {run}, 10 records")
    assert p.memory is None  # its own (unknown) devices: no GPU memory model
    assert p.compute.flops_per_token == get_preset("cpu-tiny").flops_per_token(128)
    projected = plan_from_run(run, gpu="a100-40g")
    assert projected.memory.micro_batch == 4 and projected.memory.seq_len == 128


def test_from_run_without_elapsed_uses_median_logged_rate_and_token_override(tmp_path):
    run = write_run(tmp_path, elapsed=False, rate=1000.0)
    p = plan_from_run(run, tokens=1e6, gpus=4)
    assert p.progress.throughput_source == "median tokens_per_sec of the last 10 records"
    assert p.progress.tokens_per_sec == pytest.approx(statistics.median([2000.0, 500.0] * 5))
    assert p.progress.target_tokens == 1e6 and p.gpus == 4


def test_from_run_measures_the_latest_job_after_a_resume(tmp_path):
    """A resumed job restarts elapsed_s (and may replay steps after its checkpoint): only the
    latest job's records give the rate."""
    run = write_run(tmp_path, rate=5000.0)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    for step in range(9, 16):  # resumed from the step-8 checkpoint, now at 8000 tokens/s
        seen = step * 4096
        lines.append(
            json.dumps(
                {
                    "step": step,
                    "loss": 5.0,
                    "lr": 1e-3,
                    "grad_norm": 1.0,
                    "tokens_seen": seen,
                    "tokens_per_sec": 8000.0,
                    "mfu": 0.01,
                    "elapsed_s": 60.0 + (seen - 8 * 4096) / 8000.0,
                }
            )
        )
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    p = plan_from_run(run)
    assert p.progress.tokens_per_sec == pytest.approx(8000.0)
    assert p.progress.throughput_source == "elapsed_s over the last 7 records"
    assert p.progress.tokens_seen == 15 * 4096 and p.progress.step == 15


def test_from_run_reads_checkpointing_peak_and_max_tokens_from_the_config(tmp_path):
    run = write_run(tmp_path)
    data = yaml.safe_load((run / "config.yaml").read_text())
    data["train"].update(
        activation_checkpointing=True, peak_flops=100e12, max_steps=None, max_tokens=2_000_000
    )
    (run / "config.yaml").write_text(yaml.safe_dump(data))
    p = plan_from_run(run)
    assert p.peak_tflops == pytest.approx(100.0)  # the peak the trainer's mfu was against
    assert p.progress.target_tokens == 2_000_000
    assert p.compute.mfu == pytest.approx(0.0125)  # the logged one, not recomputed
    projected = plan_from_run(run, gpu="h100")
    assert projected.memory.activation_checkpointing
    assert projected.peak_tflops == pytest.approx(989.0)  # the GPU's, not the run's peak_flops


def test_from_a_cpu_run_reports_its_own_hardware_and_median_mfu(tmp_path):
    """Not "1 x a100-40g, MFU 0.0%": the devices config.yaml records and the MFU the trainer
    logged."""
    run = write_run(tmp_path, hardware={"accelerator": "cpu", "world_size": 2})
    p = plan_from_run(run)
    fpt = get_preset("cpu-tiny").flops_per_token(128)
    assert (p.hardware, p.gpu, p.gpus, p.device) == ("run", "cpu", 2, "worker")
    assert p.compute.mfu == pytest.approx(statistics.median([0.02, 0.005] * 5))
    assert p.run_hardware.mfu_records == 10
    # every record: mfu = tokens/s x FLOPs/token / (peak x world), so the implied peak is exact
    assert p.peak_tflops * 1e12 == pytest.approx(10000.0 * fpt / (0.02 * 2))
    assert p.compute.tokens_per_sec == pytest.approx(5000.0) and p.memory is None
    text = _rendered(p)
    assert "2 x cpu (the run's own" in text and "a100" not in text and "0.0%" not in text
    assert "1.2% (median logged in" in text and "measured matmul peak" in text
    assert "tokens/s per worker" in text
    assert "add --gpu NAME" in text


def test_from_run_with_gpu_is_a_projection_at_the_runs_mfu(tmp_path):
    run = write_run(tmp_path, hardware={"accelerator": "cpu", "world_size": 2})
    p = plan_from_run(run, gpu="a100-40g", gpus=16)
    fpt = get_preset("cpu-tiny").flops_per_token(128)
    per_gpu = 0.0125 * 312e12 / fpt
    assert (p.hardware, p.gpu, p.gpus) == ("projection", "a100-40g", 16)
    assert p.compute.mfu == pytest.approx(0.0125)
    assert p.compute.tokens_per_sec_per_gpu == pytest.approx(per_gpu)
    g = p.progress
    assert g.tokens_per_sec == pytest.approx(5000.0)  # measured, on the run's 2 CPU workers
    assert g.remaining_s == pytest.approx((100 * 32 * 128 - 40960) / (16 * per_gpu))
    assert p.memory is not None and p.memory.micro_batch == 4
    text = _rendered(p)
    assert "16 x a100-40g (312 TFLOP/s bf16): a projection; the run used 2 x cpu" in text
    assert "the run's measured 1.2% on 2 x cpu, applied to a100-40g" in text
    assert "at the projected rate" in text
    # --mfu is a projection parameter: allowed with --gpu
    assert plan_from_run(run, gpu="a100-40g", mfu=0.5).compute.mfu == 0.5


def test_from_run_without_a_recorded_accelerator_says_unknown(tmp_path):
    run = write_run(tmp_path)  # accelerator auto, no hardware section (an older run)
    p = plan_from_run(run)
    assert p.gpu == "unknown" and p.gpus == 2 and "2 x unknown (the run's own" in _rendered(p)


def _rendered(p) -> str:
    import io

    from rich.console import Console

    from tinyllama_cli.display import plan_tables

    console = Console(width=200, record=True, file=io.StringIO())
    for part in plan_tables(p):
        console.print(part)
    return console.export_text()


def test_from_run_errors(tmp_path):
    with pytest.raises(UserError, match="no metrics.jsonl"):
        (tmp_path / "empty").mkdir()
        plan_from_run(tmp_path / "empty")
    with pytest.raises(UserError, match="does not exist"):
        plan_from_run(tmp_path / "missing")
    run = write_run(tmp_path)
    with pytest.raises(
        UserError, match="measured throughput on its own hardware; drop --mfu.*--gpu"
    ):
        plan_from_run(run, mfu=0.5)
    with pytest.raises(UserError, match="drop --peak-tflops"):
        plan_from_run(run, peak_tflops=100.0)
    (run / "metrics.jsonl").write_text("not json\n{}\n")
    with pytest.raises(UserError, match="line 1"):
        plan_from_run(run)


# --- the command ----------------------------------------------------------------------------


def test_cli_json_and_table():
    runner = CliRunner()
    args = [
        "plan",
        "--model",
        "tinyllama-1.1b",
        "--tokens",
        "3T",
        "--gpus",
        "16",
        "--gpu",
        "a100-40g",
        "--tokens-per-sec-per-gpu",
        "24000",
        "--micro-batch",
        "8",
        "--price",
        "1.5",
    ]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["params"] == 1_100_048_384
    assert data["compute"]["flops_per_token"] == 7_314_370_560
    assert math.isclose(data["compute"]["days"], 90.42, rel_tol=1e-3)
    assert data["memory"]["fits"] is True
    assert data["compute"]["cost"] == pytest.approx(data["compute"]["gpu_hours"] * 1.5)
    table = runner.invoke(app, args)
    assert table.exit_code == 0
    assert "90.4 days" in table.output and "136.4x" in table.output and "yes" in table.output


def test_cli_memory_margin_flag_and_row():
    runner = CliRunner()
    args = ["plan", "--model", "tinyllama-1.1b", "--gpus", "16", "--gpu", "a100-40g"]
    assert json.loads(runner.invoke(app, [*args, "--json"]).output)["memory"]["micro_batch"] == 8
    bare = json.loads(runner.invoke(app, [*args, "--memory-margin", "0", "--json"]).output)[
        "memory"
    ]
    assert bare["micro_batch"] == 9 and bare["margin"] == 0
    table = runner.invoke(app, [*args, "--memory-margin", "15%"]).output
    assert "safety margin (15%, --memory-margin)" in table and "6.00 GiB" in table


def test_cli_from_run(tmp_path):
    run = write_run(tmp_path)
    result = CliRunner().invoke(app, ["plan", "--from", str(run), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["progress"]["tokens_per_sec"] == pytest.approx(5000.0)
    table = CliRunner().invoke(app, ["plan", "--from", str(run)])
    assert "Progress of" in table.output


def test_cli_user_errors_are_one_line_exit_2():
    for args in (
        ["--mfu", "150%"],
        ["--gpu", "tpu-v9"],
        ["--tokens", "lots"],
        ["--memory-margin", "100%"],
    ):
        result = subprocess.run(
            [sys.executable, "-m", "tinyllama_cli", "plan", *args],
            check=False,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr and result.stderr.strip().startswith("error:")


def test_options_are_parsed_and_checked_as_the_command_does(tmp_path):
    from tinyllama_cli.plan import PlanOptions, plan_from_options

    p = plan_from_options(
        PlanOptions(model="tinyllama-120m", tokens="300B", mfu="45%", memory_margin="5%")
    )
    assert (p.tokens, p.compute.mfu, p.memory.margin_fraction) == (300e9, 0.45, 0.05)
    assert (p.gpus, p.gpu) == (1, "a100-40g")
    with pytest.raises(UserError, match="--from takes the model from the run's config.yaml"):
        plan_from_options(PlanOptions(model="cpu-small", from_run=str(tmp_path)))
    with pytest.raises(UserError, match="cannot read --mfu"):  # checked first, as the flags were
        plan_from_options(PlanOptions(mfu="fast", tokens="lots"))
