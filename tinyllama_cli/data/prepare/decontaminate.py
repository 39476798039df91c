"""Decontamination: drop every training document that shares an n-word span with an eval text.

Words are the runs of letters and digits of the lowercased text (`\\w` without `_`), so case,
punctuation and whitespace do not hide a copy. A span of `n` words is hashed in two steps,
vectorised over a whole batch of documents: each word to its CRC-32 mixed to 64 bits, then each
run of `n` word values to a polynomial of them (prefix sums mod 2**64, mixed). The eval side is
one sorted array of those hashes with, for each, a bit per eval file it came from: 16 bytes per
distinct span, 27 MB for full-size sets of TinyLlama's seven tasks (~1.8M spans), built once in
the main process and read by every worker from `OUT.partial/decontamination.npz`
(`datadir.INDEX`).

A document's fate depends only on its own text and the index, so the output is the same for any
`--workers` and slicing. An eval text of fewer than `n` words has no span and cannot match; the
manifest counts those texts (`short_texts`) so the gap is visible.

Eval files: an lm-eval task file in the hub schema of a task `eval` supports (.jsonl or
.parquet, the schema recognised from each record's fields; see `SCHEMAS`), a .jsonl of `text`
records, or a .txt file with one eval text per line.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyllama_cli.errors import UserError
from tinyllama_cli.files import replacing

CONTAMINATED = "contaminated"  # the skip reason of a dropped document
MAX_EVAL_FILES = 64  # one bit each in a uint64 mask
_NON_WORD = re.compile(r"[\W_]+")
_WORD_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd, so invertible mod 2**64


# ASCII text is normalised by one bytes.translate (the regex is ~10x slower); both give the same
# words, since the regex maps every ASCII character outside [A-Za-z0-9] to a separator too.
_ASCII = bytes(
    c + 32 if 65 <= c <= 90 else c if 97 <= c <= 122 or 48 <= c <= 57 else 32 for c in range(256)
)


def words_of(text: str) -> str:
    """The normalised text: lowercased words separated by single spaces."""
    return _NON_WORD.sub(" ", text.lower()).strip()


def _normalised(text: str) -> bytes:
    """The UTF-8 bytes of the words of `text`, separated by one or more spaces."""
    if text.isascii():
        return text.encode("ascii").translate(_ASCII)
    return words_of(text).encode("utf-8", "surrogatepass")


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads a polynomial hash's bits (vectorised)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


_POWERS: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _powers(base: np.uint64, count: int) -> tuple[np.ndarray, np.ndarray]:
    """base**i and base**-i (mod 2**64) for i < count, kept between calls (grown by doubling)."""
    cached = _POWERS.get(int(base))
    if cached is None or len(cached[0]) < count:
        size = max(count, 2 * len(cached[0]) if cached else 1 << 16)
        inverse = pow(int(base), -1, 1 << 64)
        up = np.empty(size, dtype=np.uint64)
        down = np.empty(size, dtype=np.uint64)
        up.fill(int(base))
        down.fill(inverse)
        up[0] = down[0] = 1
        cached = np.cumprod(up, dtype=np.uint64), np.cumprod(down, dtype=np.uint64)
        _POWERS[int(base)] = cached
    return cached[0][:count], cached[1][:count]


def _segment_hashes(values: np.ndarray, starts: np.ndarray, n: int) -> np.ndarray:
    """The polynomial hash sum(values[s + j] * B**j for j < n) of each segment at s, mixed."""
    up, down = _powers(_WORD_BASE, len(values) + 1)
    with np.errstate(over="ignore"):
        prefix = np.zeros(len(values) + 1, dtype=np.uint64)
        np.cumsum(values * up[:-1], out=prefix[1:])
        return _mix((prefix[starts + n] - prefix[starts]) * down[starts])


@dataclass
class Spans:
    """The n-word spans of a batch of texts: `hashes[i]` belongs to text `text_of[i]` and
    starts at word `first_word[i]` of `words` (for the log)."""

    hashes: np.ndarray
    text_of: np.ndarray
    first_word: np.ndarray
    words: list[bytes]
    word_counts: np.ndarray  # per text

    def text(self, i: int, n: int) -> str:
        """The words of span `i`, single-spaced."""
        w = int(self.first_word[i])
        return b" ".join(self.words[w : w + n]).decode("utf-8", "replace")


def spans_of(texts: list[str], n: int) -> Spans:
    """Every n-word span of every text, hashed (no span crosses from one text to the next).

    A word's value is its CRC-32 (C speed through `map`, stable across processes, unlike
    `hash`), mixed to 64 bits; a span's hash is a polynomial over its words' values."""
    words: list[bytes] = []
    counts = np.zeros(len(texts), dtype=np.int64)
    for i, t in enumerate(texts):
        w = _normalised(t).split()
        counts[i] = len(w)
        words += w
    return _spans(words, np.repeat(np.arange(len(texts)), counts), counts, n)


def _spans(words: list[bytes], word_text: np.ndarray, counts: np.ndarray, n: int) -> Spans:
    """The hashed n-word spans of `words`, where word i belongs to text `word_text[i]` (text j
    has `counts[j]` words)."""
    values = _mix(np.fromiter(map(zlib.crc32, words), dtype=np.uint64, count=len(words)))
    first = np.arange(max(len(words) - n + 1, 0))
    first = first[word_text[first] == word_text[first + n - 1]]
    return Spans(_segment_hashes(values, first, n), word_text[first], first, words, counts)


# --- the eval side -------------------------------------------------------------------------------


def _choices_text(record: dict) -> list[str]:
    choices = record["choices"]
    return list(choices["text"]) if isinstance(choices, dict) else list(choices)


# Hub schemas of the tasks `eval` supports: the fields that identify each, and the texts a model
# is shown for one item (the question joined with each answer, as lm-eval scores them).
SCHEMAS: dict[str, tuple[tuple[str, ...], object]] = {
    "hellaswag": (("ctx", "endings"), lambda r: [f"{r['ctx']} {e}" for e in r["endings"]]),
    "winogrande": (
        ("sentence", "option1", "option2"),
        lambda r: [r["sentence"].replace("_", r[o]) for o in ("option1", "option2")],
    ),
    "openbookqa": (
        ("question_stem", "choices"),
        lambda r: [f"{r['question_stem']} {c}" for c in _choices_text(r)],
    ),
    "arc": (("question", "choices"), lambda r: [f"{r['question']} {c}" for c in _choices_text(r)]),
    "boolq": (("passage", "question"), lambda r: [r["passage"], r["question"]]),
    "piqa": (("goal", "sol1", "sol2"), lambda r: [f"{r['goal']} {r[s]}" for s in ("sol1", "sol2")]),
    "wikitext": (("page",), lambda r: [r["page"]]),
    "text": (("text",), lambda r: [r["text"]]),
}


def eval_texts(path: Path) -> Iterator[str]:
    """The eval texts of one file (see the module docstring); an unknown schema is refused."""
    name = path.name.lower()
    if name.endswith(".txt"):
        yield from (line for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
        return
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        records = pq.read_table(path).to_pylist()
    elif name.endswith((".jsonl", ".json")):
        records = [
            json.loads(line)
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
    else:
        raise UserError(
            f"--decontaminate {path}: use an lm-eval task file (.jsonl or .parquet "
            "in the hub schema) or plain texts (.txt, one per line; .jsonl with text)"
        )
    for i, record in enumerate(records, 1):
        yield from _record_texts(path, i, record)


def _record_texts(path: Path, line: int, record) -> list[str]:
    if isinstance(record, dict):
        for fields, texts in SCHEMAS.values():
            if all(f in record for f in fields):
                return texts(record)
    known = "; ".join(f"{task}: {', '.join(fields)}" for task, (fields, _) in SCHEMAS.items())
    raise UserError(
        f"--decontaminate {path}:{line}: not a record of a known eval schema (fields {known})"
    )


@dataclass
class EvalIndex:
    """The spans of the eval files: sorted unique hashes, a bit per file that has each, and
    per file its name, sha256 and counts (texts, texts too short to have a span, spans)."""

    ngram: int
    hashes: np.ndarray
    masks: np.ndarray
    files: list[dict]

    @property
    def nbytes(self) -> int:
        return self.hashes.nbytes + self.masks.nbytes

    def save(self, path: Path) -> None:
        with replacing(path) as tmp, open(tmp, "wb") as fh:
            np.savez(
                fh,
                hashes=self.hashes,
                masks=self.masks,
                meta=np.array(json.dumps({"ngram": self.ngram, "files": self.files})),
            )

    @classmethod
    def load(cls, path: Path) -> EvalIndex:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            return cls(meta["ngram"], z["hashes"], z["masks"], meta["files"])

    def match(self, spans: Spans) -> tuple[np.ndarray, np.ndarray]:
        """The positions in `spans` of those in the index (ascending), and each one's file mask.

        The queries are sorted first: a binary search per random query misses the cache at
        every step (7x slower on a batch of 360k spans against 1.8M)."""
        if not len(self.hashes) or not len(spans.hashes):
            return np.zeros(0, np.int64), np.zeros(0, np.uint64)
        order = np.argsort(spans.hashes, kind="stable")
        queries = spans.hashes[order]
        at = np.searchsorted(self.hashes, queries)
        at[at == len(self.hashes)] = 0
        found = self.hashes[at] == queries
        hit, where = order[found], at[found]
        first = np.argsort(hit, kind="stable")
        return hit[first], self.masks[where[first]]


def build_index(paths: list[Path], ngram: int, batch: int = 4096) -> EvalIndex:
    """The index of every n-word span of the eval files' texts."""
    if len(paths) > MAX_EVAL_FILES:
        raise UserError(
            f"--decontaminate takes at most {MAX_EVAL_FILES} files; concatenate "
            "some (plain .txt/.jsonl texts) into one"
        )
    parts_h, parts_m, files = [], [], []
    for bit, path in enumerate(paths):
        texts = list(eval_texts(path))
        spans = [spans_of(texts[i : i + batch], ngram) for i in range(0, len(texts), batch)]
        unique = _sorted_unique([s.hashes for s in spans])
        short = sum(int((s.word_counts < ngram).sum()) for s in spans)
        files.append(
            {
                "file": str(path),
                "sha256": _sha256(path),
                "texts": len(texts),
                "short_texts": short,
                "spans": len(unique),
            }
        )
        parts_h.append(unique)
        parts_m.append(np.full(len(unique), np.uint64(1) << np.uint64(bit), dtype=np.uint64))
    return _merge_masks(ngram, parts_h, parts_m, files)


