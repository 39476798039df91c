"""Fast, exact SentencePiece encoding of many documents on one core.

SentencePiece spends most of its time in BPE merges, and natural text and code repeat the same
words endlessly. For a Llama-style model (BPE, identity normalisation, whitespace kept, a dummy
prefix, no piece with a `▁` after another character) no piece can span the start of a run of
spaces, so the encoding of a document is the concatenation of the encodings of its
"words" (a run of spaces and the characters up to the next space). `DocumentEncoder` caches
those per word and sends only unseen words to SentencePiece (in one batched call), which gives
the same ids faster on one core (1.8x over a per-document loop on a cold cache of source code,
see benchmarks/bench_prepare.py; more once the cache is warm).

Exactness is not taken on faith: the model is inspected before the word path is used, and every
`check_every`-th document is also encoded whole by SentencePiece; a difference raises
`FastPathMismatch` so the caller can redo its file with plain encoding.
"""

from __future__ import annotations

import re
from itertools import chain, filterfalse

import numpy as np
import sentencepiece as spm

SPACE_RUN_WORD = re.compile(r" +[^ ]*")
MAX_CACHE_ENTRIES = 1 << 20  # words; the cache is cleared when it grows past this (~150 MB)
MAX_POOL_TOKENS = 1 << 24  # token ids held for cached words


class FastPathMismatch(RuntimeError):
    """The word-cached encoding differed from SentencePiece's on a checked document."""


def word_split_is_exact(model_bytes: bytes) -> bool:
    """Whether `model_bytes` is a model whose encoding splits at the start of space runs."""
    try:
        from sentencepiece import sentencepiece_model_pb2 as pb
    except ImportError:  # protobuf missing: stay on the plain path
        return False
    model = pb.ModelProto()
    try:
        model.ParseFromString(model_bytes)
    except Exception:  # noqa: BLE001 - protobuf's DecodeError and friends
        return False
    norm, trainer = model.normalizer_spec, model.trainer_spec
    if trainer.model_type != pb.TrainerSpec.BPE:
        return False
    if norm.name != "identity" or norm.precompiled_charsmap or not norm.add_dummy_prefix:
        return False
    if norm.remove_extra_whitespaces or not norm.escape_whitespaces:
        return False
    if not trainer.split_by_whitespace or trainer.treat_whitespace_as_suffix:
        return False
    inner_space = re.compile("[^\u2581]\u2581")
    return not any(inner_space.search(p.piece) for p in model.pieces)


