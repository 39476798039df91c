"""Prose out of Python sources and documents: docstring pages, comment notes, HTML text, and
the sentences and paragraphs the evaluation tasks are cut from.

All of it works on text and `ast` trees only; nothing here reads a file or imports a module.
"""

from __future__ import annotations

import ast
import html.parser
import re
from collections.abc import Iterator
from dataclasses import dataclass

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'])")
_COMMENT = re.compile(r"^\s*#+ ?(.*)$")
_NOT_LETTER = re.compile(r"[\W\d_]+")
# Paragraphs with any of these are code, doctest or markup; lm-eval's hellaswag deletes "[...]".
_NOT_PROSE = (">>>", "[", "]", "::", "{", "}", "|", "  ", "**", "==")


def count_chars(not_wanted: re.Pattern, text: str) -> int:
    """How many characters of `text` the complement of `not_wanted` matches (fast, in C)."""
    return len(not_wanted.sub("", text))


@dataclass(frozen=True)
class DocEntry:
    """One docstring of a module: the material for the multiple-choice tasks."""

    module: str
    qualname: str  # "" for the module docstring
    kind: str  # "module" | "class" | "function" | "method" | "topic"
    doc: str


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
                    out.append(
                        (
                            DocEntry(module, qual, "class", doc),
                            f"## class {qual}" + (f"({bases})" if bases else ""),
                        )
                    )
                visit(node.body, qual + ".", True)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    qual = prefix + node.name
                    level = "###" if in_class else "##"
                    kind = "method" if in_class else "function"
                    out.append(
                        (DocEntry(module, qual, kind, doc), f"{level} {qual}{_signature(node)}")
                    )

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
        letters = count_chars(_NOT_LETTER, text)
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


def html_text(document: str) -> str:
    """The text of an HTML document, one blank line between blocks (no scripts or styles)."""
    parser = _HTMLText()
    parser.feed(document)
    return re.sub(r"\n\s*\n+", "\n\n", "".join(parser.parts)).strip() + "\n"


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
        if not text or any(s in text for s in _NOT_PROSE):
            continue
        if count_chars(_NOT_LETTER, text) + text.count(" ") >= 0.85 * len(text):
            yield text
