"""Compute, cost and memory planning for (over)training a small Llama: `tinyllama plan`.

Everything here is arithmetic on a `ModelConfig`, so it runs anywhere and imports no torch.
The formulas and their sources are in docs/plan.md; the short version:

- FLOPs per token: `ModelConfig.flops_per_token(seq_len)` (torchtitan's convention), or 6 N
  when only a parameter count is known. Time = tokens / (GPUs x tokens/s/GPU), where
  tokens/s/GPU = MFU x peak bf16 FLOP/s / FLOPs per token unless measured.
- Chinchilla: Hoffmann et al. 2022, approach 1 (Table 2: N_opt ~ C^0.50, D_opt ~ C^0.50, so
  a fixed ratio, read off Table 3 as 20 tokens per parameter) with C = 6 N D.
- Memory per GPU under FSDP full sharding with bf16 compute: fp32 master parameters, fp32
  gradients and AdamW's two fp32 moments, all sharded (16 bytes per parameter / GPUs); the
  all-gathered bf16 working copies; and activations counted tensor by tensor from what
  autograd saves in this project's model with flash attention (no T x T scores are kept).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinyllama_cli.config import PRESETS, ModelConfig, load_yaml
from tinyllama_cli.errors import UserError
from tinyllama_cli.hardware import GPU, GPUS
from tinyllama_cli.runmetrics import read_metrics
from tinyllama_cli.units import si

GIB = 2**30

# TinyLlama's measured model FLOPs utilisation: 24k tokens/s per A100-40G without activation
# checkpointing (README of jzhang38/TinyLlama). With our FLOPs convention that is 56.3%.
TINYLLAMA_MFU = 0.56
# Full activation checkpointing re-runs each block's forward in the backward pass: 8 instead of
# 6 FLOPs per parameter per token on the same hardware, so the useful (model) FLOP rate is 6/8.
RECOMPUTE_MFU_FACTOR = 6 / 8

# Hoffmann et al. 2022 ("Training Compute-Optimal Large Language Models"), approach 1:
# Table 2 gives a = b = 0.50, so the optimal tokens-per-parameter ratio does not depend on the
# budget; Table 3 reads 400M params -> 8.0B tokens and 1.0B -> 20.2B tokens, i.e. 20 tokens/param.
CHINCHILLA_TOKENS_PER_PARAM = 20.0

# Rows of logits the fused loss holds at once (model.LOSS_CHUNK_ELEMENTS; a test keeps them equal
# without making this module import torch).
LOSS_CHUNK_ELEMENTS = 2**25


_SUFFIXES = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}


def parse_count(text: str | float, what: str = "count") -> float:
    """'3T', '300B', '2.5e12', '1_000_000', '120M' -> a float (decimal suffixes k, M, B/G, T)."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        match = re.fullmatch(r"\s*([0-9][0-9_]*(?:\.[0-9]*)?(?:e[+-]?[0-9]+)?)\s*([kmbgt]?)\s*",
                             str(text), re.IGNORECASE)
        if not match:
            raise UserError(f"cannot read {what} {text!r}; write a number such as 3T, 300B, 2.5e12 or 120M")
        value = float(match.group(1).replace("_", "")) * _SUFFIXES[match.group(2).lower()]
    if not math.isfinite(value) or value <= 0:
        raise UserError(f"{what} must be a positive number, got {text!r}")
    return value


def resolve_model(spec: str) -> tuple[ModelConfig | None, int]:
    """A preset name, a YAML file (a run's config.yaml or bare ModelConfig fields), or a
    parameter count ('1.1B'). Returns (config or None, parameter count)."""
    if spec in PRESETS:
        config = PRESETS[spec]
        return config, config.num_params()
    path = Path(spec)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        data = load_yaml(path)
        config = ModelConfig.from_dict(data.get("model", data))
        return config, config.num_params()
    try:
        return None, int(parse_count(spec, "model"))
    except UserError:
        raise UserError(
            f"--model {spec!r} is neither a preset ({', '.join(PRESETS)}), a YAML config file, "
            "nor a parameter count such as 1.1B"
        ) from None