def _sorted_unique(parts: list[np.ndarray]) -> np.ndarray:
    """The distinct values of `parts`, sorted (a sort is ~6x faster than np.unique's hashing)."""
    values = np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.uint64)
    return values[np.concatenate(([True], values[1:] != values[:-1]))] if len(values) else values


def _merge_masks(
    ngram: int, parts_h: list[np.ndarray], parts_m: list[np.ndarray], files: list[dict]
) -> EvalIndex:
    """One sorted array of unique hashes, each with the OR of its files' bits."""
    hashes = np.concatenate(parts_h) if parts_h else np.zeros(0, np.uint64)
    masks = np.concatenate(parts_m) if parts_m else np.zeros(0, np.uint64)
    order = np.argsort(hashes, kind="stable")
    hashes, masks = hashes[order], masks[order]
    first = (
        np.flatnonzero(np.concatenate(([True], hashes[1:] != hashes[:-1])))
        if len(hashes)
        else np.zeros(0, np.int64)
    )
    merged = np.bitwise_or.reduceat(masks, first) if len(first) else masks
    return EvalIndex(ngram, hashes[first], merged.astype(np.uint64), files)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Hit:
    """Why one document was dropped: the eval files (bits) it shares spans with, and one span."""

    mask: int
    span: str


def contaminated(index: EvalIndex, texts: list[str]) -> dict[int, Hit]:
    """The documents of `texts` (by position) that share a span with the index."""
    spans = spans_of(texts, index.ngram)
    hit, masks = index.match(spans)
    found: dict[int, Hit] = {}
    for i, mask in zip(hit.tolist(), masks.tolist()):
        doc = int(spans.text_of[i])
        if doc in found:
            found[doc] = Hit(found[doc].mask | mask, found[doc].span)
        else:
            found[doc] = Hit(mask, spans.text(i, index.ngram))
    return found


