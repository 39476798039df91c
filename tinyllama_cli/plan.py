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
import math
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinyllama_cli.config import LOSS_CHUNK_ELEMENTS, PRESETS, ModelConfig, load_yaml
from tinyllama_cli.errors import UserError
from tinyllama_cli.hardware import GPU, GPUS
from tinyllama_cli.rundir import config_path, latest_job, median_mfu, read_metrics

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

# Memory kept free when choosing the largest micro batch, as a fraction of the GPU's memory
# (`--memory-margin`). The caching allocator's fragmentation grows with the activations (block
# sizes differ per tensor) and is not modelled, and the gradient temporaries and bf16 buffers of
# `memory` are estimates, not measurements. 10% is a judgement: it makes TinyLlama 1.1B on 16
# A100-40G come out at micro batch 8 (TinyLlama's own, 4.55 GiB free) instead of 9 (0.70 GiB).
MEMORY_MARGIN = 0.10

_SUFFIXES = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}


def parse_count(text: str | float, what: str = "count") -> float:
    """'3T', '300B', '2.5e12', '1_000_000', '120M' -> a float (decimal suffixes k, M, B/G, T)."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        match = re.fullmatch(
            r"\s*([0-9][0-9_]*(?:\.[0-9]*)?(?:e[+-]?[0-9]+)?)\s*([kmbgt]?)\s*",
            str(text),
            re.IGNORECASE,
        )
        if not match:
            raise UserError(
                f"cannot read {what} {text!r}; write a number such as 3T, 300B, 2.5e12 or 120M"
            )
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
    memory_margin: float = MEMORY_MARGIN


@dataclass(frozen=True)
class Compute:
    seq_len: int | None
    flops_per_token: float
    total_flops: float
    mfu: float | None  # None: a run (--from) that logged no mfu
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
    """Bytes per GPU; `activations` is for `micro_batch` sequences of `seq_len` tokens. A micro
    batch fits when its total leaves `margin` (`margin_fraction` of `capacity`) free."""

    micro_batch: int
    micro_batch_source: str
    seq_len: int
    capacity: float
    margin_fraction: float
    margin: float
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
    remaining_tokens_per_sec: float  # the measured rate, or the projected one with --gpu


@dataclass(frozen=True)
class RunHardware:
    """What a run (`--from`) trained on: accelerator and world size from config.yaml, and the
    median of the MFU the trainer logged, with the peak FLOP/s per device that MFU is against."""

    accelerator: str  # "cpu", "cuda", or "unknown" (accelerator auto, not recorded)
    world_size: int
    mfu: float | None
    mfu_records: int
    peak_flops_per_device: float | None


@dataclass(frozen=True)
class Plan:
    model: str
    params: int
    tokens: float
    tokens_source: str
    gpus: int
    gpu: str  # with --from and no --gpu: the run's accelerator (cpu, cuda or unknown)
    peak_tflops: float | None
    price_per_gpu_hour: float | None
    compute: Compute
    chinchilla: Chinchilla
    memory: Memory | None
    progress: Progress | None = None
    hardware: str = "given"  # "given", "run" (--from: the run's own) or "projection" (--from --gpu)
    run_hardware: RunHardware | None = None
    device: str = "GPU"  # what one of `gpus` is called in the tables: GPU, or worker

    def to_dict(self) -> dict[str, Any]:
        """What `plan --json` prints: every field, the sections as nested mappings."""
        return dataclasses.asdict(self)


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
    for name, value in (
        ("--gpus", req.gpus),
        ("--tokens-per-sec-per-gpu", req.tokens_per_sec_per_gpu),
        ("--seq-len", req.seq_len),
        ("--micro-batch", req.micro_batch),
        ("--peak-tflops", req.peak_tflops),
        ("--gpu-memory-gib", req.gpu_memory_gib),
    ):
        if value is not None and value <= 0:
            raise UserError(f"{name} must be positive, got {value}")
    if not 0 <= req.memory_margin < 1:
        raise UserError(f"--memory-margin must be in [0, 1) (10% is 0.1), got {req.memory_margin}")
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
    return Compute(
        seq_len,
        fpt,
        fpt * tokens,
        mfu,
        source,
        per_gpu,
        cluster,
        seconds,
        seconds / 86400,
        gpu_hours,
        cost,
    )


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

    margin = req.memory_margin * capacity
    usable = capacity - margin
    max_b = max(0, int((usable - fixed) // per_seq))
    max_b_ac = max(0, int((usable - fixed) // per_seq_ac))
    if req.micro_batch is not None:
        micro, source = req.micro_batch, "given"
    else:
        micro = max(1, max_b_ac if req.activation_checkpointing else max_b)
        source = "largest that fits"
    total, total_ac = fixed + micro * per_seq, fixed + micro * per_seq_ac
    return Memory(
        micro_batch=micro,
        micro_batch_source=source,
        seq_len=seq_len,
        capacity=capacity,
        margin_fraction=req.memory_margin,
        margin=margin,
        params_fp32=params_fp32,
        grads_fp32=grads_fp32,
        adamw_state=adamw,
        bf16_buffers=bf16_buffers,
        loss_buffers=loss_buffers,
        overhead=overhead,
        activations=micro * per_seq,
        activations_checkpointed=micro * per_seq_ac,
        total=total,
        total_checkpointed=total_ac,
        fits=total <= usable,
        fits_checkpointed=total_ac <= usable,
        max_micro_batch=max_b,
        max_micro_batch_checkpointed=max_b_ac,
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
    training records of the latest job (`rundir.latest_job`). This includes the evaluation
    and checkpoint pauses the rest of the run will have too, and leaves out start-up and
    compilation before the first record. Otherwise, or with fewer than two records in that job,
    the median logged tokens_per_sec of its last 20 records.
    """
    job = latest_job(records)
    timed = [r for r in job if _is_number(r.get("elapsed_s"))]
    if len(timed) >= 2:
        dt = timed[-1]["elapsed_s"] - timed[0]["elapsed_s"]
        dtok = timed[-1]["tokens_seen"] - timed[0]["tokens_seen"]
        if dt > 0 and dtok > 0:
            return dtok / dt, f"elapsed_s over the last {len(timed)} records"
    rates = [
        r["tokens_per_sec"]
        for r in job
        if _is_number(r.get("tokens_per_sec")) and r["tokens_per_sec"] > 0
    ]
    if not rates:
        raise UserError(
            "metrics.jsonl has no tokens_per_sec or elapsed_s yet; let the run log a few steps"
        )
    return statistics.median(
        rates[-20:]
    ), f"median tokens_per_sec of the last {len(rates[-20:])} records"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def run_hardware(
    data: dict[str, Any],
    records: list[dict[str, Any]],
    flops_per_token: float,
    world_size: int | None = None,
) -> RunHardware:
    """What a run trained on, from its config.yaml and metrics.jsonl (see RunHardware).

    The accelerator is config.yaml's `hardware.accelerator` (what `auto` resolved to, written by
    pretrain), else an explicit `train.accelerator`. The peak per device is `train.peak_flops`
    when set, else what the logged mfu implies: tokens/s x FLOPs/token / (mfu x world).
    """
    train = data.get("train") or {}
    recorded = (data.get("hardware") or {}).get("accelerator") or train.get("accelerator")
    accelerator = recorded if recorded in ("cpu", "cuda") else "unknown"
    world = world_size or _world_size(data)
    mfu = median_mfu(records)
    peak = float(train["peak_flops"]) if _is_number(train.get("peak_flops")) else None
    if peak is None:
        implied = [
            r["tokens_per_sec"] * flops_per_token / (r["mfu"] * world)
            for r in latest_job(records)
            if _is_number(r.get("tokens_per_sec")) and _is_number(r.get("mfu")) and r["mfu"] > 0
        ]
        peak = statistics.median(implied) if implied else None
    return RunHardware(
        accelerator=accelerator,
        world_size=world,
        mfu=mfu[0] if mfu else None,
        mfu_records=mfu[1] if mfu else 0,
        peak_flops_per_device=peak,
    )


