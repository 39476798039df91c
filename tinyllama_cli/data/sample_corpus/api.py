"""`build_sample_corpus`: read the library, choose the text, the code and the evaluation items,
and write them all under a temporary name that is published as DIR only when complete."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tinyllama_cli.data.sample_corpus.documents import Document
from tinyllama_cli.data.sample_corpus.eval_tasks import (
    arc_items,
    heldout_pages,
    hellaswag_items,
    material,
    seen_sentences,
)
from tinyllama_cli.data.sample_corpus.library import Library
from tinyllama_cli.data.sample_corpus.readme import CorpusSummary, render_readme
from tinyllama_cli.data.sample_corpus.selection import select_code, select_text
from tinyllama_cli.data.sample_corpus.stdlib import stdlib_root
from tinyllama_cli.data.sample_corpus.writers import write_jsonl, write_slimpajama, write_starcoder
from tinyllama_cli.errors import UserError
from tinyllama_cli.files import check_new_dir, staged

DEFAULT_TOKENS_TARGET = 3_000_000
TEXT_SHARE = 0.7  # TinyLlama's SlimPajama:Starcoderdata = 7:3


@dataclass
class _Contents:
    """Everything the corpus holds, chosen before anything is written."""

    text: list[Document]
    text_available: int  # estimated tokens of all the text; -1: not all was read
    github: list[Document]
    code: list[Document]
    hellaswag: list[dict]
    arc: list[dict]
    pages: list[dict]


def build_sample_corpus(
    out: str | Path,
    tokens_target: int = DEFAULT_TOKENS_TARGET,
    overwrite: bool = False,
    seed: int = 0,
    root: str | Path | None = None,
    library: Library | None = None,
) -> CorpusSummary:
    """Write the built-in corpus to `out` (see the package docstring) and return its summary.

    About 70% of `tokens_target` is text and 30% code; when the library has less text than
    that, the code is cut to keep the 7:3 ratio. `root` is the standard library to read (the
    running interpreter's by default); `library` reuses one already read with `Library.read`.
    """
    start = time.perf_counter()
    out = Path(out)
    root = _check(out, tokens_target, overwrite, root, library)
    lib = (
        library
        if library is not None and (library.root, library.seed) == (root, seed)
        else Library.read(root, seed)
    )
    contents = _choose(lib, tokens_target, seed)
    summary = _summarize(contents, out, root, seed, tokens_target, lib)
    # Checked above (an empty directory may be filled), so `staged` only stages and publishes.
    with staged(out, overwrite=True) as tmp:
        _write(contents, summary, tmp, seed)
    summary.seconds = round(time.perf_counter() - start, 2)
    return summary


def _check(
    out: Path, tokens_target: int, overwrite: bool, root: str | Path | None, library: Library | None
) -> Path:
    """Refuse bad arguments before any reading; return the standard library's directory."""
    if tokens_target < 1000:
        raise UserError(f"--tokens-target {tokens_target} is too small; use at least 1000")
    check_new_dir(out, overwrite)
    root = Path(root) if root is not None else (library.root if library else stdlib_root())
    if not (root / "os.py").is_file():
        raise UserError(
            f"{root} is not a Python standard library (no os.py); pass the Lib directory"
        )
    return root


def _choose(lib: Library, tokens_target: int, seed: int) -> _Contents:
    """The text up to 70% of the target, code for 3/7 of the text taken, the eval items."""
    text, available = select_text(lib, round(tokens_target * TEXT_SHARE))
    text_tokens = sum(d.tokens for d in text)
    github, code = select_code(lib, round(text_tokens * (1 - TEXT_SHARE) / TEXT_SHARE))
    held, kept = material(lib)
    seen = seen_sentences(kept)
    return _Contents(
        text,
        available,
        github,
        code,
        hellaswag_items(held, seen, seed),
        arc_items(held, seen, seed),
        heldout_pages(lib),
    )


def _summarize(
    c: _Contents, out: Path, root: Path, seed: int, tokens_target: int, lib: Library
) -> CorpusSummary:
    summary = CorpusSummary(
        out=str(out),
        python=f"{sys.implementation.name} {sys.version.split()[0]} ({root})",
        seed=seed,
        tokens_target=tokens_target,
        text_documents=len(c.text),
        text_tokens=sum(d.tokens for d in c.text),
        text_tokens_available=c.text_available,
        github_documents=len(c.github),
        github_tokens=sum(d.tokens for d in c.github),
        code_files=len(c.code),
        code_tokens=sum(d.tokens for d in c.code),
        held_out=sorted(lib.held_out),
        hellaswag=len(c.hellaswag),
        arc_easy=len(c.arc),
        heldout_pages=len(c.pages),
    )
    for d in c.text:
        summary.text_sets[d.set_name] = summary.text_sets.get(d.set_name, 0) + 1
    summary.text_sets = dict(sorted(summary.text_sets.items()))
    return summary


def _write(c: _Contents, summary: CorpusSummary, tmp: Path, seed: int) -> None:
    """Every file of the corpus under `tmp`; the file lists and row groups go into `summary`
    before the README, which shows them, is rendered."""
    summary.slimpajama_files = write_slimpajama(c.text + c.github, tmp / "slimpajama", seed)
    summary.starcoder_files, summary.row_groups = write_starcoder(
        c.code, tmp / "starcoder" / "python"
    )
    write_jsonl(c.hellaswag, tmp / "eval" / "hellaswag.jsonl")
    write_jsonl(c.arc, tmp / "eval" / "arc_easy.jsonl")
    write_jsonl(c.pages, tmp / "eval" / "wikitext.jsonl")
    (tmp / "README.md").write_text(render_readme(summary), encoding="utf-8")
