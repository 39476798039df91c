"""Configuration dataclasses: the model architecture, its named presets, and YAML helpers.

A `ModelConfig` is everything needed to build the network; it is a pure description, so the
parameter count and FLOPs per token can be computed from it without allocating a model (the
`models` and `plan` commands rely on that).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass, fields
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar, get_args, get_type_hints

import yaml

from tinyllama_cli import files
from tinyllama_cli.dtypes import TRAIN_PRECISIONS, accepted, canonical_precision
from tinyllama_cli.errors import UserError

# Logits elements per chunk of the fused output-projection + cross-entropy (`model.py`): 1024
# rows of a 32000 vocabulary, 128 MiB in fp32. Here rather than in model.py because `plan`
# counts these buffers in its memory model and must not import torch.
LOSS_CHUNK_ELEMENTS = 2**25


@dataclass(frozen=True)
class ModelConfig:
    """A Llama-2 architecture: pre-norm RMSNorm, RoPE (half-split), GQA, SwiGLU, no biases."""

    name: str = "custom"
    vocab_size: int = 32000
    n_layer: int = 22
    n_embd: int = 2048
    n_head: int = 32
    n_kv_head: int = 4
    intermediate_size: int = 5632
    block_size: int = 2048
    norm_eps: float = 1e-5
    rope_base: float = 10000.0

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head:
            raise UserError(f"n_embd {self.n_embd} is not divisible by n_head {self.n_head}")
        if self.n_head % self.n_kv_head:
            raise UserError(f"n_head {self.n_head} is not divisible by n_kv_head {self.n_kv_head}")
        if self.head_dim % 2:
            raise UserError(f"head_dim {self.head_dim} must be even for RoPE")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def kv_dim(self) -> int:
        return self.n_kv_head * self.head_dim

    # --- sizes -------------------------------------------------------------------------------

    def block_params(self) -> int:
        """Parameters of one transformer block: attention, SwiGLU MLP and the two norms."""
        d, kv, ffn = self.n_embd, self.kv_dim, self.intermediate_size
        attention = d * d + 2 * d * kv + d * d  # wq, wk, wv, wo
        mlp = 3 * d * ffn  # w1 (gate), w3 (up), w2 (down)
        return attention + mlp + 2 * d

    def num_params(self, include_embedding: bool = True) -> int:
        """Exact parameter count (untied input embedding and output head)."""
        embedding = self.vocab_size * self.n_embd
        body = self.n_layer * self.block_params() + self.n_embd  # + final norm
        head = self.vocab_size * self.n_embd
        return body + head + (embedding if include_embedding else 0)

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Training FLOPs per token (forward + backward), torchtitan's convention.

        6 * (parameters - input embedding) covers every matmul with a weight (2 FLOPs per
        multiply-add forward, 4 backward); the embedding lookup does no matmul, so it is left
        out, while the output head is in. Attention scores and the weighted sum add
        12 * n_layer * n_embd * seq_len (counted as full, non-causal attention, as torchtitan and
        PaLM do). For TinyLlama 1.1B at seq_len 2048 this is 7.31 GFLOP/token, and 24,000
        tokens/s on a 312 TFLOP/s A100 is 56.3% MFU, the figure TinyLlama reports.
        """
        t = self.block_size if seq_len is None else seq_len
        return 6 * self.num_params(include_embedding=False) + 12 * self.n_layer * self.n_embd * t

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(
                f"unknown model config field(s) {', '.join(unknown)}; "
                f"valid fields: {', '.join(sorted(known))}"
            )
        return cls(**data)

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, ModelConfig] = {
    config.name: config
    for config in [
        # TinyLlama 1.1B exactly: 1,100,048,384 parameters.
        ModelConfig(name="tinyllama-1.1b"),
        # A GPT-2-small-sized sibling: same shape family (GQA 3:1 per kv head, ffn 2.67x).
        ModelConfig(
            name="tinyllama-120m",
            n_layer=12,
            n_embd=768,
            n_head=12,
            n_kv_head=4,
            intermediate_size=2048,
        ),
        # CPU benchmark preset: 32000 vocabulary like the real thing, trains at a usable speed
        # on 2 cores (seq 512, micro batch 8 in benchmarks/).
        ModelConfig(
            name="cpu-bench",
            n_layer=6,
            n_embd=512,
            n_head=8,
            n_kv_head=2,
            intermediate_size=1408,
            block_size=512,
        ),
        # Quickstart / demo preset: trains in minutes on a laptop CPU.
        ModelConfig(
            name="cpu-small",
            vocab_size=8192,
            n_layer=4,
            n_embd=256,
            n_head=8,
            n_kv_head=2,
            intermediate_size=704,
            block_size=256,
        ),
        # Unit-test preset: milliseconds per step.
        ModelConfig(
            name="cpu-tiny",
            vocab_size=512,
            n_layer=2,
            n_embd=64,
            n_head=4,
            n_kv_head=2,
            intermediate_size=176,
            block_size=128,
        ),
    ]
}