class StreamedCheck:
    """`contaminated` for one document read in pieces, each cut before a space (so a piece's
    words are the document's, in order): the last n-1 words of a piece go on into the next, so
    every span is hashed once, including those that cross a cut. `hit` is what `contaminated`
    finds for the whole text: the first matching span, and the files of all of them."""

    def __init__(self, index: EvalIndex):
        self.index = index
        self.carry: list[bytes] = []
        self.hit: Hit | None = None

    def add(self, piece: str) -> None:
        n = self.index.ngram
        words = self.carry + _normalised(piece).split()
        self.carry = words[max(len(words) - n + 1, 0) :] if n > 1 else []
        spans = _spans(words, np.zeros(len(words), dtype=np.int64), np.array([len(words)]), n)
        hit, masks = self.index.match(spans)
        if not len(hit):
            return
        mask = int(np.bitwise_or.reduce(masks))
        if self.hit is None:
            self.hit = Hit(mask, spans.text(int(hit[0]), n))
        else:
            self.hit = Hit(self.hit.mask | mask, self.hit.span)


def settings_key(index: EvalIndex | None) -> dict | None:
    """What the output depends on: the span length and each eval file's name and contents."""
    if index is None:
        return None
    return {
        "ngram": index.ngram,
        "files": [{"file": f["file"], "sha256": f["sha256"]} for f in index.files],
    }


def manifest_entry(index: EvalIndex, per_group: list[list[int]]) -> dict:
    """The manifest's `decontamination`: per eval file its counts and the documents dropped for
    sharing a span with it (a document that matches two files counts under both)."""
    dropped = [sum(c) for c in zip(*per_group)] if per_group else [0] * len(index.files)
    return {
        "ngram": index.ngram,
        "files": [{**f, "documents": n} for f, n in zip(index.files, dropped)],
    }
