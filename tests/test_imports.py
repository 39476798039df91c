"""The package imports in one direction (docs/architecture.md, "Layers"): no cycles between its
modules, lazy imports inside functions included, and no module imports a layer above its own.

The graph is read from the source with `ast`, not by importing: a cycle hidden by a lazy import
(`load` -> `convert.hf` -> ... -> `load`) never fails at import time, only when someone moves
the import to the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "tinyllama_cli"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

# Top to bottom. A module may import its own layer or any layer below it, never one above.
# Entries are module names or packages (a trailing "." takes everything under it).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("entry point", ("__main__",)),
    ("CLI", ("cli", "cli_flags", "display")),
    ("commands", ("train.", "data.", "convert.", "eval.", "generate", "plan", "plot", "average")),
    ("finding and loading a model", ("load",)),
    ("formats and the run-dir format", ("formats.", "rundir")),
    (
        "model, config and helpers",
        (
            "model",
            "decode_step",
            "sampling",
            "speculative",
            "config",
            "tokenizer",
            "dtypes",
            "devices",
            "hardware",
            "files",
            "errors",
            "units",
            "__init__",
        ),
    ),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """`tinyllama_cli.a.b` -> "a.b" (a package -> its __init__), None outside the package."""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    inner = name[len(PACKAGE) + 1 :]
    if inner in modules:
        return inner
    package_init = f"{inner}.__init__" if inner else "__init__"
    return package_init if package_init in modules else None


def _absolute(node: ast.ImportFrom, module: str) -> str:
    """The absolute module name a `from ... import` reads from (relative ones resolved)."""
    if not node.level:
        return node.module or ""
    parts = module.split(".")[:-1]  # the importing module's package ("a.b" -> a; "a.__init__" -> a)
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join([PACKAGE, *parts, *([node.module] if node.module else [])])


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every package module `module` imports, at the top or inside a function.

    `from tinyllama_cli.x import y` counts as importing module x.y when y is a module, else x.
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [_resolve(alias.name, modules) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module)
            targets = [
                _resolve(f"{base}.{alias.name}", modules) or _resolve(base, modules)
                for alias in node.names
            ]
        else:
            continue
        found.update(t for t in targets if t is not None)
    found.discard(module)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {m: imports_of(m, p, modules) for m, p in modules.items()}


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The same graph between the top-level units: a subpackage (`convert`, `train`, ...) is one
    node, so `load` -> `convert.hf` with `convert.api` -> `load` is the cycle `load` <-> `convert`.
    Importing `convert.hf` runs `convert/__init__.py` first, so such a pair is one re-export in
    that __init__ away from a real circular import."""

    def unit(module: str) -> str:
        return module.split(".", 1)[0]

    units: dict[str, set[str]] = {}
    for module, deps in graph.items():
        here = unit(module)
        units.setdefault(here, set()).update(unit(d) for d in deps if unit(d) != here)
    return units


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (depth-first search with colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def layer_of(module: str) -> int:
    for rank, (_, members) in enumerate(LAYERS):
        for member in members:
            if module == member or (member.endswith(".") and module.startswith(member)):
                return rank
    raise AssertionError(f"{module} is in no layer; add it to LAYERS in {__file__}")


def test_the_graph_is_read_from_the_source():
    graph = import_graph()
    assert "load" in graph["convert.api"] and "model" in graph["load"]
    assert "formats.hf" in graph["eval.run"]  # a lazy import, inside build_lm
    assert "train.checkpoint" in graph["train.loop"]  # from tinyllama_cli.train import checkpoint


def test_find_cycle_reports_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    # The cycle this test was written for: load -> convert.hf, convert.api -> load.
    modules = {
        "load": {"convert.hf"},
        "convert.hf": {"config"},
        "convert.api": {"load"},
        "config": set(),
    }
    assert find_cycle(modules) is None
    assert find_cycle(package_graph(modules)) == ["convert", "load", "convert"]


def test_no_import_cycles_lazy_imports_included():
    graph = import_graph()
    for name, g in (("modules", graph), ("packages", package_graph(graph))):
        cycle = find_cycle(g)
        assert cycle is None, f"import cycle between {name}: " + " -> ".join(cycle)


def test_every_import_goes_to_the_same_layer_or_below():
    upward = [
        f"{m} ({LAYERS[layer_of(m)][0]}) imports {d} ({LAYERS[layer_of(d)][0]})"
        for m, deps in sorted(import_graph().items())
        for d in sorted(deps)
        if layer_of(d) < layer_of(m)
    ]
    assert not upward, "imports against the layers:\n" + "\n".join(upward)


def test_the_rules_design_md_states():
    """model/config never import train/data/eval/convert/generate/cli; formats never import
    convert/train/eval; nothing but the entry point imports cli."""
    graph = import_graph()
    commands = ("train.", "data.", "eval.", "convert.", "generate", "cli", "display")

    def hits(module: str, banned: tuple[str, ...]) -> list[str]:
        return [d for d in graph[module] if any(d == b or d.startswith(b) for b in banned)]

    for module in ("model", "config"):
        assert not hits(module, commands), module
    for module in (m for m in graph if m.startswith("formats.")):
        banned = ("convert.", "train.", "eval.")
        assert not hits(module, banned), module
    assert [m for m, deps in graph.items() if "cli" in deps] == ["__main__"]
