"""The tokenization half of an lm-eval LM over a SentencePiece tokenizer: `LlamaTokenLM`.

It follows the conventions of lm-eval's Hugging Face backend (`HFLM`) for a Llama tokenizer, so
a model built on it is asked exactly the requests HFLM would ask. Both of eval's models are:
`native_lm.NativeLM` (the native model) and `baseline.UnigramLM` (token frequencies), so the
baseline scores the same tokens as the model.

- every encoded context starts with BOS (the HF Llama tokenizer adds it); an empty context is
  replaced by BOS alone (`prefix_token_id`); the end-of-text token is EOS;
- the continuation's tokens are `encode(context + continuation)[len(encode(context)):]`, with
  trailing context spaces moved onto the continuation (`TemplateLM._encode_pair`);
- text is encoded as SentencePiece does, which is what the Llama 2-style tokenizer.json that
  `convert` writes gives in transformers too (leading spaces included); a leading "<s>" is BOS;
- text is decoded as HF's decoder does (byte fallback: one U+FFFD per byte of an invalid run);
- rolling log-likelihoods use lm-eval's own disjoint windows of the context length.
"""

from __future__ import annotations

from lm_eval.api.model import TemplateLM
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

from tinyllama_cli.tokenizer import Tokenizer

# ((context, continuation), context ids, continuation ids): what `_loglikelihood_tokens` scores.
Request = tuple[tuple[str, str], list[int], list[int]]


class LlamaTokenLM(TemplateLM):
    """The tokenization side of an lm-eval LM over a SentencePiece `Tokenizer`, HFLM's Llama
    conventions: shared by `NativeLM` and the unigram baseline (`UnigramLM`), so both see
    identical requests. Subclasses score: `_loglikelihood_tokens`, `max_length`."""

    def __init__(self, tokenizer: Tokenizer):
        super().__init__()
        self.tok = tokenizer
        self.bos_piece = tokenizer.id_to_piece(tokenizer.bos_id)
        self.eos_piece = tokenizer.id_to_piece(tokenizer.eos_id)

    @property
    def eot_token_id(self) -> int:
        return self.tok.eos_id

    @property
    def prefix_token_id(self) -> int:
        return self.tok.bos_id

    @property
    def tokenizer_name(self) -> str:
        return str(self.tok.path)

    def tok_encode(
        self, string: str, add_special_tokens: bool | None = None, **kwargs
    ) -> list[int]:
        """Ids as HF's Llama tokenizer gives them: BOS unless told not to (or already present)."""
        bos = add_special_tokens is not False
        if add_special_tokens is None and string.startswith(self.bos_piece):
            return [self.tok.bos_id] + self._encode_text(string[len(self.bos_piece) :])
        return ([self.tok.bos_id] if bos else []) + self._encode_text(string)

    def _encode_text(self, text: str) -> list[int]:
        # The HF directories `convert` writes carry a tokenizer.json that, like Llama 2's, prepends
        # the dummy-prefix "▁" in its normalizer: exactly SentencePiece's ids, leading spaces too.
        return self.tok.encode(text) if text else []

    def tok_decode(self, tokens: list[int], skip_special_tokens: bool = True) -> str:
        """Text as HF's Llama decoder gives it (SentencePiece's own decode differs on bad bytes).

        Pieces with "▁" -> " "; runs of byte pieces decoded as UTF-8, or one U+FFFD per byte
        when invalid (HF's ByteFallback); control and unknown pieces skipped; one leading space
        stripped.
        """
        sp = self.tok.sp
        parts: list[str] = []
        pending = bytearray()
        for t in tokens:
            if sp.is_byte(t):
                pending.append(int(sp.id_to_piece(t)[3:5], 16))
                continue
            if skip_special_tokens and (sp.is_control(t) or sp.is_unknown(t)):
                continue
            parts.append(_utf8_or_replacement(pending))
            pending.clear()
            parts.append(sp.id_to_piece(t).replace("\u2581", " "))
        parts.append(_utf8_or_replacement(pending))
        text = "".join(parts)
        return text.removeprefix(" ")

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        """Perplexity-style total log-likelihood of each string, in disjoint context-length
        windows."""
        windows: list[Request] = []
        owners: list[int] = []
        for i, (string,) in enumerate(req.args for req in requests):
            for ctx, cont in map(
                make_disjoint_window,
                get_rolling_token_windows(
                    token_list=self.tok_encode(string),
                    prefix_token=self.prefix_token_id,
                    max_seq_len=self.max_length,
                    context_len=1,
                ),
            ):
                windows.append(((None, None), ctx, cont))  # type: ignore[arg-type]
                owners.append(i)
        scores = self._loglikelihood_tokens(windows, disable_tqdm=disable_tqdm)
        totals = [0.0] * len(requests)
        for i, (logprob, _) in zip(owners, scores):
            totals[i] += logprob
        for req, total in zip(requests, totals):
            self.cache_hook.add_partial("loglikelihood_rolling", req.args, total)
        return totals


def _utf8_or_replacement(data: bytes | bytearray) -> str:
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        return "\ufffd" * len(data)
