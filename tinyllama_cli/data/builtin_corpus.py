"""A built-in corpus that needs no network: the Python standard library, written in the layouts
of TinyLlama's two datasets.

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
DIR/README.md
```

Why it is built the way it is:
- Python sources are read, never imported: `ast.get_docstring` on parsed source cannot run a
  module's code. Only the docstrings of a fixed list of C modules come from imports (they have
  no source), done in a child interpreter (`python -I -S`, time-limited, output discarded), so
  neither their import nor the calling program's run-time state affects the result.
- Deterministic: files are listed sorted, every choice is a hash of (seed, name), and the
  writers (zstd level 3 one-shot, pyarrow) add no timestamps, so the same installation gives
  the same bytes every time.
- About 10% of library modules and reference topics are held out from both the text and the code,
  and the multiple-choice tasks are made from them; an item whose sentences also occur in the
  material that was kept is dropped, so the tasks test generalisation, not recall.
- Token counts are estimates (UTF-8 bytes / 4 for text, / 3.5 for code: what an 8192-piece
  SentencePiece BPE trained on this corpus measured); the real counts come from prepare-data.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import html.parser
import json
import os
import random
import re
import shutil
import sysconfig
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tinyllama_cli.errors import UserError
from tinyllama_cli.files import check_new_dir, publish

DEFAULT_TOKENS_TARGET = 3_000_000
TEXT_SHARE = 0.7                      # TinyLlama's SlimPajama:Starcoderdata = 7:3
BYTES_PER_TOKEN = {"text": 4.0, "code": 3.5}
HOLD_OUT_PERCENT = 10                 # of library modules and reference topics
GITHUB_RECORDS = 12                   # code files written as RedPajamaGithub records in SlimPajama
CHUNK_BYTES = 2 << 20                 # uncompressed bytes per SlimPajama chunk
PARQUET_BYTES = 1 << 20               # content bytes per Starcoderdata file
ROWS_PER_GROUP = 64
MAX_HELLASWAG = 1000
MAX_ARC = 500
MAX_ITEMS_PER_MODULE = 16             # so a few large modules do not make up a whole task

# Set names of SlimPajama used for each kind of text (the origin is also in meta["source"]).
SET_REFERENCE = "RedPajamaWikipedia"       # the language reference (pydoc_data.topics)
SET_DOCSTRINGS = "RedPajamaBook"           # module documentation pages from docstrings
SET_COMMENTS = "RedPajamaStackExchange"    # developers' notes: comment blocks in the sources
SET_DOC_FILES = "RedPajamaCommonCrawl"     # .txt/.rst/.html documents shipped with the library
SET_GITHUB = "RedPajamaGithub"             # code, which TinyLlama excluded from SlimPajama

# C modules whose docstrings are read by importing them (they have no Python source). Importing
# an extension module runs no Python code; anything that fails to import is skipped.
C_MODULES = (
    "builtins", "_bisect", "_bz2", "_collections", "_contextvars", "_csv", "_functools", "_heapq",
    "_io", "_json", "_lzma", "_queue", "_random", "_socket", "_statistics", "_struct", "_thread",
    "_weakref", "array", "atexit", "binascii", "cmath", "errno", "faulthandler", "fcntl", "gc",
    "grp", "itertools", "marshal", "math", "mmap", "posix", "pwd", "pyexpat", "resource", "select",
    "sys", "syslog", "termios", "time", "unicodedata", "zlib",
)
TEST_DIRS = ("test/", "idlelib/idle_test/", "lib2to3/tests/", "tkinter/test/", "unittest/test/",
             "ctypes/test/", "distutils/tests/", "sqlite3/test/")
SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__"}
REFERENCE_FILE = "pydoc_data/topics.py"
WHEELS_DIR = "ensurepip/_bundled"

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'])")
_COMMENT = re.compile(r"^\s*#+ ?(.*)$")
_NOT_LETTER = re.compile(r"[\W\d_]+")
_NOT_ALNUM = re.compile(r"[\W_]+")


def _count(not_wanted: re.Pattern, text: str) -> int:
    """How many characters of `text` the complement of `not_wanted` matches (fast, in C)."""
    return len(not_wanted.sub("", text))


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


@dataclass(frozen=True)
class DocEntry:
    """One docstring of a module: the material for the multiple-choice tasks."""

    module: str
    qualname: str          # "" for the module docstring
    kind: str              # "module" | "class" | "function" | "method" | "topic"
    doc: str


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


def estimate_tokens(text: str, kind: str = "text") -> int:
    """Tokens a Llama-style BPE would need, from the UTF-8 length (see the module docstring)."""
    return round(len(text.encode("utf-8")) / BYTES_PER_TOKEN[kind])


def _rank(seed: int, key: str) -> str:
    """A stable pseudo-random order for `key`: a hash, so it is the same on every run."""
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def is_held_out(seed: int, key: str) -> bool:
    """Whether the module or topic `key` is kept out of the corpus for the evaluation tasks."""
    return int(_rank(seed, "hold-out:" + key)[:8], 16) % 100 < HOLD_OUT_PERCENT


# --- reading the standard library ---------------------------------------------------------------


def stdlib_root() -> Path:
    """The directory of the running interpreter's standard library (the base one in a venv)."""
    return Path(sysconfig.get_paths()["stdlib"])


