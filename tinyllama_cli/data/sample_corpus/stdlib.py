"""Reading the running interpreter's standard library: its .py files, the pip/setuptools wheels
`ensurepip` bundles (from the zip), the language reference, the shipped prose documents, and the
docstrings of C modules.

Python sources are read, never imported: docstrings come from `ast` on the parsed source, which
cannot run a module's code. Only the C modules (they have no source) are imported, in a child
interpreter (`python -I -S`, time-limited, output discarded), so neither their import nor the
calling program's run-time state (a CLI's replaced `sys.excepthook`) affects the result.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import subprocess
import sys
import sysconfig
import warnings
import zipfile
from pathlib import Path

from tinyllama_cli.data.sample_corpus.prose import html_text

# C modules whose docstrings are read by importing them (they have no Python source). Importing
# an extension module runs no Python code; anything that fails to import is skipped.
C_MODULES = (
    "builtins",
    "_bisect",
    "_bz2",
    "_collections",
    "_contextvars",
    "_csv",
    "_functools",
    "_heapq",
    "_io",
    "_json",
    "_lzma",
    "_queue",
    "_random",
    "_socket",
    "_statistics",
    "_struct",
    "_thread",
    "_weakref",
    "array",
    "atexit",
    "binascii",
    "cmath",
    "errno",
    "faulthandler",
    "fcntl",
    "gc",
    "grp",
    "itertools",
    "marshal",
    "math",
    "mmap",
    "posix",
    "pwd",
    "pyexpat",
    "resource",
    "select",
    "sys",
    "syslog",
    "termios",
    "time",
    "unicodedata",
    "zlib",
)
TEST_DIRS = (
    "test/",
    "idlelib/idle_test/",
    "lib2to3/tests/",
    "tkinter/test/",
    "unittest/test/",
    "ctypes/test/",
    "distutils/tests/",
    "sqlite3/test/",
)
SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__"}
REFERENCE_FILE = "pydoc_data/topics.py"
WHEELS_DIR = "ensurepip/_bundled"


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
                            text = zf.read(member).decode("utf-8")
                            out[f"{WHEELS_DIR}/{wheel.name}/{member}"] = text
        except (zipfile.BadZipFile, OSError):
            continue
    return out


def split_wheel(rel: str) -> tuple[str, str]:
    """("pip-23.2.1-py3-none-any.whl", "pip/__init__.py") for a wheel member, ("", rel)
    otherwise."""
    if rel.startswith(WHEELS_DIR + "/") and ".whl/" in rel:
        wheel, member = rel[len(WHEELS_DIR) + 1 :].split("/", 1)
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
            warnings.simplefilter("ignore")  # invalid escape sequences in old test files
            return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def reference_topics(root: Path) -> dict[str, str]:
    """The language reference shipped for `help()`: pydoc_data/topics.py, read as a literal."""
    source = read_source(root, REFERENCE_FILE) if (root / REFERENCE_FILE).is_file() else None
    tree = parse(source) if source else None
    for node in tree.body if tree else []:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if any(getattr(t, "id", None) == "topics" for t in targets):
            try:
                topics = ast.literal_eval(node.value)
            except ValueError:
                return {}
            return {k: v for k, v in sorted(topics.items()) if isinstance(v, str) and v.strip()}
    return {}


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
            out.append((rel, html_text(text) if name.endswith(".html") else text))
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
    try:
        proc = subprocess.run(
            [sys.executable, "-I", "-S", "-c", _C_PAGES_SCRIPT, *names],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
        return json.loads(proc.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return {}