def describe_presets() -> list[dict[str, Any]]:
    """What `tinyllama models` lists: each preset's shape, exact parameter count and training
    FLOPs per token (the rest of its fields are the same for every preset)."""
    return [
        {
            "name": c.name,
            "n_layer": c.n_layer,
            "n_embd": c.n_embd,
            "n_head": c.n_head,
            "n_kv_head": c.n_kv_head,
            "intermediate_size": c.intermediate_size,
            "vocab_size": c.vocab_size,
            "block_size": c.block_size,
            "params": c.num_params(),
            "flops_per_token": c.flops_per_token(),
        }
        for c in PRESETS.values()
    ]


def get_preset(name: str) -> ModelConfig:
    """The named preset, or a UserError listing the valid names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise UserError(
            f"unknown model preset {name!r}; choose one of: {', '.join(PRESETS)} "
            "(see `tinyllama models`)"
        ) from None


# --- YAML ------------------------------------------------------------------------------------


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, turning every way it can be wrong into one clear UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} does not exist; pass an existing YAML file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"config file {path} is not valid YAML{where}; fix its syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of field: value pairs")
    return data


def dump_yaml(data: dict[str, Any], path: str | Path) -> None:
    """Write YAML atomically (`files.write_text`), keys in the order given."""
    files.write_text(path, yaml.safe_dump(data, sort_keys=False))


# --- training --------------------------------------------------------------------------------


class Resume(Enum):
    """What `tinyllama resume` may do with the fields of a section."""

    KEEP = "keep"  # the run's own: no resume flag, and a different value is refused
    CHANGE = "change"  # a resume flag: the continued run may use another value


def _field(default: Any, help: str) -> Any:
    return dataclasses.field(default=default, metadata={"help": help})


@dataclass
class Training:
    """What this job trains on and for how long. A resume may point --data at a moved copy
    (its manifest must match) and raise --max-steps (the cosine re-stretches from there; WSD
    lengthens its flat part)."""

    RESUME: ClassVar[Resume] = Resume.CHANGE

    data: str | None = _field(None, "Token data dir written by `tinyllama prepare-data`.")
    max_steps: int | None = _field(None, "Optimizer steps of the schedule.")
    max_tokens: int | None = _field(None, "Tokens of the schedule (instead of --max-steps).")
    stop_at_step: int | None = _field(
        None, "End this job at this step with a checkpoint; the schedule is unchanged."
    )


@dataclass
class RunDir:
    """Where the run lives: a resume continues RUN_DIR in place."""

    RESUME: ClassVar[Resume] = Resume.KEEP

    out: str | None = _field(None, "Run directory to create (checkpoints, metrics, config).")
    overwrite: bool = _field(False, "Replace an existing run directory.")


@dataclass
class ModelChoice:
    """The network and the weights it starts from (the architecture itself: `ModelConfig`)."""

    RESUME: ClassVar[Resume] = Resume.KEEP

    model: str = _field("cpu-small", "Model preset (see `tinyllama models`), or a mapping in YAML.")
    vocab_size: int | None = _field(None, "Model vocabulary; default: the data's tokenizer size.")
    init_from: str | None = _field(None, "Start from these weights (run, checkpoint or HF dir).")


@dataclass
class DataOrder:
    """Which samples each step trains on. The global batch is counted in sequences across all
    workers, so the same config trains the same model on 1 or 16 workers."""

    RESUME: ClassVar[Resume] = Resume.KEEP

    mix: str | None = _field(None, "Source weights NAME=W,...; default: by train tokens.")
    seed: int = _field(1337, "Seed of the initialisation and of the data order.")
    seq_len: int | None = _field(None, "Tokens per training sequence; default: block size.")
    global_batch_size: int = _field(64, "Sequences per optimizer step, across all workers.")
    global_batch_tokens: int | None = _field(
        None, "Tokens per optimizer step (sets --global-batch-size to this / seq_len)."
    )


# The learning-rate schedules and WSD's decay shapes (`train/schedule.py` computes them); the
# names are here so that a config with a misspelt one fails when it is built.
LR_SCHEDULES = ("cosine", "wsd", "constant")
DECAY_SHAPE_NAMES = ("linear", "cosine", "1-sqrt")
DEFAULT_DECAY_FRACTION = 0.2  # WSD without --decay-steps/--decay-fraction: the last 20% decay
DEFAULT_DECAY_SHAPE = "1-sqrt"  # Hägele et al. 2024: 1-sqrt beats linear at equal length


@dataclass
class Schedule:
    """The learning rate over the steps: TinyLlama's cosine (warmup, cosine to min_lr), WSD
    (warmup, flat, a final decay: a resume may lengthen it), or constant."""

    RESUME: ClassVar[Resume] = Resume.CHANGE

    lr: float = _field(4e-4, "Peak learning rate.")
    min_lr: float = _field(4e-5, "Learning rate at the end of the decay.")
    warmup_steps: int = _field(2000, "Linear warmup steps.")
    lr_schedule: str = _field(
        "cosine",
        f"{'|'.join(LR_SCHEDULES)}: cosine decays over the whole "
        "run (TinyLlama); wsd holds --lr and decays at the end "
        "(resume --max-steps lengthens its flat part); constant "
        "never decays.",
    )
    decay_steps: int | None = _field(None, "WSD: steps of the final decay.")
    decay_fraction: float | None = _field(
        None,
        f"WSD: the final decay as a fraction of --max-steps (default {DEFAULT_DECAY_FRACTION}).",
    )
    decay_shape: str | None = _field(
        None, f"WSD: {'|'.join(DECAY_SHAPE_NAMES)} (default {DEFAULT_DECAY_SHAPE})."
    )
    decay_start_lr: float | None = _field(
        None,
        "WSD: the lr the decay starts from (default "
        "--lr); `tinyllama anneal` sets the lr the "
        "parent trained the branch checkpoint at.",
    )

    def __post_init__(self) -> None:
        for flag, value, names in (
            ("--lr-schedule", self.lr_schedule, LR_SCHEDULES),
            ("--decay-shape", self.decay_shape, DECAY_SHAPE_NAMES),
        ):
            if value is not None and value not in names:
                raise UserError(f"{flag} {value!r} is not one of {', '.join(names)}; pick one")


@dataclass
class Optimizer:
    """AdamW's settings and gradient clipping (TinyLlama: clip 1.0)."""

    RESUME: ClassVar[Resume] = Resume.CHANGE

    weight_decay: float = _field(0.1, "AdamW weight decay.")
    beta1: float = _field(0.9, "AdamW beta1.")
    beta2: float = _field(0.95, "AdamW beta2.")
    eps: float = _field(1e-8, "AdamW epsilon.")
    grad_clip: float = _field(1.0, "Clip the global gradient norm to this (0: off).")