def python_files(root: Path) -> list[str]:
    """Relative paths of the library's .py files, sorted (no site-packages, no caches)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        rel_dir = Path(dirpath).relative_to(root)
        out.extend((rel_dir / f).as_posix() for f in sorted(filenames) if f.endswith(".py"))
    return sorted(out)


def wheel_sources(root: Path) -> dict[str, str]:
    """The .py files inside the wheels ensurepip bundles (pip, setuptools), keyed
    "ensurepip/_bundled/<wheel>/<member>"; read from the zip, never installed or imported.
    Some distributions strip these wheels: then there are none."""
    out = {}
    for wheel in sorted((root / "ensurepip" / "_bundled").glob("*.whl")):
        try:
            with zipfile.ZipFile(wheel) as zf:
                for member in sorted(zf.namelist()):
                    if member.endswith(".py"):
                        with contextlib.suppress(UnicodeDecodeError):
                            out[f"{WHEELS_DIR}/{wheel.name}/{member}"] = zf.read(member).decode("utf-8")
        except (zipfile.BadZipFile, OSError):
            continue
    return out


def split_wheel(rel: str) -> tuple[str, str]:
    """("pip-23.2.1-py3-none-any.whl", "pip/__init__.py") for a wheel member, ("", rel) otherwise."""
    if rel.startswith(WHEELS_DIR + "/") and ".whl/" in rel:
        wheel, member = rel[len(WHEELS_DIR) + 1:].split("/", 1)
        return wheel, member
    return "", rel


def is_test(rel: str) -> bool:
    return rel.startswith(TEST_DIRS) or "/tests/" in rel or "/test/" in rel


def module_name(rel: str) -> str:
    parts = split_wheel(rel)[1][:-3].split("/")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def read_source(root: Path, rel: str) -> str | None:
    """The file as text, or None when it is not UTF-8 (a few test files on purpose)."""
    try:
        return (root / rel).read_bytes().decode("utf-8")
    except (UnicodeDecodeError, OSError):
        return None


def parse(source: str) -> ast.Module | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")      # invalid escape sequences in old test files
            return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    sig = f"({ast.unparse(node.args)})"
    return sig + (f" -> {ast.unparse(node.returns)}" if node.returns else "")


def docstrings(tree: ast.Module, module: str) -> list[tuple[DocEntry, str]]:
    """(entry, heading) for the module, its classes (nested too) and their functions, in order."""
    out: list[tuple[DocEntry, str]] = []
    doc = ast.get_docstring(tree)
    if doc:
        out.append((DocEntry(module, "", "module", doc), f"# Module {module}"))

    def visit(body: list[ast.stmt], prefix: str, in_class: bool) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                qual = prefix + node.name
                bases = ", ".join(ast.unparse(b) for b in node.bases)
                doc = ast.get_docstring(node)
                if doc:
                    out.append((DocEntry(module, qual, "class", doc),
                                f"## class {qual}" + (f"({bases})" if bases else "")))
                visit(node.body, qual + ".", True)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    qual = prefix + node.name
                    level = "###" if in_class else "##"
                    kind = "method" if in_class else "function"
                    out.append((DocEntry(module, qual, kind, doc), f"{level} {qual}{_signature(node)}"))

    visit(tree.body, "", False)
    return out


def module_page(module: str, entries: list[tuple[DocEntry, str]]) -> str:
    """The module's documentation as a page of headings and docstrings (what pydoc shows)."""
    parts = []
    if not entries or entries[0][0].kind != "module":
        parts.append(f"# Module {module}")
    for entry, heading in entries:
        parts.append(f"{heading}\n\n{entry.doc}")
    return "\n\n".join(parts) + "\n"


