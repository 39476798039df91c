"""`sample-corpus`: a built-in corpus that needs no network, the Python standard library written
in the layouts of TinyLlama's two datasets.

Every CPython installation carries one to two million tokens of real English (the language
reference in `pydoc_data.topics`, module/class/function docstrings, source comments, the
.txt/.rst/.html documents shipped in the library, the docstrings of the C modules) and tens of
megabytes of real Python (the library, and the pip/setuptools wheels `ensurepip` bundles).
`build_sample_corpus` writes the text in SlimPajama's layout and the code in Starcoderdata's, so
a quickstart runs through exactly the code paths of a full-scale run:

```
DIR/slimpajama/chunk-00000.jsonl.zst     {"text": ..., "meta": {"redpajama_set_name": ...}}
DIR/starcoder/python/train-00000.parquet  content + max_stars_repo_path, ... (several row groups)
DIR/eval/hellaswag.jsonl                 Rowan/hellaswag's validation schema
DIR/eval/arc_easy.jsonl                  allenai/ai2_arc's schema
DIR/eval/wikitext.jsonl                  EleutherAI/wikitext_document_level's schema
DIR/README.md
```

The modules, bottom up: `documents` (records, token estimates, seeded choices), `prose`
(docstring pages, comments, sentences), `stdlib` (reading the library's files), `library` (the
library read once, kept and held-out), `selection` (what text and code go in), `writers` (the
file formats), `eval_tasks` (hellaswag, arc_easy, wikitext items), `readme` (the summary and
DIR/README.md), `api` (`build_sample_corpus`).

Why it is built the way it is:
- Python sources are read, never imported (see `stdlib`); only a fixed list of C modules is
  imported, in a child interpreter, so nothing of this process affects the result.
- Deterministic: files are listed sorted, every choice is a hash of (seed, name), and the
  writers (zstd level 3 one-shot, pyarrow) add no timestamps, so the same installation gives
  the same bytes every time.
- About 10% of library modules and reference topics are held out from both the text and the code,
  and the multiple-choice tasks are made from them; an item whose sentences also occur in the
  material that was kept is dropped, so the tasks test generalisation, not recall.
- Token counts are estimates (UTF-8 bytes / 4 for text, / 3.5 for code: what an 8192-piece
  SentencePiece BPE trained on this corpus measured); the real counts come from prepare-data.
"""

from tinyllama_cli.data.sample_corpus.api import build_sample_corpus
from tinyllama_cli.data.sample_corpus.library import Library
from tinyllama_cli.data.sample_corpus.readme import CorpusSummary

__all__ = ["CorpusSummary", "Library", "build_sample_corpus"]
