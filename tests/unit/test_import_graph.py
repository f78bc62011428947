"""Our import graph, read from the source (AST): no cycles, at two granularities.

- Packages (`handlers`, `payments`, …): every import counts, wherever it is written (module top,
  inside a function, under `if TYPE_CHECKING:`), since each is a dependency of one package on
  another. The graph between packages must have no cycle (`handlers` → `payments`, never back).
- Modules: the imports that run when a module is imported (its top level and class bodies, not
  function bodies nor `if TYPE_CHECKING:` blocks). `from pkg import name` points at the module
  `pkg.name` when there is one, else at `pkg` (its `__init__`). Importing `pkg.sub` runs
  `pkg/__init__.py` first, so it is an edge to `pkg` too, unless `pkg` encloses the importing
  module (then it is already being imported: a package's `__init__` re-exporting its own
  submodules is no cycle). This is what makes `import payments` fail when `payments._service`
  imports `handlers.messages` and `handlers/__init__` imports, through the conversations,
  `payments` again.

`core/migrations/` is left out: alembic loads `env.py` and the revisions by file path when it
migrates, and `env.py` imports every package's `tables` to collect the schema; no module imports
them.
"""

from __future__ import annotations

import ast
import functools
import importlib
from collections.abc import Iterator, Mapping, Set
from pathlib import Path

import handlers
import payments
import storage

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "core", "generation", "handlers", "payments", "providers", "storage",
            "wallet", "webhooks")
SKIPPED = (ROOT / "core" / "migrations",)

Graph = Mapping[str, Set[str]]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def _sources() -> dict[str, tuple[Path, ast.Module]]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if any(path.is_relative_to(skip) for skip in SKIPPED):
                continue
            found[_module_name(path)] = (path, ast.parse(path.read_bytes(), str(path)))
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.Module, *, at_import_time: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements of a module; with `at_import_time`, only those that run when it is
    imported."""
    if at_import_time:
        yield from _eager(tree.body)
    else:
        yield from (n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom))


def _eager(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue  # runs when called
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _eager(node.orelse)  # the body runs for the type checker only
        else:  # class bodies, if/try/with/for blocks, except handlers, match cases
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    yield from _eager([child])
                elif isinstance(child, ast.ExceptHandler | ast.match_case):
                    yield from _eager(child.body)


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom,
             known: Set[str]) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        source = ".".join([*base, *([node.module] if node.module else [])])
    else:
        source = node.module or ""
    for alias in node.names:
        sub = f"{source}.{alias.name}"
        yield sub if sub in known else source


def _ours(name: str, known: Set[str]) -> str | None:
    """The module of ours that `name` imports (its nearest known ancestor), or None."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def module_graph(*, at_import_time: bool) -> dict[str, set[str]]:
    sources = _sources()
    known = set(sources)
    graph: dict[str, set[str]] = {name: set() for name in sources}
    for name, (path, tree) in sources.items():
        is_package = path.name == "__init__.py"
        enclosing = _ancestors(name) | ({name} if is_package else set())
        for node in _imports(tree, at_import_time=at_import_time):
            for target in _targets(name, is_package, node, known):
                ours = _ours(target, known)
                if ours is not None:
                    graph[name] |= ({ours} | (_ancestors(ours) & known)) - enclosing - {name}
    return graph


def _ancestors(module: str) -> set[str]:
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {p: set() for p in PACKAGES}
    for name, targets in module_graph(at_import_time=False).items():
        top = name.split(".")[0]
        graph[top] |= {t.split(".")[0] for t in targets} - {top}
    return graph


def find_cycle(graph: Graph) -> list[str] | None:
    """One cycle of `graph` as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)) is not None:
            return found
    return None


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_every_kind_of_import() -> None:
    """The reader is not blind: edges we know exist are found, and deferred ones are told
    apart from those that run at import time."""
    eager, every = module_graph(at_import_time=True), module_graph(at_import_time=False)
    assert "payments" in eager["handlers.errors"]  # `from payments import (...)`
    assert "handlers.types" in eager["handlers.topup"]  # `from .types import ...`
    assert "payments._stripe" not in eager["payments._service"]  # inside a method
    assert "payments._stripe" in every["payments._service"]
    assert "handlers.service" not in eager["handlers"]  # lazy re-exports (TYPE_CHECKING)
    assert "handlers.service" in every["handlers"]
    assert "providers" in every["core.config"]  # the registry, read when Secrets are made


def test_no_cycle_between_packages() -> None:
    graph = package_graph()
    assert "payments" in graph["handlers"]
    assert find_cycle(graph) is None, " → ".join(find_cycle(graph) or ())


def test_no_cycle_between_modules_at_import_time() -> None:
    graph = module_graph(at_import_time=True)
    assert find_cycle(graph) is None, " → ".join(find_cycle(graph) or ())


def test_the_leaves_import_nothing_of_ours() -> None:
    """The chat's types and the message catalogue: what every adapter and service may import."""
    every = module_graph(at_import_time=False)
    assert every["handlers.types"] == set()
    assert every["handlers.messages_en"] == set()
    assert every["handlers.messages_zh"] == set()
    assert every["handlers.messages"] == {"handlers.messages_en", "handlers.messages_zh"}
    assert every["payments._types"] == set()


def test_every_name_a_lazy_package_exports_resolves() -> None:
    """`handlers`, `payments` and `storage` load names on first use: each listed one exists."""
    for package in (handlers, payments, storage):
        for name in package.__all__:
            assert getattr(package, name) is not None, f"{package.__name__}.{name}"
    assert handlers.Handlers is importlib.import_module("handlers.service").Handlers
    assert payments.StarsInvoice is importlib.import_module("payments._types").StarsInvoice
    assert storage.S3Storage is importlib.import_module("storage.s3").S3Storage