def plan_from_run(
    run_dir: str | Path,
    *,
    tokens: float | None = None,
    gpus: int | None = None,
    gpu: str | None = None,
    **overrides: Any,
) -> Plan:
    """Plan the rest of a run from its config.yaml and measured metrics.jsonl.

    The model, sequence length, micro batch, world size (train.world_size, else devices x
    nodes), activation checkpointing and peak_flops come from config.yaml (explicit arguments
    win); the target is `tokens`, else max_steps x global batch x seq_len, else max_tokens.

    Without `gpu` the plan is of the run's own hardware (`gpus` = its world size if config.yaml
    lacks it): its measured throughput and its median logged MFU, and no GPU memory section.
    With `gpu` it is a projection onto `gpus` (default: the run's world size) of that GPU at the
    run's measured MFU, or at `mfu` / `tokens_per_sec_per_gpu` when given.
    """
    run_dir = Path(run_dir)
    records = read_metrics(run_dir)
    data = _run_config(run_dir)
    config = ModelConfig.from_dict(data["model"])
    train = data.get("train") or {}
    seq_len = (
        overrides.pop("seq_len", None)
        or _first(train, "seq_len", "block_size")
        or config.block_size
    )
    target = tokens if tokens is not None else _target_tokens(train, seq_len)
    if target is None:
        raise UserError(f"{config_path(run_dir)} sets no max_tokens or max_steps; pass --tokens")
    rate, source = measured_throughput(records)
    fpt = float(config.flops_per_token(seq_len))
    if gpu is None:
        hw = run_hardware(data, records, fpt, gpus)
        result = _plan_on_run_hardware(
            config, target, hw, rate, source, seq_len, run_dir, overrides
        )
    else:
        hw = run_hardware(data, records, fpt)
        micro = overrides.pop("micro_batch", None) or _first(
            train, "micro_batch_size", "micro_batch"
        )
        overrides["activation_checkpointing"] = bool(
            overrides.get("activation_checkpointing") or train.get("activation_checkpointing")
        )
        result = _project_run(
            config, target, hw, gpu, gpus or hw.world_size, seq_len, micro, run_dir, overrides
        )
    if tokens is None:
        result = dataclasses.replace(result, tokens_source=f"schedule in {config_path(run_dir)}")
    return dataclasses.replace(result, progress=_progress(result, records, rate, source, run_dir))


