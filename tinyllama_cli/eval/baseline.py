"""The trivial baseline beside `tinyllama eval`'s scores: a unigram model of the training data.

A model that has learnt nothing but token frequencies ignores the context: the log-likelihood of
a continuation is the sum of log p(token) over its tokens. Scoring it with lm-eval's own pipeline
(`UnigramLM` is a `TemplateLM` sharing `NativeLM`'s tokenization, `tokenization.LlamaTokenLM`,
so its requests are the model's) gives acc/acc_norm/perplexity from the same metric code as the
model's, which is what "is my model better than word frequencies?" needs. acc_norm divides by
the continuation's length in characters, so it is where a unigram model differs from chance most.

The frequencies are counted from the run's training data (`config.yaml` `data: dir:`), a bounded
deterministic sample: at most `DEFAULT_BUDGET` tokens, split over the sources by the run's mix
weights and read as evenly spaced blocks across each source's train shards. Per-source
frequencies are mixed by those weights (the distribution the model was trained on), then
add-one smoothed over the model's vocabulary: p(t) = (c(t) + 1) / (N + V).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyllama_cli.data.dataset import Manifest, TokenStream
from tinyllama_cli.errors import UserError
from tinyllama_cli.eval.tokenization import LlamaTokenLM, Request
from tinyllama_cli.tokenizer import Tokenizer

DEFAULT_BUDGET = 16_000_000  # tokens counted at most: 32 MB of uint16, 0.12 s when cached
BLOCK = 1 << 16  # tokens read per contiguous block of a shard


@dataclass
class TrainingData:
    """Where a run's training tokens are and how the run mixed its sources."""

    manifest: Manifest
    weights: dict[str, float] | None


@dataclass
class Unigram:
    """Smoothed unigram log-probabilities over a vocabulary and what they were counted from."""

    logprobs: np.ndarray  # float64, one per token id of the model's vocabulary
    tokens_counted: int
    data_dir: Path


def find_training_data(
    checkpoint: Path,
    kind: str,
    tokenizer: Tokenizer | None,
) -> tuple[TrainingData | None, str]:
    """The training data of a native checkpoint's run, or None and one line saying why not.

    Nothing here is an error: the eval goes on without a baseline."""
    if kind != "native":
        return None, f"{checkpoint} is a Hugging Face directory, whose training data is unknown"
    if tokenizer is None:
        return None, f"{checkpoint} has no tokenizer.model to tokenize the tasks with"
    try:
        found, note = _run_data_dir(checkpoint.parent.parent / "config.yaml")
        if found is None:
            return None, note
        data_dir, weights = found
        manifest = Manifest.load(data_dir)
    except UserError as exc:  # an unreadable config.yaml or manifest.json
        return None, str(exc)
    if manifest.raw["tokenizer"].get("sha256") not in (None, tokenizer.sha256):
        return None, f"{data_dir} was tokenized with another tokenizer than the run's"
    return TrainingData(manifest, weights), ""


def _run_data_dir(config_path: Path) -> tuple[tuple[Path, dict | None] | None, str]:
    """(data dir, mix weights) from a run's config.yaml `data:` section, or None and why not."""
    from tinyllama_cli.config import load_yaml

    if not config_path.is_file():
        return None, f"no run config.yaml beside {config_path.parent / 'checkpoints'}"
    data = (load_yaml(config_path) or {}).get("data") or {}
    if not data.get("dir"):
        return None, f"{config_path} names no training data (no data: dir:)"
    data_dir = Path(data["dir"])
    if not data_dir.is_absolute():
        data_dir = config_path.parent / data_dir
    if not (data_dir / "manifest.json").is_file():
        return None, f"the training data {data_dir} named in {config_path} is gone (moved?)"
    weights = data.get("weights")
    return (data_dir, dict(weights) if isinstance(weights, dict) else None), ""