def get_gpu(name: str) -> GPU:
    try:
        return GPUS[name.lower()]
    except KeyError:
        raise UserError(
            f"unknown GPU {name!r}; choose one of: {', '.join(GPUS)} "
            "(or give --peak-tflops and --gpu-memory-gib for another)"
        ) from None


# --- request and result ---------------------------------------------------------------------


@dataclass(frozen=True)
class PlanRequest:
    """What to plan. `tokens=None` means the Chinchilla-optimal count for the model;
    `micro_batch=None` means the largest that fits; `mfu` and `tokens_per_sec_per_gpu` are
    exclusive (neither: TinyLlama's 56%, x 6/8 under activation checkpointing)."""

    model: ModelConfig | None
    params: int
    tokens: float | None = None
    gpus: int = 1
    gpu: str = "a100-40g"
    peak_tflops: float | None = None
    gpu_memory_gib: float | None = None
    mfu: float | None = None
    tokens_per_sec_per_gpu: float | None = None
    price_per_gpu_hour: float | None = None
    seq_len: int | None = None
    micro_batch: int | None = None
    activation_checkpointing: bool = False
    overhead_gib: float = 2.0


@dataclass(frozen=True)
class Compute:
    seq_len: int | None
    flops_per_token: float
    total_flops: float
    mfu: float
    mfu_source: str
    tokens_per_sec_per_gpu: float
    tokens_per_sec: float
    seconds: float
    days: float
    gpu_hours: float
    cost: float | None


@dataclass(frozen=True)
class Chinchilla:
    """Hoffmann et al. 2022, approach 1, with C = 6 N D."""

    tokens_per_param: float
    optimal_tokens: float
    multiple_of_optimal: float
    compute_6nd: float
    optimal_params_for_compute: float
    optimal_tokens_for_compute: float
    days_to_optimal_tokens: float


@dataclass(frozen=True)
class Memory:
    """Bytes per GPU; `activations` is for `micro_batch` sequences of `seq_len` tokens."""

    micro_batch: int
    micro_batch_source: str
    seq_len: int
    capacity: float
    params_fp32: float
    grads_fp32: float
    adamw_state: float
    bf16_buffers: float
    loss_buffers: float
    overhead: float
    activations: float
    activations_checkpointed: float
    total: float
    total_checkpointed: float
    fits: bool
    fits_checkpointed: bool
    max_micro_batch: int
    max_micro_batch_checkpointed: int
    activation_checkpointing: bool


@dataclass(frozen=True)
class Progress:
    """Where a run stands and how long the rest takes at its measured throughput."""

    run_dir: str
    step: int
    tokens_seen: float
    target_tokens: float
    fraction_done: float
    tokens_per_sec: float
    throughput_source: str
    elapsed_s: float | None
    remaining_tokens: float
    remaining_s: float
    remaining_days: float
    remaining_gpu_hours: float
    remaining_cost: float | None


@dataclass(frozen=True)
class Plan:
    model: str
    params: int
    tokens: float
    tokens_source: str
    gpus: int
    gpu: str
    peak_tflops: float
    price_per_gpu_hour: float | None
    compute: Compute
    chinchilla: Chinchilla
    memory: Memory | None
    progress: Progress | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


# --- the planner ----------------------------------------------------------------------------


def plan(req: PlanRequest) -> Plan:
    """Compute, time, cost, Chinchilla comparison and FSDP memory for one training run."""
    _check_request(req)
    gpu = get_gpu(req.gpu)
    peak = (req.peak_tflops or gpu.peak_bf16_tflops) * 1e12
    n = req.params
    optimal_tokens = CHINCHILLA_TOKENS_PER_PARAM * n
    tokens = req.tokens if req.tokens is not None else optimal_tokens
    compute = _compute(req, peak, tokens)
    return Plan(
        model=req.model.name if req.model else "custom",
        params=n,
        tokens=tokens,
        tokens_source="given" if req.tokens is not None else "chinchilla-optimal (20 x params)",
        gpus=req.gpus,
        gpu=req.gpu.lower(),
        peak_tflops=peak / 1e12,
        price_per_gpu_hour=req.price_per_gpu_hour,
        compute=compute,
        chinchilla=chinchilla(n, tokens, compute.tokens_per_sec),
        memory=memory(req, gpu) if req.model is not None else None,
    )


