"""What a build wrote (`CorpusSummary`, also what the CLI prints) and DIR/README.md rendered
from it: what is in the corpus, where it came from, and how to use it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from tinyllama_cli.data.sample_corpus.documents import (
    SET_COMMENTS,
    SET_DOC_FILES,
    SET_DOCSTRINGS,
    SET_GITHUB,
    SET_REFERENCE,
)


@dataclass
class CorpusSummary:
    """What `build_sample_corpus` wrote (also rendered into DIR/README.md)."""

    out: str
    python: str
    seed: int
    tokens_target: int
    text_documents: int = 0
    text_tokens: int = 0
    text_tokens_available: int = 0
    text_sets: dict[str, int] = field(default_factory=dict)
    github_documents: int = 0
    github_tokens: int = 0
    slimpajama_files: list[str] = field(default_factory=list)
    code_files: int = 0
    code_tokens: int = 0
    starcoder_files: list[str] = field(default_factory=list)
    row_groups: int = 0
    held_out: list[str] = field(default_factory=list)
    hellaswag: int = 0
    arc_easy: int = 0
    heldout_pages: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


SET_DESCRIPTIONS = {
    SET_REFERENCE: "the language reference shipped for `help()` (`pydoc_data.topics`)",
    SET_DOCSTRINGS: "one page per module: its module, class and function docstrings, read from the "
    "source with `ast` (C modules: their `__doc__`)",
    SET_COMMENTS: "the prose comment blocks of each module's source",
    SET_DOC_FILES: "the .txt, .rst and .html documents shipped in the library",
    SET_GITHUB: "whole Python source files, for the exclude filter (TinyLlama excluded this set)",
}


def render_readme(s: CorpusSummary) -> str:
    """DIR/README.md: what is in the corpus, where it came from, and how to use it. It names no
    output path, so two builds into different directories are byte-identical."""
    rows = [
        f"| {name} | {n:,} | {SET_DESCRIPTIONS.get(name, '')} |" for name, n in s.text_sets.items()
    ]
    rows.append(
        f"| {SET_GITHUB} | {s.github_documents:,} | {SET_DESCRIPTIONS[SET_GITHUB]} "
        f"(about {s.github_tokens:,} tokens) |"
    )
    available = (
        f"{s.text_tokens_available:,}"
        if s.text_tokens_available >= 0
        else "more than the text budget"
    )
    table = "\n".join(rows)
    return f"""# Built-in sample corpus

Written by `tinyllama sample-corpus` from the standard library of {s.python} (and the pip and
setuptools wheels that `ensurepip` bundles there), with seed {s.seed} and a target of
{s.tokens_target:,} tokens. It needs no network, and building it again from the same Python
installation gives the same bytes. Token counts are estimates (UTF-8 bytes / 4 for text, / 3.5
for code); `tinyllama prepare-data` reports the exact ones. Below, DIR is this directory.

## slimpajama/ — text in SlimPajama's layout

{len(s.slimpajama_files)} files `chunk-NNNNN.jsonl.zst`: zstd-compressed JSON lines
`{{"text": ..., "meta": {{"redpajama_set_name": ..., "source": ...}}}}` (`source` names the file,
module or topic a record came from). {s.text_documents:,} text documents, about
{s.text_tokens:,} tokens (the library held {available}):

| redpajama_set_name | documents | what it is |
|---|---|---|
{table}

## starcoder/python/ — code in Starcoderdata's layout

{len(s.starcoder_files)} files `train-NNNNN.parquet` with {s.row_groups} row groups in all; columns
`max_stars_repo_path`, `max_stars_repo_name`, `max_stars_count` (null), `id`, `content`.
{s.code_files:,} Python files, about {s.code_tokens:,} tokens (3/7 of the text), filtered as
BigCode filtered Starcoderdata: no line over 1000 characters, mean line length at most 100, at
least 25% alphanumeric characters.

## eval/ — small multiple-choice tasks from held-out material

{len(s.held_out)} modules and reference topics are in neither the text nor the code (listed at
the end); the two tasks are made from them, and an item whose sentences also occur in the
material that was kept (vendored copies, for instance) is dropped.

- `hellaswag.jsonl`: {s.hellaswag} records in `Rowan/hellaswag`'s validation schema (ind,
  activity_label, ctx_a, ctx_b, ctx, endings, source_id, split, split_type, label). The context
  is the first one or two sentences of a held-out docstring or reference paragraph;
  `endings[int(label)]` is the true next sentence, the other three are next sentences of
  similar length from other held-out modules. Chance is 25%.
- `arc_easy.jsonl`: {s.arc_easy} records in `allenai/ai2_arc`'s schema (id, question,
  choices.text, choices.label, answerKey): which held-out module, function or method the first
  sentence of a docstring describes. Chance is 25%.
- `wikitext.jsonl`: {s.heldout_pages} documentation pages of held-out modules in
  `EleutherAI/wikitext_document_level`'s schema (`page`), for perplexity on text the model never
  saw, scored by lm-eval's `wikitext` task (word perplexity, bits per byte).

Run them offline through lm-eval's own task definitions:

```
tinyllama eval RUN_DIR --tasks hellaswag,arc_easy,wikitext \\
    --dataset hellaswag=DIR/eval/hellaswag.jsonl --dataset arc_easy=DIR/eval/arc_easy.jsonl \\
    --dataset wikitext=DIR/eval/wikitext.jsonl
```

## Preparing it for training

```
tinyllama prepare-data slimpajama=DIR/slimpajama starcoder=DIR/starcoder \\
    --exclude-meta redpajama_set_name=RedPajamaGithub \\
    --train-tokenizer --vocab-size 8192 --val-fraction 0.02 --out DATA_DIR
tinyllama pretrain --model cpu-small --data DATA_DIR --mix slimpajama=0.7,starcoder=0.3 \\
    --out RUN_DIR
```

Held out: {", ".join(s.held_out)}.
"""