def _run_config(run_dir: Path) -> dict[str, Any]:
    path = config_path(run_dir)
    if not path.is_file():
        raise UserError(
            f"{run_dir} has no config.yaml; pass a run directory written by `tinyllama pretrain`"
        )
    data = load_yaml(path)
    if "model" not in data:
        raise UserError(f"{path} has no model: section; is {run_dir} a run directory?")
    return data


def _plan_on_run_hardware(
    config: ModelConfig,
    target: float,
    hw: RunHardware,
    rate: float,
    source: str,
    seq_len: int,
    run_dir: Path,
    options: dict[str, Any],
) -> Plan:
    """The run's own devices at the throughput and MFU it measured; no GPU memory model."""
    given = [
        flag
        for key, flag in (
            ("mfu", "--mfu"),
            ("tokens_per_sec_per_gpu", "--tokens-per-sec-per-gpu"),
            ("peak_tflops", "--peak-tflops"),
            ("gpu_memory_gib", "--gpu-memory-gib"),
        )
        if options.get(key) is not None
    ]
    if given:
        raise UserError(
            f"--from reports the run's measured throughput on its own hardware; drop "
            f"{' / '.join(given)}, or add --gpu NAME to project the run onto that GPU"
        )
    price = options.get("price_per_gpu_hour")
    req = PlanRequest(
        model=config,
        params=config.num_params(),
        tokens=target,
        gpus=hw.world_size,
        seq_len=seq_len,
        price_per_gpu_hour=price,
    )
    _check_request(req)
    fpt = float(config.flops_per_token(seq_len))
    seconds = target / rate
    hours = seconds * hw.world_size / 3600
    mfu_source = f"median logged in {run_dir}, {hw.mfu_records} records"
    if hw.accelerator == "cpu":
        mfu_source += "; against the CPU's measured matmul peak"
    compute = Compute(
        seq_len,
        fpt,
        fpt * target,
        hw.mfu,
        mfu_source if hw.mfu is not None else f"metrics.jsonl in {run_dir} logs no mfu",
        rate / hw.world_size,
        rate,
        seconds,
        seconds / 86400,
        hours,
        hours * price if price is not None else None,
    )
    peak = hw.peak_flops_per_device
    return Plan(
        model=config.name,
        params=req.params,
        tokens=target,
        tokens_source="given",
        gpus=hw.world_size,
        gpu=hw.accelerator,
        peak_tflops=peak / 1e12 if peak else None,
        price_per_gpu_hour=price,
        compute=compute,
        chinchilla=chinchilla(req.params, target, rate),
        memory=None,
        hardware="run",
        run_hardware=hw,
        device="GPU" if hw.accelerator == "cuda" else "worker",
    )


