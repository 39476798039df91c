"""The evaluation files, made from held-out material only: hellaswag and arc_easy records in the
hub schemas lm-eval reads, and wikitext-style pages for perplexity on text the model never saw.

About 10% of library modules and reference topics are held out from both the text and the code
(`documents.is_held_out`); an item whose sentences also occur in the material that was kept
(vendored copies, say) is dropped, so the tasks test generalisation, not recall. At most
`MAX_ITEMS_PER_MODULE` items come from one module, so a few large ones do not make up a task.
"""

from __future__ import annotations

import random
import re

from tinyllama_cli.data.sample_corpus.library import Library
from tinyllama_cli.data.sample_corpus.prose import (
    DocEntry,
    module_page,
    normalize,
    prose_paragraphs,
    sentences,
)
from tinyllama_cli.data.sample_corpus.stdlib import module_name

MAX_HELLASWAG = 1000
MAX_ARC = 500
MAX_ITEMS_PER_MODULE = 16  # so a few large modules do not make up a whole task
HELD_OUT_TEXT_CHARS = 200_000  # ~50k tokens: a perplexity figure in seconds on a CPU

Question = tuple[str, str, list[str]]  # (question, answer, wrong answers to draw from)


def material(lib: Library) -> tuple[list[DocEntry], list[DocEntry]]:
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


def seen_sentences(kept: list[DocEntry]) -> set[str]:
    """Every sentence of the kept material: an item quoting one of them is dropped."""
    return {s for e in kept for para in re.split(r"\n\s*\n", e.doc) for s in sentences(para)}


# --- hellaswag ----------------------------------------------------------------------------------


def _hellaswag_pairs(held: list[DocEntry], seen: set[str]) -> list[tuple[DocEntry, str, str]]:
    """(entry, context, true ending): the opening one or two sentences of a held-out prose
    paragraph and the sentence after them, none of them seen in the kept material."""
    found, pairs, per_module = [], set(), {}
    for e in held:
        for para in prose_paragraphs(e.doc):
            sents = sentences(para)
            for i in range(1, min(len(sents), 3)):  # (s0 -> s1) and (s0 s1 -> s2)
                context, ending = " ".join(sents[:i]), sents[i]
                if (
                    any(s in seen for s in sents[: i + 1])
                    or (context, ending) in pairs
                    or per_module.get(e.module, 0) >= MAX_ITEMS_PER_MODULE
                ):
                    continue
                if len(context) >= 25 and 20 <= len(ending) <= 200 and ending.endswith("."):
                    found.append((e, context, ending))
                    pairs.add((context, ending))
                    per_module[e.module] = per_module.get(e.module, 0) + 1
    return found


def _hellaswag_record(
    index: int, e: DocEntry, context: str, endings: list[str], label: int
) -> dict:
    topic = e.kind == "topic"
    return {
        "ind": index,
        "activity_label": e.qualname if topic else ".".join(p for p in (e.module, e.qualname) if p),
        "ctx_a": context,
        "ctx_b": "",
        "ctx": context,
        "endings": endings,
        "source_id": e.module if topic else f"{e.module}:{e.qualname}",
        "split": "val",
        "split_type": "indomain",
        "label": str(label),
    }


def hellaswag_items(held: list[DocEntry], seen: set[str], seed: int) -> list[dict]:
    """Rowan/hellaswag validation records: context = the opening sentence of a held-out
    paragraph, the true ending = its next sentence, three distractors = next sentences of
    similar length from other modules."""
    found = _hellaswag_pairs(held, seen)
    modules_of: dict[str, set[str]] = {}
    for e, _, ending in found:
        modules_of.setdefault(ending, set()).add(e.module)
    by_length = sorted(modules_of, key=lambda x: (len(x), x))
    items = []
    for e, context, ending in found[:MAX_HELLASWAG]:
        rng = random.Random(f"{seed}:hellaswag:{e.module}:{e.qualname}:{context}")
        near = sorted(
            (x for x in by_length if e.module not in modules_of[x]),
            key=lambda x: (abs(len(x) - len(ending)), x),
        )[:12]
        if len(near) < 3:
            continue
        choices = rng.sample(near, 3)
        label = rng.randrange(4)
        choices.insert(label, ending)
        items.append(_hellaswag_record(len(items), e, context, choices, label))
    return items


