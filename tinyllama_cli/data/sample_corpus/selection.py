"""What goes into the corpus: text documents and code files in a seeded order until their
token budgets, the code under BigCode's Starcoderdata filters.

Text is produced lazily: each candidate (a module's page and comments, a reference topic, a
shipped document, the C modules' pages) is built only when the budget reaches it, so a small
corpus does not pay for reading the whole library's prose.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from tinyllama_cli.data.sample_corpus.documents import (
    SET_COMMENTS,
    SET_DOC_FILES,
    SET_DOCSTRINGS,
    SET_GITHUB,
    SET_REFERENCE,
    Document,
    rank,
)
from tinyllama_cli.data.sample_corpus.library import Library
from tinyllama_cli.data.sample_corpus.prose import comment_notes, count_chars, module_page
from tinyllama_cli.data.sample_corpus.stdlib import (
    REFERENCE_FILE,
    c_module_pages,
    doc_files,
    is_test,
    module_name,
)

GITHUB_RECORDS = 12  # code files written as RedPajamaGithub records in SlimPajama
_NOT_ALNUM = re.compile(r"[\W_]+")


def code_ok(source: str) -> bool:
    """BigCode's Starcoderdata filters: no huge lines, not mostly symbols, not empty, < 1 MB."""
    lines = source.splitlines()
    if not source.strip() or len(source) > 1_000_000:
        return False
    if max(map(len, lines)) > 1000 or len(source) / len(lines) > 100:
        return False
    return count_chars(_NOT_ALNUM, source) >= 0.25 * len(source)


def _text_candidates(lib: Library) -> Iterator[tuple[str, Callable[[], list[Document]]]]:
    """(rank, produce) for every text source; the work is done only for the sources reached."""

    def library_module(rel: str) -> Callable[[], list[Document]]:
        def produce() -> list[Document]:
            module, docs = module_name(rel), []
            if lib.entries[rel]:
                page = module_page(module, lib.entries[rel])
                docs.append(Document(f"stdlib:{rel}", page, SET_DOCSTRINGS))
            notes = comment_notes(module, lib.sources[rel])
            if notes:
                docs.append(Document(f"stdlib:{rel}#comments", notes, SET_COMMENTS))
            return docs

        return produce

    def test_module(rel: str) -> Callable[[], list[Document]]:
        def produce() -> list[Document]:  # comments only: parsing tests is slow
            source = lib.source(rel)
            notes = comment_notes(module_name(rel), source) if source is not None else None
            return [Document(f"stdlib:{rel}#comments", notes, SET_COMMENTS)] if notes else []

        return produce

    def constant(docs: list[Document]) -> Callable[[], list[Document]]:
        return lambda: docs

    def c_modules() -> list[Document]:
        return [
            Document(f"c-module:{name}", page, SET_DOCSTRINGS)
            for name, page in sorted(c_module_pages().items())
        ]

    for rel in lib.files:
        if rel in lib.entries and not lib.module_held_out(rel):
            yield rank(lib.seed, rel), library_module(rel)
        elif is_test(rel):
            yield rank(lib.seed, rel), test_module(rel)
    for name, text in lib.topics.items():
        if f"topic:{name}" not in lib.held_out:
            doc = Document(f"pydoc_data.topics:{name}", text.strip() + "\n", SET_REFERENCE)
            yield rank(lib.seed, doc.key), constant([doc])
    for rel, text in doc_files(lib.root):
        yield rank(lib.seed, rel), constant([Document(f"stdlib:{rel}", text, SET_DOC_FILES)])
    yield rank(lib.seed, "c-modules"), c_modules


def select_text(lib: Library, budget: int) -> tuple[list[Document], int]:
    """Text documents in rank order until `budget` estimated tokens; also what was available
    (counted only when the whole library was read, i.e. when the budget was not reached)."""
    chosen, total, complete = [], 0, True
    for _, produce in sorted(_text_candidates(lib), key=lambda c: c[0]):
        if total >= budget:
            complete = False
            break
        for doc in produce():
            chosen.append(doc)
            total += doc.tokens
    return chosen, (total if complete else -1)


def select_code(lib: Library, budget: int) -> tuple[list[Document], list[Document]]:
    """(GitHub records for SlimPajama, Starcoderdata files) in rank order until `budget`."""
    github, code, total = [], [], 0
    for rel in sorted(lib.files, key=lambda r: rank(lib.seed, "code:" + r)):
        if total >= budget:
            break
        if rel == REFERENCE_FILE or lib.module_held_out(rel):
            continue
        source = lib.source(rel)
        if source is None or not code_ok(source):
            continue
        if len(github) < GITHUB_RECORDS and len(source) < 16_000:
            github.append(Document(f"stdlib:{rel}", source, SET_GITHUB, kind="code"))
            continue
        doc = Document(rel, source, "python", kind="code")
        code.append(doc)
        total += doc.tokens
    return github, code
