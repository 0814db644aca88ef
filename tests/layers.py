"""The package's dependency rule as data, and a reader of its imports that never imports it.

The rule (drawn in the README's layout section), lowest layer first; a layer may import itself and
what its entry names::

    errors, settings, metrics        the base: nothing of the package (settings: errors)
    domain                           errors
    stores                           domain, errors, settings
    memory                           stores, domain, errors, settings, metrics
    scoring_models                   domain, errors, settings
    actors                           scoring_models, domain, errors, settings
    flows                            actors, scoring_models, memory, stores, domain, base
    interfaces                       anything: serve_app, mcp, jobs, cli, launcher, ...
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "marketing_agents"
PACKAGE_ROOT = Path(__file__).resolve().parent.parent / PACKAGE

BASE = frozenset({"errors", "settings", "metrics"})
LAYER_RULES: dict[str, frozenset[str]] = {
    "errors": frozenset(),
    "settings": frozenset({"errors"}),
    "metrics": frozenset(),
    "domain": frozenset({"errors"}),
    "stores": frozenset({"domain", "errors", "settings"}),
    "memory": frozenset({"stores", "domain"}) | BASE,
    "scoring_models": frozenset({"domain", "errors", "settings"}),
    "actors": frozenset({"scoring_models", "domain", "errors", "settings"}),
    "flows": frozenset({"actors", "scoring_models", "memory", "stores", "domain"}) | BASE,
    "interfaces": frozenset({"flows", "actors", "scoring_models", "memory", "stores", "domain"}) | BASE,
}
# Top-level modules and folders that face users or operators: the interface layer.
INTERFACES = frozenset({"serve_app", "mcp", "jobs", "cli", "cli_args", "scoring_cli", "launcher", "demo",
                        "sinks", "cluster_manifests"})


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    if len(parts) == 1:
        return "interfaces"  # the package itself: its version, nothing else
    head = parts[1]
    if head in LAYER_RULES and head != "interfaces":
        return head
    return "interfaces" if head in INTERFACES else None


@dataclass(frozen=True)
class ImportEdge:
    source: str
    target: str
    line: int
    in_function: bool


def _module_name(path: Path, root: Path) -> str:
    parts = [PACKAGE, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path) -> dict[str, Path]:
    """Every module of the package under ``root``, by dotted name."""
    return {_module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_edges(root: Path) -> list[ImportEdge]:
    """Every import of a package module by a package module, with ``from pkg import submodule``
    resolved to the submodule."""
    package = modules(root)
    edges: list[ImportEdge] = []
    for module, path in package.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node, in_function in _imports(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = _absolute(module, path.name == "__init__.py", node)
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in package else base
                           for alias in node.names]
            for target in dict.fromkeys(targets):
                if target.split(".")[0] == PACKAGE and target != module:
                    edges.append(ImportEdge(module, target, node.lineno, in_function))
    return edges


def _imports(tree: ast.AST, in_function: bool = False):
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, in_function
        else:
            yield from _imports(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))


def violations(edges: list[ImportEdge]) -> list[ImportEdge]:
    """The imports that reach a layer their module's layer may not import."""
    bad = []
    for edge in edges:
        source, target = layer_of(edge.source), layer_of(edge.target)
        if source is None or target is None or source == target:
            continue
        if target not in LAYER_RULES[source]:
            bad.append(edge)
    return bad


def import_cycles(edges: list[ImportEdge]) -> list[list[str]]:
    """Groups of modules that import each other, directly or around a loop (Tarjan's SCCs)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for edge in edges:
        graph[edge.source].add(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(cycles)
