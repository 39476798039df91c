"""The records of the corpus, their estimated token counts, and the seeded choices.

Every choice the corpus makes (which modules are held out, in what order text and code are
taken, how records are shuffled) is a sha256 of (seed, name), never `random` or `hash()`, so the
same installation gives the same bytes in every process.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

BYTES_PER_TOKEN = {"text": 4.0, "code": 3.5}
HOLD_OUT_PERCENT = 10  # of library modules and reference topics

# Set names of SlimPajama used for each kind of text (the origin is also in meta["source"]).
SET_REFERENCE = "RedPajamaWikipedia"  # the language reference (pydoc_data.topics)
SET_DOCSTRINGS = "RedPajamaBook"  # module documentation pages from docstrings
SET_COMMENTS = "RedPajamaStackExchange"  # developers' notes: comment blocks in the sources
SET_DOC_FILES = "RedPajamaCommonCrawl"  # .txt/.rst/.html documents shipped with the library
SET_GITHUB = "RedPajamaGithub"  # code, which TinyLlama excluded from SlimPajama


@dataclass(frozen=True)
class Document:
    """One record of the corpus: `key` names its origin, `kind` is "text" or "code"."""

    key: str
    text: str
    set_name: str
    kind: str = "text"

    @property
    def tokens(self) -> int:
        return estimate_tokens(self.text, self.kind)


def estimate_tokens(text: str, kind: str = "text") -> int:
    """Tokens a Llama-style BPE would need, from the UTF-8 length: bytes / 4 for text, / 3.5
    for code, what an 8192-piece BPE trained on this corpus measured."""
    return round(len(text.encode("utf-8")) / BYTES_PER_TOKEN[kind])


def rank(seed: int, key: str) -> str:
    """A stable pseudo-random order for `key`: a hash, so it is the same on every run."""
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def is_held_out(seed: int, key: str) -> bool:
    """Whether the module or topic `key` is kept out of the corpus for the evaluation tasks."""
    return int(rank(seed, "hold-out:" + key)[:8], 16) % 100 < HOLD_OUT_PERCENT