def _check_request(req: PlanRequest) -> None:
    if req.mfu is not None and req.tokens_per_sec_per_gpu is not None:
        raise UserError("give either --mfu or --tokens-per-sec-per-gpu, not both")
    if req.mfu is not None and not 0 < req.mfu <= 1:
        raise UserError(f"--mfu must be a fraction in (0, 1], got {req.mfu}; 56% is 0.56")
    for name, value in (("--gpus", req.gpus), ("--tokens-per-sec-per-gpu", req.tokens_per_sec_per_gpu),
                        ("--seq-len", req.seq_len), ("--micro-batch", req.micro_batch),
                        ("--peak-tflops", req.peak_tflops), ("--gpu-memory-gib", req.gpu_memory_gib)):
        if value is not None and value <= 0:
            raise UserError(f"{name} must be positive, got {value}")
    if req.price_per_gpu_hour is not None and req.price_per_gpu_hour < 0:
        raise UserError(f"--price must not be negative, got {req.price_per_gpu_hour}")
    if req.model is not None and req.seq_len is not None and req.seq_len > req.model.block_size:
        raise UserError(
            f"--seq-len {req.seq_len} exceeds the model's context {req.model.block_size}; "
            "lower it or use a model with a longer block_size"
        )


def _compute(req: PlanRequest, peak: float, tokens: float) -> Compute:
    seq_len = (req.seq_len or req.model.block_size) if req.model is not None else req.seq_len
    fpt = float(req.model.flops_per_token(seq_len) if req.model is not None else 6 * req.params)
    if req.tokens_per_sec_per_gpu is not None:
        per_gpu = float(req.tokens_per_sec_per_gpu)
        mfu, source = per_gpu * fpt / peak, "implied by --tokens-per-sec-per-gpu"
    elif req.mfu is not None:
        mfu, source = req.mfu, "given"
        per_gpu = mfu * peak / fpt
    else:
        mfu, source = TINYLLAMA_MFU, "TinyLlama's measured 56%"
        if req.activation_checkpointing:
            mfu, source = TINYLLAMA_MFU * RECOMPUTE_MFU_FACTOR, "TinyLlama's 56% x 6/8 (recompute)"
        per_gpu = mfu * peak / fpt
    cluster = per_gpu * req.gpus
    seconds = tokens / cluster
    gpu_hours = seconds * req.gpus / 3600
    cost = gpu_hours * req.price_per_gpu_hour if req.price_per_gpu_hour is not None else None
    return Compute(seq_len, fpt, fpt * tokens, mfu, source, per_gpu, cluster, seconds,
                   seconds / 86400, gpu_hours, cost)


def chinchilla(params: float, tokens: float, tokens_per_sec: float) -> Chinchilla:
    """Tokens per parameter against Chinchilla's 20, and the compute-optimal model for the
    same budget C = 6 N D: N_opt = sqrt(C / (6 x 20)), D_opt = 20 N_opt."""
    optimal = CHINCHILLA_TOKENS_PER_PARAM * params
    c = 6.0 * params * tokens
    n_opt = math.sqrt(c / (6.0 * CHINCHILLA_TOKENS_PER_PARAM))
    return Chinchilla(
        tokens_per_param=tokens / params,
        optimal_tokens=optimal,
        multiple_of_optimal=tokens / optimal,
        compute_6nd=c,
        optimal_params_for_compute=n_opt,
        optimal_tokens_for_compute=CHINCHILLA_TOKENS_PER_PARAM * n_opt,
        days_to_optimal_tokens=optimal / tokens_per_sec / 86400,
    )


# --- memory ---------------------------------------------------------------------------------


def layer_activation_bytes_per_token(config: ModelConfig) -> int:
    """Bytes autograd saves per token in one block, bf16 compute, flash attention.

    Counted from model.py (and checked against `saved_tensors_hooks` in the tests):
    each RMSNorm keeps its fp32 input (4d), fp32 rstd (4), the bf16 normalised tensor (2d) and
    its bf16 output as the next matmul's input (2d); attention keeps q, k, v after RoPE
    (2d + 4 kv), its output, which is also wo's input (2d), and the fp32 log-sum-exp (4 per
    head) - flash attention stores no T x T scores; SwiGLU keeps gate, up, silu(gate) and
    w2's input (4 x 2 ffn).
    """
    d, kv, f, h = config.n_embd, config.kv_dim, config.intermediate_size, config.n_head
    norms = 2 * (4 * d + 4 + 2 * d + 2 * d)
    attention = 2 * d + 2 * 2 * kv + 2 * d + 4 * h
    mlp = 4 * 2 * f
    return norms + attention + mlp