def spread_blocks(n_tokens: int, take: int, block: int = BLOCK) -> list[tuple[int, int]]:
    """(start, length) of about `take` tokens as evenly spaced, non-overlapping blocks of at
    most `block` tokens over [0, n_tokens): a sample of the whole stream, not just its start."""
    if take >= n_tokens:
        return [(0, n_tokens)] if n_tokens else []
    k = max(1, math.ceil(take / block))
    length = take // k
    if k == 1:
        return [(0, length)]
    stride = (n_tokens - length) / (k - 1)  # >= length because k * length <= take < n_tokens
    return [(round(i * stride), length) for i in range(k)]


def count_unigrams(
    training: TrainingData, vocab_size: int, budget: int = DEFAULT_BUDGET, block: int = BLOCK
) -> Unigram:
    """Smoothed unigram log-probabilities from at most `budget` training tokens (see the module
    docstring). Raises UserError when the shards are damaged or hold ids outside the vocabulary."""
    manifest = training.manifest
    totals = {name: n for name, n in manifest.train_tokens().items() if n > 0}
    weights = training.weights or totals
    names = [name for name in totals if weights.get(name, 0) > 0]
    if not names:
        raise UserError(f"{manifest.root} has no training tokens in the run's sources")
    total_weight = sum(float(weights[name]) for name in names)
    mixed = np.zeros(vocab_size, dtype=np.float64)
    counted = 0
    for name in names:
        share = float(weights[name]) / total_weight
        stream = TokenStream(manifest, name, "train")
        counts = _source_counts(
            stream,
            vocab_size,
            max(1, round(budget * share)),
            block,
            where=f"source {name} of {manifest.root}",
        )
        mixed += share * counts / counts.sum()
        counted += int(counts.sum())
    logprobs = np.log((mixed * counted + 1.0) / (counted + vocab_size))
    return Unigram(logprobs=logprobs, tokens_counted=counted, data_dir=manifest.root)


def _source_counts(
    stream: TokenStream, vocab_size: int, take: int, block: int, where: str
) -> np.ndarray:
    """Token counts of about `take` tokens of one source, in blocks spread over its shards."""
    counts = np.zeros(vocab_size, dtype=np.float64)
    for start, length in spread_blocks(stream.n_tokens, take, block):
        tokens = stream.read(start, length)
        if tokens.size and int(tokens.max()) >= vocab_size:
            raise UserError(
                f"{where} holds token id {int(tokens.max())}, outside the model's "
                f"vocabulary of {vocab_size}: it is not this run's data"
            )
        counts += np.bincount(tokens, minlength=vocab_size)
    return counts


class UnigramLM(LlamaTokenLM):
    """lm-eval LM whose log-likelihood of a continuation is the sum of its tokens' unigram
    log-probabilities, whatever the context. Loglikelihood tasks only: it does not generate."""

    def __init__(self, unigram: Unigram, tokenizer: Tokenizer, max_length: int):
        super().__init__(tokenizer)
        self.unigram = unigram
        self.logprobs = unigram.logprobs
        self.top = int(np.argmax(unigram.logprobs))  # greedy "decoding" always picks this token
        self._max_length = max_length

    @property
    def max_length(self) -> int:
        return self._max_length

    @property
    def batch_size(self) -> int:
        return 1

    def get_model_info(self) -> dict:
        return {
            "model": "unigram",
            "tokens_counted": self.unigram.tokens_counted,
            "data_dir": str(self.unigram.data_dir),
            "tokenizer": str(self.tok.path),
        }

    def _loglikelihood_tokens(
        self, requests: list[Request], disable_tqdm: bool = False, override_bs: int | None = None
    ) -> list[tuple[float, bool]]:
        """(sum of log p(t) over the continuation, whether every token is the most frequent)."""
        return [
            (float(self.logprobs[cont].sum()), all(t == self.top for t in cont))
            for _, _, cont in requests
        ]

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        raise NotImplementedError("the unigram baseline scores log-likelihoods, it cannot generate")