def _project_run(
    config: ModelConfig,
    target: float,
    hw: RunHardware,
    gpu: str,
    gpus: int,
    seq_len: int,
    micro: int | None,
    run_dir: Path,
    options: dict[str, Any],
) -> Plan:
    """`gpus` x `gpu` at the run's measured MFU (unless --mfu / --tokens-per-sec-per-gpu)."""
    own_mfu = options.get("mfu") is None and options.get("tokens_per_sec_per_gpu") is None
    if own_mfu:
        if hw.mfu is None:
            raise UserError(
                f"metrics.jsonl in {run_dir} logs no mfu to project with; pass --mfu "
                "(or --tokens-per-sec-per-gpu) for the projection"
            )
        options = {**options, "mfu": hw.mfu}
    req = PlanRequest(
        model=config,
        params=config.num_params(),
        tokens=target,
        gpus=gpus,
        gpu=gpu,
        seq_len=seq_len,
        micro_batch=micro,
        **options,
    )
    result = plan(req)
    if own_mfu:
        source = (
            f"the run's measured {hw.mfu:.1%} on {hw.world_size} x {hw.accelerator}, "
            f"applied to {result.gpu}"
        )
        result = dataclasses.replace(
            result, compute=dataclasses.replace(result.compute, mfu_source=source)
        )
    return dataclasses.replace(result, hardware="projection", run_hardware=hw)


def _progress(
    p: Plan, records: list[dict[str, Any]], rate: float, source: str, run_dir: Path
) -> Progress:
    """Where the run stands, and the rest at the plan's throughput (measured, or projected)."""
    last = [r for r in records if "tokens_seen" in r][-1]
    tokens_seen = float(last["tokens_seen"])
    remaining = max(0.0, p.tokens - tokens_seen)
    remaining_s = remaining / p.compute.tokens_per_sec
    hours = remaining_s * p.gpus / 3600
    return Progress(
        run_dir=str(run_dir),
        step=int(last.get("step", 0)),
        tokens_seen=tokens_seen,
        target_tokens=p.tokens,
        fraction_done=min(1.0, tokens_seen / p.tokens),
        tokens_per_sec=rate,
        throughput_source=source,
        elapsed_s=_first(last, "elapsed_s"),
        remaining_tokens=remaining,
        remaining_s=remaining_s,
        remaining_days=remaining_s / 86400,
        remaining_gpu_hours=hours,
        remaining_cost=hours * p.price_per_gpu_hour if p.price_per_gpu_hour is not None else None,
        remaining_tokens_per_sec=p.compute.tokens_per_sec,
    )