@dataclass
class Logging:
    """What is measured and where it goes: metrics, validation loss, TensorBoard, W&B."""

    RESUME: ClassVar[Resume] = Resume.CHANGE

    log_every: int = _field(10, "Log metrics every N steps.")
    eval_every: int = _field(1000, "Validation loss every N steps (0: only at the end).")
    eval_samples: int = _field(256, "At most this many validation sequences per evaluation.")
    peak_flops: float | None = _field(None, "Peak FLOP/s per device for MFU (default: table).")
    tensorboard: bool = _field(True, "Write TensorBoard events to RUN_DIR/tensorboard.")
    wandb: bool = _field(False, "Log to Weights & Biases (needs `pip install wandb`).")
    wandb_project: str = _field("tinyllama", "W&B project.")


@dataclass
class DownstreamEval:
    """lm-eval tasks scored on the live model while it trains (metrics `eval/<task>/<metric>`),
    so a run's curve of downstream scores needs no conversion or separate eval jobs."""

    RESUME: ClassVar[Resume] = Resume.CHANGE

    eval_tasks: str | None = _field(
        None,
        "lm-eval tasks to score during training, e.g. "
        "hellaswag,piqa (tinyllama: the seven); "
        "log-likelihood tasks only.",
    )
    eval_dataset: str | None = _field(
        None, "TASK=PATH[,TASK=PATH...]: local data of --eval-tasks, as `tinyllama eval --dataset`."
    )
    eval_tasks_every: int | None = _field(
        None, "Score --eval-tasks every N steps (default: --eval-every) and at the end."
    )
    eval_limit: int | None = _field(None, "At most this many documents per task.")
    eval_fewshot: int | None = _field(None, "Few-shot examples (default: each task's).")


