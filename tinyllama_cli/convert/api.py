"""`tinyllama convert`: one function from a source model to a Hugging Face dir, a native model
dir or a GGUF file, verified before it is put in place.

Order of work: validate the arguments and the output path (nothing is written on a mistake),
load the source (`load.load_model`: run dir, checkpoint dir or HF dir; a sharded DCP checkpoint
is consolidated by reading only its model entries, no process group), round the weights to the
output dtype, compute the reference logits, write the output under a temporary name, verify it
there, and rename it into place only when verification passed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from tinyllama_cli.convert import verify as verify_mod
from tinyllama_cli.convert.output import list_files, parse_size
from tinyllama_cli.dtypes import parse_dtype
from tinyllama_cli.errors import UserError
from tinyllama_cli.files import check_new_path, staged
from tinyllama_cli.formats import gguf, hf, native
from tinyllama_cli.load import LoadedModel, load_model, resolve_checkpoint

TARGETS = ("hf", "native", "gguf")
GGUF_FILE = "model.gguf"  # inside --out when --out does not itself end in .gguf


@dataclass
class ConvertResult:
    source: str
    source_kind: str  # "native" or "hf"
    target: str
    out: str
    dtype: str
    params: int
    tokenizer: bool
    files: list[dict] = field(default_factory=list)  # {"name", "bytes"}
    verify: verify_mod.VerifyResult | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def convert(
    src: str | Path,
    to: str,
    out: str | Path,
    dtype: str | None = None,
    max_shard_size: str | int = "5GB",
    overwrite: bool = False,
    verify: bool | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> ConvertResult:
    """Convert the model at `src` to `to` ("hf", "native" or "gguf") at `out`.

    dtype: "fp32" (default), "bf16" or "fp16", or their long names (`dtypes`); native output is
    always fp32. The result names the canonical (short) spelling.
    verify: None means "when transformers is importable" (it is the independent side of the check).
    Raises UserError for every bad input before writing anything, and when verification fails.
    """
    stage = on_stage or (lambda _: None)
    started = time.perf_counter()
    dtype, torch_dtype, shard_bytes, verify = _check_arguments(
        to, dtype or "fp32", max_shard_size, verify
    )
    out = Path(out)
    kind, directory = resolve_checkpoint(src)
    check_new_path(out, overwrite)
    if directory.resolve() == out.resolve() or out.resolve() in directory.resolve().parents:
        raise UserError(f"--out {out} would replace the source {src}; choose another --out")

    stage(f"loading {kind} model from {directory}")
    loaded = load_model(src)
    if kind == "hf":
        _tie_if_configured(loaded.model, directory)
    if to == "gguf" and loaded.tokenizer is None:
        raise UserError(
            f"GGUF embeds the tokenizer, but {src} has no tokenizer.model; put one beside the "
            "weights"
        )
    if verify:
        stage("computing reference logits")
        probe = _Probe.of(loaded, kind, to, directory, torch_dtype)

    result = ConvertResult(
        source=str(directory),
        source_kind=kind,
        target=to,
        out=str(out),
        dtype=dtype,
        params=loaded.model.num_params(),
        tokenizer=loaded.tokenizer is not None,
    )
    with staged(out, overwrite) as tmp:
        stage(f"writing {to} to {out}")
        written = _write(to, loaded, tmp, out, torch_dtype, shard_bytes, directory)
        if verify:
            stage("verifying the output")
            result.verify = probe.check(to, written, loaded)
            _raise_if_failed(result.verify)
        result.files = [
            {"name": out.name if tmp.is_file() else name, "bytes": size}
            for name, size in list_files(tmp)
        ]
    result.seconds = time.perf_counter() - started
    return result


def _check_arguments(
    to: str, dtype: str, max_shard_size: str | int, verify: bool | None
) -> tuple[str, torch.dtype, int, bool]:
    """(canonical dtype, torch dtype, shard bytes, verify) or a UserError, before any work."""
    if to not in TARGETS:
        raise UserError(f"--to {to!r} is not a target; choose one of {', '.join(TARGETS)}")
    dtype, torch_dtype = parse_dtype(dtype, "--dtype")
    if to == "native" and dtype != "fp32":
        raise UserError(
            "native checkpoints hold fp32 weights (the training precision); drop --dtype or use "
            "fp32"
        )
    shard_bytes = parse_size(max_shard_size)
    has_transformers = verify_mod.transformers_available()
    if verify and to == "hf" and not has_transformers:
        raise UserError(
            "--verify for --to hf needs transformers (pip install transformers); or pass "
            "--no-verify"
        )
    return dtype, torch_dtype, shard_bytes, has_transformers if verify is None else verify


def _write(
    to: str,
    loaded: LoadedModel,
    tmp: Path,
    out: Path,
    dtype: torch.dtype,
    shard_bytes: int,
    source: Path,
) -> Path:
    """Write the target format at `tmp`; returns the path to verify (the GGUF file itself)."""
    if to == "hf":
        hf.write_hf(loaded.model, tmp, loaded.tokenizer, dtype, shard_bytes)
        return tmp
    if to == "native":
        native.write_native(loaded.model, tmp, loaded.tokenizer, source=str(source.resolve()))
        return tmp
    target = tmp if out.suffix == ".gguf" else tmp / GGUF_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    gguf.write_gguf(loaded.model, target, loaded.tokenizer, dtype)
    return target


@dataclass
class _Probe:
    """The probe batch and the reference logits, taken before anything is written."""

    idx: torch.Tensor
    reference: torch.Tensor
    reference_name: str

    @classmethod
    def of(
        cls, loaded: LoadedModel, kind: str, to: str, directory: Path, dtype: torch.dtype
    ) -> _Probe:
        idx = verify_mod.probe_batch(loaded.config)
        verify_mod.round_weights_(
            loaded.model, dtype
        )  # what the output holds; writing it again is exact
        if (
            kind == "hf" and to == "native" and verify_mod.transformers_available()
        ):  # fp32: no rounding
            return cls(idx, verify_mod.transformers_logits(directory, idx), "transformers")
        return cls(idx, verify_mod.native_logits(loaded.model, idx), "tinyllama")

    def check(self, to: str, written: Path, loaded: LoadedModel) -> verify_mod.VerifyResult:
        if to == "hf":
            return verify_mod.verify_hf(written, self.reference, self.idx, loaded.tokenizer)
        if to == "native":
            return verify_mod.verify_native(written, self.reference, self.idx, self.reference_name)
        return verify_mod.verify_gguf(
            written, self.reference, self.idx, loaded.model, loaded.tokenizer
        )


def _raise_if_failed(v: verify_mod.VerifyResult) -> None:
    if v.ok:
        return
    details = [f"max abs logit difference {v.max_abs_diff:.3g}, tolerance {v.tolerance:.3g}"]
    if v.tokenizer not in (None, "match"):
        details.append(f"tokenizer {v.tokenizer}")
    if v.max_tensor_diff:
        details.append(f"tensor difference {v.max_tensor_diff:.3g}")
    raise UserError(f"verification failed ({'; '.join(details)}); nothing was written")


def _tie_if_configured(model: torch.nn.Module, directory: Path) -> None:
    """HF configs with tie_word_embeddings use the embedding as the head whatever the file holds."""
    if hf.read_config(directory).get("tie_word_embeddings"):
        with torch.no_grad():
            model.output.weight.copy_(model.tok_embeddings.weight)