class DocumentEncoder:
    """Encodes batches of documents with one SentencePiece model, on the calling thread.

    Word ids live in one flat numpy pool (`_pool`, with each word's start and length), so a
    batch is assembled by a vectorised gather rather than a Python loop over its tokens.
    """

    def __init__(self, model_bytes: bytes, fast: bool = True, check_every: int = 256):
        self.sp = spm.SentencePieceProcessor()
        self.sp.LoadFromSerializedProto(model_bytes)
        self.bos_id = self.sp.bos_id()
        self.eos_id = self.sp.eos_id()
        self.fast = fast and word_split_is_exact(model_bytes)
        self.check_every = check_every
        self._seen = 0
        self._reset()

    def _reset(self) -> None:
        self._index: dict[str, int] = {}
        self._pool = np.empty(1 << 20, dtype=np.int32)
        self._pool_used = 0
        self._start = np.empty(1 << 16, dtype=np.int64)
        self._len = np.empty(1 << 16, dtype=np.int64)
        if self.fast:
            # A lone trailing space has no characters after it: " " -> encode("") would be [].
            self._add(" ", [self.sp.encode("a ")[len(self.sp.encode("a")) :]])

    def _add(self, words: str | list[str], ids: list[list[int]]) -> None:
        words = [words] if isinstance(words, str) else words
        n, k = len(self._index), len(words)
        lens = np.fromiter(map(len, ids), dtype=np.int64, count=k)
        total = int(lens.sum())
        self._pool = _grow(self._pool, self._pool_used + total)
        self._start, self._len = _grow(self._start, n + k), _grow(self._len, n + k)
        self._pool[self._pool_used : self._pool_used + total] = np.fromiter(
            chain.from_iterable(ids), dtype=np.int32, count=total
        )
        self._start[n : n + k] = self._pool_used + np.cumsum(lens) - lens
        self._len[n : n + k] = lens
        self._pool_used += total
        self._index.update(zip(words, range(n, n + k)))

    def encode(self, texts: list[str]) -> list[list[int]]:
        """The ids of each text (no BOS/EOS), identical to `sp.encode(text)`."""
        packed, lengths = self.encode_packed(texts)
        ends = np.cumsum(lengths)
        return [packed[e - n + 1 : e - 1].tolist() for e, n in zip(ends.tolist(), lengths.tolist())]

    def encode_packed(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """All `texts` as one int32 array of `<s> ids </s>` documents, and each one's length."""
        if not self.fast:
            return self._pack_lists(self.sp.encode(texts, num_threads=1))
        splits = [_words(" " + t) for t in texts]
        body, doc_tokens = self._gather(splits)
        packed, lengths = self._frame(body, doc_tokens)
        self._check(texts, packed, lengths)
        return packed, lengths

    def encode_piece(self, text: str, first: bool) -> np.ndarray:
        """The ids (no BOS/EOS) of one piece of a document cut just before a run of spaces
        (`sources.Reader.txt_pieces`): the pieces' ids joined are the document's, because the
        word split never crosses the start of a space run. A first piece gets the dummy
        prefix; a later one starts with its own space run. Only on the word path (`fast`):
        SentencePiece's own encoding of a piece is not known to join up."""
        if not self.fast:
            raise ValueError("encode_piece needs the word-cached path")
        body, _ = self._gather([_words(" " + text if first else text)])
        self._check_piece(text, first, body)
        return body

    def _gather(self, splits: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        """The ids of every text's words, concatenated, and each text's token count (unseen
        words go to SentencePiece in one call)."""
        index = self._index
        missing = set(filterfalse(index.__contains__, chain.from_iterable(splits)))
        if len(index) + len(missing) > MAX_CACHE_ENTRIES or self._pool_used > MAX_POOL_TOKENS:
            self._reset()
            missing = set(filterfalse(self._index.__contains__, chain.from_iterable(splits)))
        if missing:
            new = list(missing)
            self._add(new, self.sp.encode([w[1:] for w in new], num_threads=1))
        words_per_doc = np.fromiter(map(len, splits), dtype=np.int64, count=len(splits))
        word_ids = np.fromiter(
            map(self._index.__getitem__, chain.from_iterable(splits)),
            dtype=np.int64,
            count=int(words_per_doc.sum()),
        )
        word_len, word_start = self._len[word_ids], self._start[word_ids]
        body_ends = np.cumsum(word_len)
        body = self._pool[
            np.repeat(word_start - (body_ends - word_len), word_len)
            + np.arange(int(body_ends[-1]) if len(body_ends) else 0)
        ]
        doc_tokens = (
            np.add.reduceat(word_len, np.cumsum(words_per_doc) - words_per_doc)
            if len(splits)
            else np.zeros(0, dtype=np.int64)
        )
        return body, doc_tokens

    def _pack_lists(self, ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        doc_tokens = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        body = np.fromiter(chain.from_iterable(ids), dtype=np.int32, count=int(doc_tokens.sum()))
        return self._frame(body, doc_tokens)

    def _frame(self, body: np.ndarray, doc_tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Put each document's ids between BOS and EOS."""
        lengths = doc_tokens + 2
        starts = np.cumsum(lengths) - lengths
        packed = np.empty(int(lengths.sum()), dtype=np.int32)
        keep = np.ones(len(packed), dtype=bool)
        keep[starts] = keep[starts + lengths - 1] = False
        packed[starts] = self.bos_id
        packed[starts + lengths - 1] = self.eos_id
        packed[keep] = body
        return packed, lengths

    def _check(self, texts: list[str], packed: np.ndarray, lengths: np.ndarray) -> None:
        first = (-self._seen) % self.check_every
        self._seen += len(texts)
        if first >= len(texts):
            return
        starts = np.cumsum(lengths) - lengths
        for i in range(first, len(texts), self.check_every):
            got = packed[starts[i] + 1 : starts[i] + lengths[i] - 1].tolist()
            if self.sp.encode(texts[i]) != got:
                raise FastPathMismatch(
                    f"word-cached encoding differs from SentencePiece on {texts[i][:60]!r}"
                )

    def _check_piece(self, text: str, first: bool, body: np.ndarray) -> None:
        """`_check` for a piece, on the same count. A later piece is checked after a word
        ("a"), as it comes after one in its document (the same trick as the lone space's ids)."""
        self._seen += 1
        if (self._seen - 1) % self.check_every:
            return
        lead = [] if first else self.sp.encode("a")
        if self.sp.encode(text if first else "a" + text) != lead + body.tolist():
            raise FastPathMismatch(
                f"word-cached encoding differs from SentencePiece on {text[:60]!r}"
            )


def _words(text: str) -> list[str]:
    """The words of `text`: each run of spaces with the characters up to the next space (a
    `\u2581` counts as a space: SentencePiece escapes spaces to it)."""
    return SPACE_RUN_WORD.findall(text.replace("\u2581", " ") if "\u2581" in text else text)


def _grow(a: np.ndarray, size: int) -> np.ndarray:
    if size <= len(a):
        return a
    bigger = np.empty(max(size, 2 * len(a)), dtype=a.dtype)
    bigger[: len(a)] = a
    return bigger