def head_activation_bytes_per_token(config: ModelConfig) -> int:
    """The final RMSNorm (fp32 input 4d, rstd, bf16 normalised 2d), the gradient of the hidden
    state the fused loss precomputes (2d), and the input and target ids (2 x int64)."""
    d = config.n_embd
    return 4 * d + 4 + 2 * d + 2 * d + 16


def memory(req: PlanRequest, gpu: GPU) -> Memory:
    """Peak memory per GPU for one micro batch under FSDP2 full sharding (see docs/plan.md)."""
    config = req.model
    assert config is not None
    n, world = req.params, req.gpus
    seq_len = req.seq_len or config.block_size
    capacity = (req.gpu_memory_gib or gpu.memory_gib) * GIB
    block = config.block_params()
    root = n - config.n_layer * block  # embeddings, output head, final norm: FSDP's root group
    vocab_d = config.vocab_size * config.n_embd

    params_fp32, grads_fp32, adamw = 4 * n / world, 4 * n / world, 8 * n / world
    if world > 1:
        # bf16 all-gathered root group (kept unsharded by FSDP2 between forward and backward) and
        # two blocks (current + prefetched); two blocks' unsharded gradients in bf16 and their
        # fp32 copies for the reduce-scatter.
        bf16_buffers = 2 * (root + 2 * block) + 2 * (2 + 4) * block
    else:
        # One GPU trains the plain module under autocast: the bf16 copy of every matmul weight is
        # saved for backward (the input embedding is a lookup, not a matmul).
        bf16_buffers = 2 * (n - vocab_d)
    # The fused loss: an fp32 accumulator for the head's gradient, its bf16 copy kept for backward,
    # and one chunk of logits (fp32 logits, fp32 softmax, bf16 copy).
    loss_buffers = 4 * vocab_d + 2 * vocab_d + LOSS_CHUNK_ELEMENTS * (4 + 4 + 2)
    overhead = req.overhead_gib * GIB
    fixed = params_fp32 + grads_fp32 + adamw + bf16_buffers + loss_buffers + overhead

    layer = layer_activation_bytes_per_token(config)
    head = head_activation_bytes_per_token(config)
    # Without checkpointing: every block's saved tensors, plus about one block's worth of
    # gradient temporaries while the backward runs through a block.
    per_seq = seq_len * (config.n_layer * layer + head + layer)
    # Per-block full checkpointing: only each block's bf16 input is kept; in the backward one block
    # is recomputed (its saved tensors) and back-propagated (its temporaries).
    per_seq_ac = seq_len * (config.n_layer * 2 * config.n_embd + head + 2 * layer)

    max_b = max(0, int((capacity - fixed) // per_seq))
    max_b_ac = max(0, int((capacity - fixed) // per_seq_ac))
    if req.micro_batch is not None:
        micro, source = req.micro_batch, "given"
    else:
        micro = max(1, max_b_ac if req.activation_checkpointing else max_b)
        source = "largest that fits"
    total, total_ac = fixed + micro * per_seq, fixed + micro * per_seq_ac
    return Memory(
        micro_batch=micro, micro_batch_source=source, seq_len=seq_len, capacity=capacity,
        params_fp32=params_fp32, grads_fp32=grads_fp32, adamw_state=adamw,
        bf16_buffers=bf16_buffers, loss_buffers=loss_buffers, overhead=overhead,
        activations=micro * per_seq, activations_checkpointed=micro * per_seq_ac,
        total=total, total_checkpointed=total_ac,
        fits=total <= capacity, fits_checkpointed=total_ac <= capacity,
        max_micro_batch=max_b, max_micro_batch_checkpointed=max_b_ac,
        activation_checkpointing=req.activation_checkpointing,
    )


# --- projecting a run -----------------------------------------------------------------------


def _first(mapping: dict[str, Any], *names: str) -> Any:
    for name in names:
        if mapping.get(name) is not None:
            return mapping[name]
    return None


def measured_throughput(records: list[dict[str, Any]]) -> tuple[float, str]:
    """Tokens per second of the whole run (all GPUs).

    With elapsed_s (seconds since the job started): the wall clock between the first and last
    training records of the latest job - a resumed job restarts its clock, seen as elapsed_s or
    step going backwards. This includes the evaluation and checkpoint pauses the rest of the run
    will have too, and leaves out start-up and compilation before the first record. Otherwise,
    or with fewer than two records in that job, the median logged tokens_per_sec of the last 20.
    """
    train = [r for r in records if _is_number(r.get("tokens_seen")) and "val_loss" not in r]
    timed = [r for r in train if _is_number(r.get("elapsed_s")) and _is_number(r.get("step"))]
    start = 0
    for i in range(1, len(timed)):
        if timed[i]["elapsed_s"] <= timed[i - 1]["elapsed_s"] or timed[i]["step"] <= timed[i - 1]["step"]:
            start = i  # a new job (resume) begins here
    job = timed[start:]
    if len(job) >= 2:
        dt = job[-1]["elapsed_s"] - job[0]["elapsed_s"]
        dtok = job[-1]["tokens_seen"] - job[0]["tokens_seen"]
        if dt > 0 and dtok > 0:
            return dtok / dt, f"elapsed_s over the last {len(job)} records"
    rates = [r["tokens_per_sec"] for r in train if _is_number(r.get("tokens_per_sec")) and r["tokens_per_sec"] > 0]
    if not rates:
        raise UserError("metrics.jsonl has no tokens_per_sec or elapsed_s yet; let the run log a few steps")
    return statistics.median(rates[-20:]), f"median tokens_per_sec of the last {len(rates[-20:])} records"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def plan_from_run(run_dir: str | Path, *, tokens: float | None = None, gpus: int | None = None,
                  **overrides: Any) -> Plan:
    """Plan the rest of a run from its config.yaml and measured metrics.jsonl throughput.

    The model, sequence length, micro batch, world size (train.world_size, else devices x
    nodes), activation checkpointing and peak_flops come from config.yaml (explicit arguments
    win); the target is `tokens`, else max_steps x global batch x seq_len, else max_tokens.
    The per-GPU throughput is the measured one divided by the world size.
    """
    if overrides.get("mfu") is not None or overrides.get("tokens_per_sec_per_gpu") is not None:
        raise UserError("--from uses the run's measured throughput; drop --mfu / --tokens-per-sec-per-gpu")
    overrides.pop("mfu", None)
    overrides.pop("tokens_per_sec_per_gpu", None)
    run_dir = Path(run_dir)
    records = read_metrics(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise UserError(f"{run_dir} has no config.yaml; pass a run directory written by `tinyllama pretrain`")
    data = load_yaml(run_dir / "config.yaml")
    if "model" not in data:
        raise UserError(f"{run_dir / 'config.yaml'} has no model: section; is {run_dir} a run directory?")
    config = ModelConfig.from_dict(data["model"])
    train = data.get("train") or {}
    seq_len = overrides.pop("seq_len", None) or _first(train, "seq_len", "block_size") or config.block_size
    world = gpus or _world_size(data)
    target = tokens if tokens is not None else _target_tokens(train, seq_len)
    if target is None:
        raise UserError(f"{run_dir / 'config.yaml'} sets no max_tokens or max_steps; pass --tokens")
    rate, source = measured_throughput(records)
    last = [r for r in records if "tokens_seen" in r][-1]
    tokens_seen = float(last["tokens_seen"])
    micro = overrides.pop("micro_batch", None) or _first(train, "micro_batch_size", "micro_batch")
    overrides["activation_checkpointing"] = bool(
        overrides.get("activation_checkpointing") or train.get("activation_checkpointing"))
    if overrides.get("peak_tflops") is None and _is_number(train.get("peak_flops")):
        overrides["peak_tflops"] = train["peak_flops"] / 1e12
    req = PlanRequest(model=config, params=config.num_params(), tokens=target, gpus=world,
                      seq_len=seq_len, micro_batch=micro, tokens_per_sec_per_gpu=rate / world,
                      **overrides)
    result = plan(req)
    if tokens is None:
        result = dataclasses.replace(result, tokens_source=f"schedule in {run_dir / 'config.yaml'}")
    measured = dataclasses.replace(result.compute, mfu_source=f"measured in {run_dir}: {source}")
    remaining = max(0.0, target - tokens_seen)
    remaining_s = remaining / rate
    hours = remaining_s * world / 3600
    progress = Progress(
        run_dir=str(run_dir), step=int(last.get("step", 0)), tokens_seen=tokens_seen,
        target_tokens=target, fraction_done=min(1.0, tokens_seen / target), tokens_per_sec=rate,
        throughput_source=source, elapsed_s=_first(last, "elapsed_s"), remaining_tokens=remaining,
        remaining_s=remaining_s, remaining_days=remaining_s / 86400, remaining_gpu_hours=hours,
        remaining_cost=hours * req.price_per_gpu_hour if req.price_per_gpu_hour is not None else None,
    )
    return dataclasses.replace(result, compute=measured, progress=progress)


def _world_size(data: dict[str, Any]) -> int:
    train = data.get("train") or {}
    for section in (train, data.get("distributed") or {}, data):
        world = _first(section, "world_size")
        if world:
            return int(world)
        devices = _first(section, "devices", "gpus", "nproc_per_node")
        if devices:
            return int(devices) * int(_first(section, "nodes", "num_nodes") or 1)
    return 1


def _target_tokens(train: dict[str, Any], seq_len: int) -> float | None:
    """The schedule's tokens: max_steps x global batch (sequences) x seq_len, as the trainer
    runs it (it rounds max_tokens up to whole steps), else max_tokens."""
    steps, batch = train.get("max_steps"), _first(train, "global_batch_size", "global_batch")
    if steps and batch:
        return float(steps) * float(batch) * seq_len
    if train.get("max_tokens"):
        return float(train["max_tokens"])
    return None


__all__ = [
    "CHINCHILLA_TOKENS_PER_PARAM",
    "GPU",
    "GPUS",
    "TINYLLAMA_MFU",
    "Plan",
    "PlanRequest",
    "chinchilla",
    "layer_activation_bytes_per_token",
    "measured_throughput",
    "memory",
    "parse_count",
    "plan",
    "plan_from_run",
    "read_metrics",
    "resolve_model",
]


# --- presentation ---------------------------------------------------------------------------


def parse_fraction(text: str | float, what: str = "--mfu") -> float:
    """'0.56' or '56%' -> 0.56."""
    raw = str(text).strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise UserError(f"cannot read {what} {text!r}; write a fraction such as 0.56 or a percentage such as 56%") from None
    if not 0 < value <= 1:
        raise UserError(f"{what} must be in (0, 1] or (0%, 100%], got {text!r}")
    return value


def _count(x: float) -> str:
    return si(x, ".3g", small_spec=".3g")


def _flop(x: float) -> str:
    return si(x, ".3f", " ", giga="G", unit="FLOP")


def _hours(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:,.2f}"


def _money(x: float | None) -> str:
    if x is None:
        return "-"
    return f"${x:,.0f}" if x >= 100 else f"${x:,.2f}"


def _gib(x: float) -> str:
    return f"{x / GIB:.2f} GiB"


def render(p: Plan) -> list[Any]:
    """Rich tables for people: run, compute, Chinchilla, memory and (with --from) progress."""
    from rich import box
    from rich.table import Table

    def two_columns(title: str, rows: list[tuple[str, str]]) -> Table:
        table = Table(title=title, box=box.SIMPLE_HEAD, show_header=False, title_justify="left")
        table.add_column("what")
        table.add_column("value", justify="right")
        for row in rows:
            table.add_row(*row)
        return table

    c, ch = p.compute, p.chinchilla
    out = [two_columns("Run", [
        ("model", f"{p.model} ({p.params:,} parameters)"),
        ("tokens", f"{_count(p.tokens)} ({p.tokens_source})"),
        ("hardware", f"{p.gpus} x {p.gpu} ({p.peak_tflops:g} TFLOP/s bf16)"),
        ("sequence length", str(c.seq_len) if c.seq_len else "-"),
    ])]
    out.append(two_columns("Compute", [
        ("FLOPs per token", _flop(c.flops_per_token)),
        ("training FLOPs", f"{c.total_flops:.3e}"),
        ("MFU", f"{c.mfu:.1%} ({c.mfu_source})"),
        ("tokens/s per GPU", f"{c.tokens_per_sec_per_gpu:,.0f}"),
        ("tokens/s in all", f"{c.tokens_per_sec:,.0f}"),
        ("wall clock", f"{c.days:,.1f} days ({c.seconds / 3600:,.1f} h)"),
        ("GPU-hours", _hours(c.gpu_hours)),
        ("cost", _money(c.cost) if c.cost is not None else "- (give --price per GPU-hour)"),
    ]))
    out.append(two_columns("Chinchilla (Hoffmann et al. 2022, approach 1)", [
        ("tokens per parameter", f"{ch.tokens_per_param:,.1f}"),
        ("Chinchilla-optimal tokens", f"{_count(ch.optimal_tokens)} (reached in {ch.days_to_optimal_tokens * 24:,.1f} h)"),
        ("multiple of optimal", f"{ch.multiple_of_optimal:,.1f}x"),
        ("compute C = 6ND", f"{ch.compute_6nd:.3e} FLOPs"),
        ("optimal model for C", (f"{_count(ch.optimal_params_for_compute)} parameters on "
                                f"{_count(ch.optimal_tokens_for_compute)} tokens")),
    ]))
    if p.memory is not None:
        out.append(_memory_table(p.memory, p.gpus, p.gpu))
    else:
        out.append("memory: needs an architecture; pass a preset or a config file as --model")
    if p.progress is not None:
        g = p.progress
        out.append(two_columns(f"Progress of {g.run_dir}", [
            ("step", f"{g.step:,}"),
            ("tokens seen", f"{_count(g.tokens_seen)} of {_count(g.target_tokens)} ({g.fraction_done:.2%})"),
            ("measured tokens/s", f"{g.tokens_per_sec:,.0f} ({g.throughput_source})"),
            ("remaining", (f"{_count(g.remaining_tokens)} tokens, {g.remaining_days:,.2f} days "
                          f"({g.remaining_s / 3600:,.1f} h)")),
            ("remaining GPU-hours", _hours(g.remaining_gpu_hours)),
            ("remaining cost", _money(g.remaining_cost)),
        ]))
    return out


def _memory_table(m: Memory, gpus: int, gpu: str) -> Any:
    from rich import box
    from rich.table import Table

    chosen = " (chosen)"
    sharding = f"FSDP full sharding over {gpus}" if gpus > 1 else "one GPU, no sharding"
    table = Table(
        title=f"Memory per GPU: {sharding}, bf16 compute, flash attention; "
              f"micro batch {m.micro_batch} x {m.seq_len} ({m.micro_batch_source})",
        box=box.SIMPLE_HEAD, title_justify="left",
    )
    table.add_column("")
    table.add_column("no checkpointing" + ("" if m.activation_checkpointing else chosen), justify="right")
    table.add_column("activation checkpointing" + (chosen if m.activation_checkpointing else ""), justify="right")
    sharded = " (sharded)" if gpus > 1 else ""
    same = [(f"fp32 parameters{sharded}", m.params_fp32), (f"fp32 gradients{sharded}", m.grads_fp32),
            (f"AdamW moments{sharded}", m.adamw_state), ("bf16 weights/gradients in flight" if gpus > 1 else "bf16 weight copies (autocast)", m.bf16_buffers),
            ("fused-loss buffers", m.loss_buffers), ("CUDA context, NCCL, fragmentation", m.overhead)]
    for name, value in same:
        table.add_row(name, _gib(value), _gib(value))
    table.add_row("activations", _gib(m.activations), _gib(m.activations_checkpointed))
    table.add_row("total", _gib(m.total), _gib(m.total_checkpointed))
    table.add_row(f"capacity ({gpu})", _gib(m.capacity), _gib(m.capacity))
    yes_no = {True: "[green]yes[/]", False: "[red]no[/]"}
    table.add_row("fits", yes_no[m.fits], yes_no[m.fits_checkpointed])
    table.add_row("largest micro batch that fits", str(m.max_micro_batch), str(m.max_micro_batch_checkpointed))
    return table