def _world_size(data: dict[str, Any]) -> int:
    train = data.get("train") or {}
    for section in (data.get("hardware") or {}, train, data.get("distributed") or {}, data):
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


# --- options -------------------------------------------------------------------------------


def parse_fraction(text: str | float, what: str = "--mfu", allow_zero: bool = False) -> float:
    """'0.56' or '56%' -> 0.56; in (0, 1], or [0, 1) with `allow_zero` (a margin)."""
    raw = str(text).strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise UserError(
            f"cannot read {what} {text!r}; write a fraction such as 0.56 or a "
            "percentage such as 56%"
        ) from None
    if allow_zero and not 0 <= value < 1:
        raise UserError(f"{what} must be in [0, 1) or [0%, 100%), got {text!r}")
    if not allow_zero and not 0 < value <= 1:
        raise UserError(f"{what} must be in (0, 1] or (0%, 100%], got {text!r}")
    return value


@dataclass(frozen=True)
class PlanOptions:
    """`tinyllama plan`'s flags as given: counts and fractions still as text ('3T', '56%')."""

    model: str | None = None  # default tinyllama-1.1b; with from_run, none
    tokens: str | None = None
    gpus: int | None = None
    gpu: str | None = None
    peak_tflops: float | None = None
    gpu_memory_gib: float | None = None
    mfu: str | None = None
    tokens_per_sec_per_gpu: float | None = None
    price: float | None = None
    seq_len: int | None = None
    micro_batch: int | None = None
    activation_checkpointing: bool = False
    overhead_gib: float = 2.0
    memory_margin: str = "10%"
    from_run: str | None = None


def plan_from_options(o: PlanOptions) -> Plan:
    """What `tinyllama plan` computes: the flags parsed (--mfu, --memory-margin, --tokens, in
    that order), then the plan of the run given by --from, or of --model."""
    options = {
        "peak_tflops": o.peak_tflops,
        "gpu_memory_gib": o.gpu_memory_gib,
        "mfu": parse_fraction(o.mfu) if o.mfu is not None else None,
        "tokens_per_sec_per_gpu": o.tokens_per_sec_per_gpu,
        "price_per_gpu_hour": o.price,
        "seq_len": o.seq_len,
        "micro_batch": o.micro_batch,
        "activation_checkpointing": o.activation_checkpointing,
        "overhead_gib": o.overhead_gib,
        "memory_margin": parse_fraction(o.memory_margin, "--memory-margin", allow_zero=True),
    }
    count = parse_count(o.tokens, "--tokens") if o.tokens is not None else None
    if o.from_run is not None:
        if o.model is not None:
            raise UserError("--from takes the model from the run's config.yaml; drop --model")
        return plan_from_run(o.from_run, tokens=count, gpus=o.gpus, gpu=o.gpu, **options)
    config, params = resolve_model(o.model or "tinyllama-1.1b")
    return plan(
        PlanRequest(
            model=config,
            params=params,
            tokens=count,
            gpus=o.gpus or 1,
            gpu=o.gpu or "a100-40g",
            **options,
        )
    )


__all__ = [
    "CHINCHILLA_TOKENS_PER_PARAM",
    "GPU",
    "GPUS",
    "MEMORY_MARGIN",
    "TINYLLAMA_MFU",
    "Plan",
    "PlanOptions",
    "PlanRequest",
    "chinchilla",
    "layer_activation_bytes_per_token",
    "measured_throughput",
    "memory",
    "parse_count",
    "parse_fraction",
    "plan",
    "plan_from_options",
    "plan_from_run",
    "read_metrics",
    "resolve_model",
    "run_hardware",
]