@dataclass
class Checkpointing:
    """How often checkpoints are written and how many are kept."""

    RESUME: ClassVar[Resume] = Resume.CHANGE

    save_every: int = _field(1000, "Checkpoint every N steps (and always at the end).")
    keep_last: int = _field(3, "Keep the newest K checkpoints (0: keep all).")
    async_save: bool = _field(
        False,
        "Write checkpoints in a background thread (DCP async_save) "
        "while training goes on; the last one is written before exit.",
    )


ATTENTION_BACKENDS = ("auto", "flash", "sdpa")
# `--compile` left to auto turns compile on for CPU bf16 runs of at least this many micro batches
# per worker: over twice the cold-cache break-even measured on 2 cores with AMX (the quickstart's
# 300 x 4 micro batches: compiled 575 s vs eager 588 s, break-even ~870; benchmarks/bench_compile.py
# with a step per micro batch: ~475), so a job auto compiles is not slower for it.
AUTO_COMPILE_MIN_MICRO_BATCHES = 2000


@dataclass
class Speed:
    """How each step is computed; none of it changes what is trained (gradient accumulation
    follows from the micro batch)."""

    RESUME: ClassVar[Resume] = Resume.CHANGE

    micro_batch_size: int = _field(8, "Sequences per worker per forward/backward.")
    precision: str = _field(
        "auto",
        f"{accepted(TRAIN_PRECISIONS, auto=True)} (fp16 is refused: "
        "no grad scaler). auto: bf16 on CUDA, and on CPUs with "
        "AMX/AVX512-BF16; fp32 otherwise.",
    )
    compile: bool | None = _field(
        None,
        "torch.compile each transformer block. Default (auto): on for bf16 runs on a CPU of at "
        f"least {AUTO_COMPILE_MIN_MICRO_BATCHES:,} micro batches per worker, where a C++ "
        "compiler is found; off otherwise.",
    )
    activation_checkpointing: bool = _field(False, "Recompute block activations in backward.")
    attention: str = _field(
        "auto",
        "auto|flash|sdpa. auto: flash-attn 2 when installed, on CUDA "
        "in bf16/fp16; SDPA otherwise. flash: required (error without).",
    )

    def __post_init__(self) -> None:
        # One spelling per precision whatever the user typed (`bfloat16` is stored as `bf16`), so
        # config.yaml, resume and the trainer compare and act on the same names.
        self.precision = canonical_precision(self.precision)
        if self.attention not in ATTENTION_BACKENDS:
            raise UserError(
                f"--attention {self.attention!r} is not one of {', '.join(ATTENTION_BACKENDS)}"
            )


@dataclass
class Launch:
    """Where and how this job runs: never part of a run's identity, so a resume may move a
    run to other machines, devices or thread counts."""

    RESUME: ClassVar[Resume] = Resume.CHANGE

    num_threads: int | None = _field(None, "CPU threads per worker (default: cores / workers).")
    accelerator: str = _field("auto", "auto|cpu|cuda.")
    devices: int = _field(1, "Workers on this machine (GPUs, or CPU processes).")
    nodes: int = _field(1, "Machines.")
    node_rank: int = _field(
        0,
        "This machine's rank, distinct on every machine of a multi-node "
        "run (rank 0 creates the run dir).",
    )
    rdzv_endpoint: str | None = _field(
        None, "HOST:PORT of the c10d rendezvous (multi-node; it ranks the workers itself)."
    )
    master_addr: str | None = _field(
        None,
        "Instead of --rdzv-endpoint: node 0's address for a "
        "static rendezvous (ranks follow --node-rank).",
    )
    master_port: int = _field(29500, "Port on --master-addr.")
    dp_shard: int | None = _field(
        None,
        "HSDP: shard over groups of N workers and replicate across "
        "the groups (default: the GPUs per node with --nodes > 1, "
        "else all workers: plain FSDP).",
    )