# --- arc_easy -----------------------------------------------------------------------------------


def _public(qualname: str) -> bool:
    return bool(qualname) and not qualname.split(".")[-1].startswith("_")


def _name(e: DocEntry) -> str:
    return e.qualname.split(".")[-1]


def _is_public_callable(e: DocEntry) -> bool:
    return e.kind in ("function", "method") and _public(e.qualname)


def _summary(doc: str) -> str:
    """The first sentence of a docstring's first prose paragraph ("" when there is none)."""
    para = next(prose_paragraphs(doc), "")
    return sentences(para)[0] if para else ""


def _module_question(module: str, summary: str, modules: list[str]) -> Question | None:
    if module.split(".")[-1].lower() in summary.lower():
        return None  # the name would give the answer away
    return (
        f'Which Python module is described as "{summary}"?',
        module,
        [m for m in modules if m != module],
    )


def _function_question(
    e: DocEntry, summary: str, siblings: list[DocEntry], all_names: list[str]
) -> Question:
    """Which function or method does this; the wrong answers are public callables of the same
    class, else of the same module, else of any held-out module."""
    owner = e.qualname.rpartition(".")[0]
    what = (
        f"method of the class {e.module}.{owner}" if owner else f"function of the module {e.module}"
    )
    answer = _name(e)
    same_class = {
        _name(x)
        for x in siblings
        if x.kind == e.kind and _public(x.qualname) and x.qualname.rpartition(".")[0] == owner
    }
    same_module = {_name(x) for x in siblings if _is_public_callable(x)}
    pool = next(
        (sorted(p - {answer}) for p in (same_class, same_module) if len(p - {answer}) >= 3),
        [n for n in all_names if n != answer],
    )
    return f'Which {what} does this: "{summary}"?', answer, pool


def _arc_record(index: int, question: Question, rng: random.Random) -> dict:
    text, answer, pool = question
    choices = rng.sample(pool, 3)
    key = rng.randrange(4)
    choices.insert(key, answer)
    return {
        "id": f"Stdlib_{index:05d}",
        "question": text,
        "choices": {"text": choices, "label": list("ABCD")},
        "answerKey": "ABCD"[key],
    }


def arc_items(held: list[DocEntry], seen: set[str], seed: int) -> list[dict]:
    """allenai/ai2_arc records: which held-out module, function or method a docstring's first
    sentence describes; the wrong answers are its siblings (same class, else same module)."""
    by_module: dict[str, list[DocEntry]] = {}
    for e in held:
        if e.kind != "topic":
            by_module.setdefault(e.module, []).append(e)
    modules = sorted(m for m in by_module if not m.split(".")[-1].startswith("_"))
    all_names = sorted(
        {_name(e) for es in by_module.values() for e in es if _is_public_callable(e)}
    )
    items = []
    for module in modules:
        count = 0
        for e in by_module[module]:
            summary = _summary(e.doc)
            if count >= MAX_ITEMS_PER_MODULE or not 15 <= len(summary) <= 200 or summary in seen:
                continue
            if e.kind == "module":
                question = _module_question(module, summary, modules)
            elif _is_public_callable(e):
                question = _function_question(e, summary, by_module[module], all_names)
            else:
                continue
            if question is None or len(question[2]) < 3:
                continue
            items.append(
                _arc_record(
                    len(items), question, random.Random(f"{seed}:arc:{module}:{e.qualname}")
                )
            )
            count += 1
            if len(items) >= MAX_ARC:
                return items
    return items


# --- wikitext -----------------------------------------------------------------------------------


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
