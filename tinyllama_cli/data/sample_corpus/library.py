"""The standard library read once: every source, docstring and reference topic, split into the
material kept for the corpus and the material held out for the evaluation tasks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tinyllama_cli.data.sample_corpus.documents import is_held_out
from tinyllama_cli.data.sample_corpus.prose import DocEntry, docstrings
from tinyllama_cli.data.sample_corpus.stdlib import (
    REFERENCE_FILE,
    is_test,
    module_name,
    parse,
    python_files,
    read_source,
    reference_topics,
    wheel_sources,
)


@dataclass
class Library:
    """The standard library (and ensurepip's bundled wheels), split into kept and held-out
    material. Non-test modules are parsed up front: the evaluation tasks need all of them."""

    root: Path
    seed: int
    files: list[str]  # every .py location, sorted
    wheels: dict[str, str]  # wheel member location -> text
    held_out: set[str]  # module names and "topic:<name>"
    entries: dict[str, list[tuple[DocEntry, str]]]  # non-test module -> docstrings
    sources: dict[str, str]  # non-test module -> text
    topics: dict[str, str]

    @classmethod
    def read(cls, root: Path, seed: int) -> Library:
        wheels = wheel_sources(root)
        files = sorted(python_files(root) + list(wheels))
        lib = cls(root, seed, files, wheels, set(), {}, {}, reference_topics(root))
        for rel in files:
            if is_test(rel) or rel == REFERENCE_FILE:
                continue
            source = lib.source(rel)
            tree = parse(source) if source is not None else None
            if tree is None:
                continue
            module = module_name(rel)
            lib.sources[rel] = source
            lib.entries[rel] = docstrings(tree, module)
            if is_held_out(seed, module):
                lib.held_out.add(module)
        lib.held_out |= {f"topic:{n}" for n in lib.topics if is_held_out(seed, f"topic:{n}")}
        return lib

    def source(self, rel: str) -> str | None:
        if rel in self.sources:
            return self.sources[rel]
        return self.wheels[rel] if rel in self.wheels else read_source(self.root, rel)

    def module_held_out(self, rel: str) -> bool:
        return module_name(rel) in self.held_out