@dataclass
class TrainConfig:
    """Everything about a pretraining run except the architecture (that is `ModelConfig`),
    in sections.

    Field names are unique across the sections, and each field is also a `tinyllama pretrain
    --flag` (underscores become dashes) that overrides the `--config` YAML; recipes and
    config.yaml's `train:` hold the fields flat (`to_dict`, `of`). A section's `RESUME` says
    whether `tinyllama resume` may change its fields.
    """

    training: Training = dataclasses.field(default_factory=Training)
    run: RunDir = dataclasses.field(default_factory=RunDir)
    model: ModelChoice = dataclasses.field(default_factory=ModelChoice)
    data_order: DataOrder = dataclasses.field(default_factory=DataOrder)
    schedule: Schedule = dataclasses.field(default_factory=Schedule)
    optimizer: Optimizer = dataclasses.field(default_factory=Optimizer)
    logging: Logging = dataclasses.field(default_factory=Logging)
    downstream: DownstreamEval = dataclasses.field(default_factory=DownstreamEval)
    checkpointing: Checkpointing = dataclasses.field(default_factory=Checkpointing)
    speed: Speed = dataclasses.field(default_factory=Speed)
    launch: Launch = dataclasses.field(default_factory=Launch)

    @classmethod
    def of(cls, **values: Any) -> TrainConfig:
        """A config from flat field names (`lr=1e-3, devices=2`); the rest keep their defaults."""
        specs = train_fields()
        unknown = sorted(set(values) - set(specs))
        if unknown:
            raise TypeError(f"unknown TrainConfig field(s) {', '.join(unknown)}")
        by_section: dict[str, dict[str, Any]] = {f.name: {} for f in fields(cls)}
        for name, value in values.items():
            by_section[specs[name].section][name] = value
        return cls(**{f.name: f.default_factory(**by_section[f.name]) for f in fields(cls)})

    def to_dict(self) -> dict[str, Any]:
        """Every field by its flat name, section by section: config.yaml's `train:` mapping."""
        return {
            name: value
            for section in fields(self)
            for name, value in dataclasses.asdict(getattr(self, section.name)).items()
        }

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with fields changed, by their flat names (`cfg.replace(seq_len=256)`)."""
        return TrainConfig.of(**{**self.to_dict(), **changes})


# --- the fields as flags and YAML values -----------------------------------------------------


@dataclass(frozen=True)
class TrainField:
    """One TrainConfig field as the flags and the YAML see it."""

    name: str  # unique across sections: the flag is --name-with-dashes
    section: str  # the TrainConfig attribute holding it
    resume: Resume  # its section's
    kind: type  # bool, int, float or str: the key of PARSERS
    optional: bool  # None allowed: "not given", the default or the YAML decides
    type_text: str  # the annotation as written, for messages
    default: Any
    help: str


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "yes", "1", "false", "no", "0"):
        return str(value).lower() in ("true", "yes", "1")
    raise ValueError(value)


def _parse_int(value: Any) -> int:
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(value)
    return int(float(value)) if isinstance(value, str) else int(value)


# How a flag or YAML value becomes a field's type: YAML gives 4e-4 as a string, 1e3 as a string
# an int field accepts, yes/no as booleans. The CLI's flags are typed by the same keys.
PARSERS: dict[type, Callable[[Any], Any]] = {
    bool: _parse_bool,
    int: _parse_int,
    float: float,
    str: str,
}


@functools.cache
def train_fields() -> dict[str, TrainField]:
    """Every TrainConfig field by its flat name, in section order."""
    found: dict[str, TrainField] = {}
    for section in fields(TrainConfig):
        cls = section.default_factory
        hints = get_type_hints(cls)
        for f in fields(cls):
            args = get_args(hints[f.name]) or (hints[f.name],)
            kinds = [a for a in args if a is not type(None)]
            assert len(kinds) == 1 and kinds[0] in PARSERS, f"{f.name}: {hints[f.name]}"
            found[f.name] = TrainField(
                f.name,
                section.name,
                cls.RESUME,
                kinds[0],
                type(None) in args,
                str(f.type),
                f.default,
                f.metadata.get("help", ""),
            )
    return found


def sections(resume: Resume | None = None) -> tuple[str, ...]:
    """TrainConfig's section names in order; with `resume`, only the sections of that kind."""
    return tuple(
        f.name for f in fields(TrainConfig) if resume is None or f.default_factory.RESUME is resume
    )


