"""One small build of the built-in corpus, shared by the sample-corpus tests (it reads the whole
standard library once, ~0.5 MB written)."""

from __future__ import annotations

import pytest

from tests.data.sample_corpus.corpus_files import TARGET
from tinyllama_cli.data.sample_corpus import Library, build_sample_corpus
from tinyllama_cli.data.sample_corpus.eval_tasks import material
from tinyllama_cli.data.sample_corpus.stdlib import stdlib_root


@pytest.fixture(scope="session")
def library():
    return Library.read(stdlib_root(), seed=0)


@pytest.fixture(scope="session")
def built(tmp_path_factory, library):
    out = tmp_path_factory.mktemp("corpus") / "sample"
    summary = build_sample_corpus(out, tokens_target=TARGET, library=library)
    return out, summary


@pytest.fixture(scope="session")
def held(library):
    return material(library)[0]
