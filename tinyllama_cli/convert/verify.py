"""Check a conversion by running it: logits of the written model against the source's.

The probe is a fixed-seed batch of token ids. The reference is the source model with its
weights rounded to the output dtype (so a bf16 export is compared with what bf16 weights should
give, not with fp32 noise), computed in fp32; where possible the candidate side is an
independent implementation: transformers' `LlamaForCausalLM` for a Hugging Face output, and for
Hugging Face sources going native, transformers runs the source while this package runs the
output. GGUF is read back with `gguf`'s reader, q/k un-permuted, and run in the native model;
the tensors are compared too. A max abs difference above the tolerance fails the conversion.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
from dataclasses import dataclass
from pathlib import Path

import torch

from tinyllama_cli.config import ModelConfig
from tinyllama_cli.formats.gguf import read_gguf, token_table
from tinyllama_cli.load import load_model
from tinyllama_cli.model import Llama, empty_model
from tinyllama_cli.tokenizer import Tokenizer

PROBE_TEXTS = (
    "The quick brown fox jumps over the lazy dog.",
    "  Two leading spaces,\n a newline, digits 12345 and ünïcödé ✓.",
)
RELATIVE_TOLERANCE = 1e-3  # of the largest reference logit; a wrong tensor or permutation is O(1)


@dataclass
class VerifyResult:
    method: str
    max_abs_diff: float
    tolerance: float
    ok: bool
    probe_shape: tuple[int, int]
    tokenizer: str | None = (
        None  # "match", "mismatch: ..." or None when not checked (HF: AutoTokenizer
    )
    # ids == [bos] + SentencePiece ids; GGUF: embedded pieces/scores/types == tokenizer.model's)
    max_tensor_diff: float | None = None  # GGUF: read-back tensors vs source (after un-permuting)


def transformers_available() -> bool:
    return importlib.util.find_spec("transformers") is not None


def probe_batch(config: ModelConfig, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, config.vocab_size, (2, min(16, config.block_size)), generator=generator)


@torch.no_grad()
def round_weights_(model: Llama, dtype: torch.dtype) -> None:
    """Round every weight to `dtype` in place (kept in fp32), i.e. what the output will hold."""
    if dtype != torch.float32:
        for param in model.parameters():
            param.copy_(param.to(dtype).float())


@torch.no_grad()
def native_logits(model: Llama, idx: torch.Tensor) -> torch.Tensor:
    return model(idx).float()


def _hf_fp32_kwargs() -> dict:
    import transformers

    # "Loading weights" bars would garble our output
    transformers.utils.logging.disable_progress_bar()

    major = int(transformers.__version__.split(".")[0])
    return {"dtype" if major >= 5 else "torch_dtype": torch.float32, "local_files_only": True}


@torch.no_grad()
def transformers_logits(directory: Path, idx: torch.Tensor) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(directory), **_hf_fp32_kwargs()).eval()
    return model(idx).logits.float()


def check_hf_tokenizer(directory: Path, tokenizer: Tokenizer) -> str:
    """ "match" when AutoTokenizer gives [bos] + SentencePiece ids for every probe text."""
    from transformers import AutoTokenizer

    auto = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    for text in PROBE_TEXTS:
        expected = tokenizer.encode(text, bos=True)
        got = list(auto(text)["input_ids"])
        if got != expected:
            return (
                f"mismatch on {text!r}: AutoTokenizer {got[:8]}... vs SentencePiece "
                f"{expected[:8]}..."
            )
    return "match"


def compare(method: str, reference: torch.Tensor, candidate: torch.Tensor, **extra) -> VerifyResult:
    diff = (reference - candidate).abs().max().item()
    tolerance = RELATIVE_TOLERANCE * max(1.0, reference.abs().max().item())
    tokenizer_ok = extra.get("tokenizer") in (None, "match")
    tensors_ok = extra.get("max_tensor_diff") in (None, 0.0)  # the read-back must be the exact bits
    return VerifyResult(
        method=method,
        max_abs_diff=diff,
        tolerance=tolerance,
        ok=diff <= tolerance and tokenizer_ok and tensors_ok,
        probe_shape=tuple(reference.shape[:2]),
        **extra,
    )


def verify_hf(
    directory: Path, reference: torch.Tensor, idx: torch.Tensor, tokenizer: Tokenizer | None
) -> VerifyResult:
    candidate = transformers_logits(directory, idx)
    checked = check_hf_tokenizer(directory, tokenizer) if tokenizer is not None else None
    return compare(
        "transformers AutoModelForCausalLM on the output vs tinyllama on the source",
        reference,
        candidate,
        tokenizer=checked,
    )


def verify_native(
    directory: Path, reference: torch.Tensor, idx: torch.Tensor, reference_name: str
) -> VerifyResult:
    candidate = native_logits(load_model(directory).model, idx)
    return compare(
        f"tinyllama load_model on the output vs {reference_name} on the source",
        reference,
        candidate,
    )


def verify_gguf(
    path: Path, reference: torch.Tensor, idx: torch.Tensor, source: Llama, tokenizer: Tokenizer
) -> VerifyResult:
    """Read back with GGUFReader (exact tensors, token table, logits); when transformers is
    importable also run its GGUF loader, whose llama q/k un-permutation is independent of ours."""
    config, state, meta, _ = read_gguf(path)
    expected = source.state_dict()
    tensor_diff = max((state[k] - v.float()).abs().max().item() for k, v in expected.items())
    model = empty_model(config)
    model.load_state_dict(state, strict=True)
    candidate = native_logits(model.eval(), idx)
    method = "GGUFReader read-back (q/k un-permuted)"
    pieces, scores, types = token_table(tokenizer, config.vocab_size)
    same_vocab = (
        meta["tokenizer.ggml.tokens"] == pieces
        and meta["tokenizer.ggml.token_type"] == types
        and torch.allclose(torch.tensor(meta["tokenizer.ggml.scores"]), torch.tensor(scores))
    )
    if transformers_available():
        from transformers import AutoModelForCausalLM

        kwargs = _hf_fp32_kwargs()
        with contextlib.redirect_stderr(io.StringIO()):  # its tqdm bar ignores the logging switch
            hf = AutoModelForCausalLM.from_pretrained(
                str(path.parent), gguf_file=path.name, **kwargs
            ).eval()
        with torch.no_grad():
            via_hf = hf(idx).logits.float()
        if (via_hf - reference).abs().max() > (candidate - reference).abs().max():
            candidate = via_hf
        method += " and transformers' GGUF loader"
    return compare(
        f"{method} vs tinyllama on the source",
        reference,
        candidate,
        max_tensor_diff=tensor_diff,
        tokenizer="match"
        if same_vocab
        else "mismatch: embedded token table differs from tokenizer.model",
    )