def comment_notes(module: str, source: str) -> str | None:
    """The module's prose comment blocks, one paragraph each; None when it has none."""
    paragraphs, block = [], []

    def flush() -> None:
        text = " ".join(" ".join(block).split())
        letters = _count(_NOT_LETTER, text)
        if letters >= 40 and letters + text.count(" ") >= 0.85 * len(text):
            paragraphs.append(text)
        block.clear()

    for line in source.splitlines():
        m = _COMMENT.match(line)
        body = m.group(1).strip() if m else None
        if body and not body.startswith(("!", "-*-", "noqa", "type:", "pragma", "fmt:")):
            block.append(body)
        elif block:
            flush()
    if block:
        flush()
    if not paragraphs:
        return None
    return f"# Notes from the source of {module}\n\n" + "\n\n".join(paragraphs) + "\n"


def reference_topics(root: Path) -> dict[str, str]:
    """The language reference shipped for `help()`: pydoc_data/topics.py, read as a literal."""
    source = read_source(root, REFERENCE_FILE) if (root / REFERENCE_FILE).is_file() else None
    tree = parse(source) if source else None
    for node in tree.body if tree else []:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "topics" for t in node.targets):
            try:
                topics = ast.literal_eval(node.value)
            except ValueError:
                return {}
            return {k: v for k, v in sorted(topics.items()) if isinstance(v, str) and v.strip()}
    return {}