def fields_kept_on_resume() -> tuple[str, ...]:
    """The fields `resume` has no flag for: those of the KEEP sections."""
    return tuple(name for name, f in train_fields().items() if f.resume is Resume.KEEP)


def section_fields(section: str) -> tuple[str, ...]:
    """The flat names of one section's fields (`section_fields("data_order")`)."""
    return tuple(name for name, f in train_fields().items() if f.section == section)


def _coerce(field: TrainField, value: Any) -> Any:
    """Check a YAML or flag value against the field's type (`PARSERS`)."""
    if value is None:
        if field.optional:
            return None
        raise UserError(f"train config field {field.name} cannot be empty; give it a value")
    if field.name == "mix" and isinstance(value, dict):  # YAML may give the weights as a mapping
        return ",".join(f"{k}={v}" for k, v in value.items())
    try:
        return PARSERS[field.kind](value)
    except (TypeError, ValueError):
        raise UserError(
            f"train config field {field.name} has value {value!r}, which is not a "
            f"valid {field.type_text}; fix it in the YAML or the flag"
        ) from None


def load_train_config(
    path: str | Path | None, overrides: dict[str, Any]
) -> tuple[TrainConfig, ModelConfig | None]:
    """TrainConfig from a YAML file (optional) with CLI overrides on top.

    The YAML is either flat (`lr: 4e-4`, `model: tinyllama-1.1b`) or a run's resolved
    config.yaml (`model: {...}`, `train: {...}`). A `model:` mapping gives the architecture
    itself (on top of its `name` preset when that is one); it is returned as the ModelConfig.
    """
    data = load_yaml(path) if path is not None else {}
    if "train" in data:  # a run's resolved config.yaml: the `model:` mapping is the truth
        flat = dict(data.get("train") or {})
        flat.pop("model", None)
        model_spec: Any = data.get("model")
    else:
        flat = dict(data)
        model_spec = flat.pop("model", None)
    known = train_fields()
    values: dict[str, Any] = {}
    for name, value in {**flat, **{k: v for k, v in overrides.items() if v is not None}}.items():
        if name not in known:
            raise UserError(
                f"unknown train config field {name!r}; valid fields: {', '.join(sorted(known))}"
            )
        values[name] = _coerce(known[name], value)
    model_config = None
    if isinstance(model_spec, dict) and overrides.get("model") is None:
        unknown = sorted(set(model_spec) - {f.name for f in fields(ModelConfig)})
        if unknown:
            raise UserError(
                f"unknown model config field(s) {', '.join(unknown)} in {path}; "
                f"valid fields: {', '.join(f.name for f in fields(ModelConfig))}"
            )
        base = PRESETS.get(model_spec.get("name", ""))
        model_config = base.replace(**model_spec) if base else ModelConfig.from_dict(model_spec)
        values.setdefault("model", model_config.name)
    elif isinstance(model_spec, str) and "model" not in values:
        values["model"] = model_spec
    return TrainConfig.of(**values), model_config


__all__ = [
    "DECAY_SHAPE_NAMES",
    "DEFAULT_DECAY_FRACTION",
    "DEFAULT_DECAY_SHAPE",
    "LR_SCHEDULES",
    "PARSERS",
    "PRESETS",
    "Checkpointing",
    "DataOrder",
    "DownstreamEval",
    "Launch",
    "Logging",
    "ModelChoice",
    "ModelConfig",
    "Optimizer",
    "Resume",
    "RunDir",
    "Schedule",
    "Speed",
    "TrainConfig",
    "TrainField",
    "Training",
    "describe_presets",
    "dump_yaml",
    "fields_kept_on_resume",
    "get_preset",
    "load_train_config",
    "load_yaml",
    "section_fields",
    "sections",
    "train_fields",
]