class _HTMLText(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self._skip += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("script", "style") and self._skip > 0
        if tag in ("p", "div", "h1", "h2", "h3", "h4", "li", "pre", "dt", "dd", "tr"):
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def doc_files(root: Path) -> list[tuple[str, str]]:
    """(path, text) of the prose documents shipped in the library (.txt, .rst, .html)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in sorted(filenames):
            rel = (Path(dirpath).relative_to(root) / name).as_posix()
            if not name.endswith((".txt", ".rst", ".html")) or "Grammar" in name:
                continue
            if is_test(rel) and not name.startswith("README"):
                continue
            text = read_source(root, rel)
            if not text or not text.strip():
                continue
            if name.endswith(".html"):
                parser = _HTMLText()
                parser.feed(text)
                text = re.sub(r"\n\s*\n+", "\n\n", "".join(parser.parts)).strip() + "\n"
            out.append((rel, text))
    return sorted(out)


# Run in a fresh, isolated interpreter (python -I -S): the pages then do not depend on what the
# calling program changed at run time (a CLI framework's sys.excepthook, say), and whatever an
# import might do stays out of this process. Prints {module: page} as JSON.
_C_PAGES_SCRIPT = r"""
import contextlib, importlib, inspect, io, json, sys, types, warnings

def entry(obj, title):
    doc = inspect.getdoc(obj) if isinstance(getattr(obj, "__doc__", None), str) else None
    if not doc:
        return None
    try:
        sig = "" if isinstance(obj, type) else str(inspect.signature(obj))
    except (TypeError, ValueError):
        sig = ""
    return f"{title}{sig}\n\n{doc}"

def page(name):
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mod = importlib.import_module(name)
    except Exception:
        return None
    if str(getattr(mod, "__file__", "")).endswith(".py"):
        return None
    doc = inspect.getdoc(mod)
    parts = [f"# Module {name}" + (f"\n\n{doc}" if doc else "")]
    for attr in sorted(vars(mod)):
        obj = vars(mod)[attr]
        if attr.startswith("_") or not isinstance(obj, (type, types.BuiltinFunctionType)) \
                or getattr(obj, "__module__", None) not in (name, name.lstrip("_")):
            continue
        text = entry(obj, f"## class {attr}" if isinstance(obj, type) else f"## {attr}")
        parts += [text] if text else []
        if isinstance(obj, type):
            for meth in sorted(vars(obj)):
                if not meth.startswith("_") and callable(vars(obj)[meth]):
                    text = entry(vars(obj)[meth], f"### {attr}.{meth}")
                    parts += [text] if text else []
    return "\n\n".join(parts) + "\n" if len(parts) > 1 else None

pages = {name: page(name) for name in sys.argv[1:]}
sys.stdout.write(json.dumps({k: v for k, v in pages.items() if v}))
"""


def c_module_pages(names: tuple[str, ...] = C_MODULES, timeout: float = 60.0) -> dict[str, str]:
    """Documentation pages of C modules from their docstrings, built in an isolated child
    interpreter with a time limit; {} if it fails (the corpus is then built without them)."""
    import subprocess
    import sys

    try:
        proc = subprocess.run([sys.executable, "-I", "-S", "-c", _C_PAGES_SCRIPT, *names],
                              capture_output=True, text=True, timeout=timeout, check=True)
        return json.loads(proc.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return {}


def code_ok(source: str) -> bool:
    """BigCode's Starcoderdata filters: no huge lines, not mostly symbols, not empty, < 1 MB."""
    lines = source.splitlines()
    if not source.strip() or len(source) > 1_000_000:
        return False
    if max(map(len, lines)) > 1000 or len(source) / len(lines) > 100:
        return False
    return _count(_NOT_ALNUM, source) >= 0.25 * len(source)


# --- the library, read once ---------------------------------------------------------------------


@dataclass
class Library:
    """The standard library (and ensurepip's bundled wheels), split into kept and held-out
    material. Non-test modules are parsed up front: the evaluation tasks need all of them."""

    root: Path
    seed: int
    files: list[str]                                     # every .py location, sorted
    wheels: dict[str, str]                               # wheel member location -> text
    held_out: set[str]                                   # module names and "topic:<name>"
    entries: dict[str, list[tuple[DocEntry, str]]]       # non-test module -> docstrings
    sources: dict[str, str]                              # non-test module -> text
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


# --- the text (SlimPajama) and the code (Starcoderdata) -----------------------------------------


def _text_candidates(lib: Library) -> Iterator[tuple[str, Callable[[], list[Document]]]]:
    """(rank, produce) for every text source; the work is done only for the sources reached."""

    def library_module(rel: str) -> Callable[[], list[Document]]:
        def produce() -> list[Document]:
            module, docs = module_name(rel), []
            if lib.entries[rel]:
                docs.append(Document(f"stdlib:{rel}", module_page(module, lib.entries[rel]), SET_DOCSTRINGS))
            notes = comment_notes(module, lib.sources[rel])
            if notes:
                docs.append(Document(f"stdlib:{rel}#comments", notes, SET_COMMENTS))
            return docs
        return produce

    def test_module(rel: str) -> Callable[[], list[Document]]:
        def produce() -> list[Document]:             # comments only: parsing tests is slow
            source = lib.source(rel)
            notes = comment_notes(module_name(rel), source) if source is not None else None
            return [Document(f"stdlib:{rel}#comments", notes, SET_COMMENTS)] if notes else []
        return produce

    def constant(docs: list[Document]) -> Callable[[], list[Document]]:
        return lambda: docs

    def c_modules() -> list[Document]:
        return [Document(f"c-module:{name}", page, SET_DOCSTRINGS)
                for name, page in sorted(c_module_pages().items())]

    for rel in lib.files:
        if rel in lib.entries and not lib.module_held_out(rel):
            yield _rank(lib.seed, rel), library_module(rel)
        elif is_test(rel):
            yield _rank(lib.seed, rel), test_module(rel)
    for name, text in lib.topics.items():
        if f"topic:{name}" not in lib.held_out:
            doc = Document(f"pydoc_data.topics:{name}", text.strip() + "\n", SET_REFERENCE)
            yield _rank(lib.seed, doc.key), constant([doc])
    for rel, text in doc_files(lib.root):
        yield _rank(lib.seed, rel), constant([Document(f"stdlib:{rel}", text, SET_DOC_FILES)])
    yield _rank(lib.seed, "c-modules"), c_modules


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
    for rel in sorted(lib.files, key=lambda r: _rank(lib.seed, "code:" + r)):
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


def _group(docs: list[Document], max_bytes: int) -> list[list[Document]]:
    groups: list[list[Document]] = [[]]
    size = 0
    for doc in docs:
        if groups[-1] and size + len(doc.text) > max_bytes:
            groups.append([])
            size = 0
        groups[-1].append(doc)
        size += len(doc.text)
    return [g for g in groups if g]


def write_slimpajama(docs: list[Document], out: Path, seed: int) -> list[str]:
    """Chunks of JSON lines, zstd-compressed, records shuffled by rank across sets."""
    import zstandard

    out.mkdir(parents=True)
    docs = sorted(docs, key=lambda d: _rank(seed, "record:" + d.key))
    names = []
    compressor = zstandard.ZstdCompressor(level=3, write_checksum=True)
    for i, group in enumerate(_group(docs, CHUNK_BYTES)):
        lines = "".join(
            json.dumps({"text": d.text, "meta": {"redpajama_set_name": d.set_name, "source": d.key}},
                       ensure_ascii=False) + "\n"
            for d in group
        )
        name = f"chunk-{i:05d}.jsonl.zst"
        (out / name).write_bytes(compressor.compress(lines.encode("utf-8")))
        names.append(name)
    return names


def repository(rel: str) -> tuple[str, str]:
    """(repository, path in it) of a library file, for Starcoderdata's max_stars_* columns."""
    wheel, member = split_wheel(rel)
    if wheel:
        return f"pypa/{wheel.split('-')[0]}", member
    return "python/cpython", f"Lib/{rel}"


def write_starcoder(docs: list[Document], out: Path) -> tuple[list[str], int]:
    """Parquet files with Starcoderdata's columns, each written in several row groups."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.mkdir(parents=True)
    schema = pa.schema([("max_stars_repo_path", pa.string()), ("max_stars_repo_name", pa.string()),
                        ("max_stars_count", pa.int64()), ("id", pa.string()), ("content", pa.string())])
    names, groups = [], 0
    for i, group in enumerate(_group(docs, PARQUET_BYTES)):
        table = pa.table({
            "max_stars_repo_path": [repository(d.key)[1] for d in group],
            "max_stars_repo_name": [repository(d.key)[0] for d in group],
            "max_stars_count": pa.array([None] * len(group), pa.int64()),
            "id": [hashlib.sha1(d.key.encode()).hexdigest() for d in group],
            "content": [d.text for d in group],
        }, schema=schema)
        rows = max(1, min(ROWS_PER_GROUP, -(-len(group) // 4)))
        name = f"train-{i:05d}.parquet"
        pq.write_table(table, out / name, row_group_size=rows, compression="zstd")
        groups += pq.ParquetFile(out / name).num_row_groups
        names.append(name)
    return names, groups


# --- the multiple-choice tasks ------------------------------------------------------------------


def normalize(text: str) -> str:
    return " ".join(text.split())


def sentences(paragraph: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(normalize(paragraph)) if s]


def prose_paragraphs(doc: str) -> Iterator[str]:
    """Paragraphs of plain prose: no code, doctest, markup or brackets (lm-eval's hellaswag
    preprocessing deletes "[...]", which would change the text the model is scored on)."""
    for para in re.split(r"\n\s*\n", doc):
        lines = para.splitlines()
        if not lines or any(line.startswith((" ", "\t")) for line in lines[1:]):
            continue
        text = normalize(para)
        if not text or any(s in text for s in (">>>", "[", "]", "::", "{", "}", "|", "  ", "**", "==")):
            continue
        if _count(_NOT_LETTER, text) + text.count(" ") >= 0.85 * len(text):
            yield text


def _material(lib: Library) -> tuple[list[DocEntry], list[DocEntry]]:
    """(held-out docstrings and topics, kept docstrings and topics)."""
    held, kept = [], []
    for rel, entries in lib.entries.items():
        (held if lib.module_held_out(rel) else kept).extend(e for e, _ in entries)
    for name, text in lib.topics.items():
        title = normalize(text.strip().splitlines()[0]) if text.strip() else name
        body = text.strip().split("\n", 2)[-1]
        entry = DocEntry(f"topic:{name}", title, "topic", body)
        (held if f"topic:{name}" in lib.held_out else kept).append(entry)
    return held, kept


def _seen_sentences(kept: list[DocEntry]) -> set[str]:
    return {s for e in kept for para in re.split(r"\n\s*\n", e.doc) for s in sentences(para)}


def hellaswag_items(held: list[DocEntry], seen: set[str], seed: int) -> list[dict]:
    """Rowan/hellaswag validation records: context = the opening sentence of a held-out
    paragraph, the true ending = its next sentence, three distractors = next sentences of
    similar length from other modules."""
    found, pairs, per_module = [], set(), {}
    for e in held:
        for para in prose_paragraphs(e.doc):
            sents = sentences(para)
            for i in range(1, min(len(sents), 3)):      # (s0 -> s1) and (s0 s1 -> s2)
                context, ending = " ".join(sents[:i]), sents[i]
                if (any(s in seen for s in sents[:i + 1]) or (context, ending) in pairs
                        or per_module.get(e.module, 0) >= MAX_ITEMS_PER_MODULE):
                    continue
                if len(context) >= 25 and 20 <= len(ending) <= 200 and ending.endswith("."):
                    found.append((e, context, ending))
                    pairs.add((context, ending))
                    per_module[e.module] = per_module.get(e.module, 0) + 1
    modules_of: dict[str, set[str]] = {}
    for e, _, ending in found:
        modules_of.setdefault(ending, set()).add(e.module)
    by_length = sorted(modules_of, key=lambda x: (len(x), x))
    items = []
    for e, context, ending in found[:MAX_HELLASWAG]:
        rng = random.Random(f"{seed}:hellaswag:{e.module}:{e.qualname}:{context}")
        near = sorted((x for x in by_length if e.module not in modules_of[x]),
                      key=lambda x: (abs(len(x) - len(ending)), x))[:12]
        if len(near) < 3:
            continue
        choices = rng.sample(near, 3)
        label = rng.randrange(4)
        choices.insert(label, ending)
        topic = e.kind == "topic"
        items.append({
            "ind": len(items),
            "activity_label": e.qualname if topic else ".".join(p for p in (e.module, e.qualname) if p),
            "ctx_a": context, "ctx_b": "", "ctx": context, "endings": choices,
            "source_id": e.module if topic else f"{e.module}:{e.qualname}",
            "split": "val", "split_type": "indomain", "label": str(label),
        })
    return items


def _public(qualname: str) -> bool:
    return bool(qualname) and not qualname.split(".")[-1].startswith("_")


def _summary(doc: str) -> str:
    """The first sentence of a docstring's first prose paragraph ("" when there is none)."""
    para = next(prose_paragraphs(doc), "")
    return sentences(para)[0] if para else ""


def arc_items(held: list[DocEntry], seen: set[str], seed: int) -> list[dict]:
    """allenai/ai2_arc records: which held-out module, function or method a docstring's first
    sentence describes; the wrong answers are its siblings (same class, else same module)."""
    by_module: dict[str, list[DocEntry]] = {}
    for e in held:
        if e.kind != "topic":
            by_module.setdefault(e.module, []).append(e)
    modules = sorted(m for m in by_module if not m.split(".")[-1].startswith("_"))
    all_names = sorted({e.qualname.split(".")[-1] for es in by_module.values() for e in es
                        if e.kind in ("function", "method") and _public(e.qualname)})
    items = []
    for module in modules:
        count = 0
        for e in by_module[module]:
            summary = _summary(e.doc)
            if count >= MAX_ITEMS_PER_MODULE or not 15 <= len(summary) <= 200 or summary in seen:
                continue
            if e.kind == "module":
                if module.split(".")[-1].lower() in summary.lower():
                    continue                    # the name would give the answer away
                question = f'Which Python module is described as "{summary}"?'
                answer, pool = module, [m for m in modules if m != module]
            elif e.kind in ("function", "method") and _public(e.qualname):
                owner = e.qualname.rpartition(".")[0]
                what = f"method of the class {module}.{owner}" if owner else f"function of the module {module}"
                question = f'Which {what} does this: "{summary}"?'
                answer = e.qualname.split(".")[-1]
                same_class = {x.qualname.split(".")[-1] for x in by_module[module]
                              if x.kind == e.kind and _public(x.qualname) and x.qualname.rpartition(".")[0] == owner}
                same_module = {x.qualname.split(".")[-1] for x in by_module[module]
                               if x.kind in ("function", "method") and _public(x.qualname)}
                pool = next((sorted(p - {answer}) for p in (same_class, same_module) if len(p - {answer}) >= 3),
                            [n for n in all_names if n != answer])
            else:
                continue
            if len(pool) < 3:
                continue
            rng = random.Random(f"{seed}:arc:{module}:{e.qualname}")
            choices = rng.sample(pool, 3)
            key = rng.randrange(4)
            choices.insert(key, answer)
            items.append({
                "id": f"Stdlib_{len(items):05d}", "question": question,
                "choices": {"text": choices, "label": list("ABCD")}, "answerKey": "ABCD"[key],
            })
            count += 1
            if len(items) >= MAX_ARC:
                return items
    return items


HELD_OUT_TEXT_CHARS = 200_000  # ~50k tokens: a perplexity figure in seconds on a CPU


def heldout_pages(lib: Library, max_chars: int = HELD_OUT_TEXT_CHARS) -> list[dict]:
    """Documentation pages of held-out modules in EleutherAI/wikitext_document_level's schema
    (`{"page": text}`), for lm-eval's `wikitext` perplexity task: text the model never saw."""
    rows, total = [], 0
    for rel, entries in lib.entries.items():
        if not lib.module_held_out(rel) or not entries:
            continue
        page = module_page(module_name(rel), entries)
        if total + len(page) > max_chars:
            continue
        rows.append({"page": page})
        total += len(page)
    return rows


def write_jsonl(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


# --- putting it together ------------------------------------------------------------------------


def build_sample_corpus(out: str | Path, tokens_target: int = DEFAULT_TOKENS_TARGET,
                        overwrite: bool = False, seed: int = 0, root: str | Path | None = None,
                        library: Library | None = None) -> CorpusSummary:
    """Write the built-in corpus to `out` (see the module docstring) and return its summary.

    About 70% of `tokens_target` is text and 30% code; when the library has less text than
    that, the code is cut to keep the 7:3 ratio. `root` is the standard library to read (the
    running interpreter's by default); `library` reuses one already read with `Library.read`.
    """
    start = time.perf_counter()
    out = Path(out)
    if tokens_target < 1000:
        raise UserError(f"--tokens-target {tokens_target} is too small; use at least 1000")
    check_new_dir(out, overwrite)
    root = Path(root) if root is not None else (library.root if library else stdlib_root())
    if not (root / "os.py").is_file():
        raise UserError(f"{root} is not a Python standard library (no os.py); pass the Lib directory")

    import sys

    lib = library if library is not None and (library.root, library.seed) == (root, seed) \
        else Library.read(root, seed)
    text, available = select_text(lib, round(tokens_target * TEXT_SHARE))
    text_tokens = sum(d.tokens for d in text)
    github, code = select_code(lib, round(text_tokens * (1 - TEXT_SHARE) / TEXT_SHARE))
    held, kept = _material(lib)
    seen = _seen_sentences(kept)
    hellaswag = hellaswag_items(held, seen, seed)
    arc = arc_items(held, seen, seed)
    pages = heldout_pages(lib)

    summary = CorpusSummary(
        out=str(out), python=f"{sys.implementation.name} {sys.version.split()[0]} ({root})",
        seed=seed, tokens_target=tokens_target, text_documents=len(text), text_tokens=text_tokens,
        text_tokens_available=available, github_documents=len(github),
        github_tokens=sum(d.tokens for d in github), code_files=len(code),
        code_tokens=sum(d.tokens for d in code), held_out=sorted(lib.held_out),
        hellaswag=len(hellaswag), arc_easy=len(arc), heldout_pages=len(pages),
    )
    for d in text:
        summary.text_sets[d.set_name] = summary.text_sets.get(d.set_name, 0) + 1
    summary.text_sets = dict(sorted(summary.text_sets.items()))

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        summary.slimpajama_files = write_slimpajama(text + github, tmp / "slimpajama", seed)
        summary.starcoder_files, summary.row_groups = write_starcoder(code, tmp / "starcoder" / "python")
        write_jsonl(hellaswag, tmp / "eval" / "hellaswag.jsonl")
        write_jsonl(arc, tmp / "eval" / "arc_easy.jsonl")
        write_jsonl(pages, tmp / "eval" / "wikitext.jsonl")
        (tmp / "README.md").write_text(render_readme(summary), encoding="utf-8")
        publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    summary.seconds = round(time.perf_counter() - start, 2)
    return summary


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
    rows = [f"| {name} | {n:,} | {SET_DESCRIPTIONS.get(name, '')} |" for name, n in s.text_sets.items()]
    rows.append(f"| {SET_GITHUB} | {s.github_documents:,} | {SET_DESCRIPTIONS[SET_GITHUB]} "
                f"(about {s.github_tokens:,} tokens) |")
    available = (f"{s.text_tokens_available:,}" if s.text_tokens_available >= 0
                 else "more than the text budget")
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
tinyllama pretrain --model cpu-small --data DATA_DIR --mix slimpajama=0.7,starcoder=0.3 --out RUN_DIR
```

Held out: {", ".join(s.held_out)}.
"""
