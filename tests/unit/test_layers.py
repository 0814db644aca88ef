"""The dependency rule of the README's layout section, read from the source with ``ast``.

Every import counts, those inside functions too: a lazy import may keep ``--help`` fast, but it
may not reach a layer the module must not know, and the package's modules must not form a cycle
(the usual reason to hide an import in a function).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.layers import (
    LAYER_RULES,
    PACKAGE_ROOT,
    ImportEdge,
    import_cycles,
    import_edges,
    layer_of,
    modules,
    violations,
)


def test_every_module_has_a_layer():
    assert [module for module in modules(PACKAGE_ROOT) if layer_of(module) is None] == []


def test_imports_follow_the_dependency_rule():
    assert violations(import_edges(PACKAGE_ROOT)) == []


def test_the_package_has_no_import_cycle():
    assert import_cycles(import_edges(PACKAGE_ROOT)) == []


def test_a_store_adapter_importing_an_agent_breaks_the_rule(tmp_path: Path):
    """The rule is live: the same check on a copy of the package with one bad import fails."""
    copy = tmp_path / "marketing_agents"
    for source in PACKAGE_ROOT.rglob("*.py"):
        target = copy / source.relative_to(PACKAGE_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source.read_text())
    adapter = copy / "stores" / "postgres_campaigns.py"
    adapter.write_text(adapter.read_text() + "\nfrom marketing_agents.actors.triage import TriageAgent\n")
    found = violations(import_edges(copy))
    assert [(edge.source, edge.target) for edge in found] == [
        ("marketing_agents.stores.postgres_campaigns", "marketing_agents.actors.triage")]


def test_an_import_hidden_in_a_function_still_counts(tmp_path: Path):
    module = tmp_path / "marketing_agents" / "domain" / "sneaky.py"
    module.parent.mkdir(parents=True)
    module.write_text("def f():\n    from marketing_agents.stores.postgres import LeadRepository\n")
    (tmp_path / "marketing_agents" / "__init__.py").write_text("")
    assert [edge.target for edge in violations(import_edges(tmp_path / "marketing_agents"))] == [
        "marketing_agents.stores.postgres"]


@pytest.mark.parametrize("layer", sorted(LAYER_RULES))
def test_every_layer_exists(layer: str):
    assert any(layer_of(module) == layer for module in modules(PACKAGE_ROOT)), layer


def test_edges_resolve_relative_imports(tmp_path: Path):
    package = tmp_path / "marketing_agents"
    (package / "stores").mkdir(parents=True)
    (package / "actors").mkdir()
    for module in ("__init__.py", "actors/__init__.py", "actors/triage.py"):
        (package / module).write_text("")
    (package / "stores" / "__init__.py").write_text("from .postgres import X\n")
    (package / "stores" / "postgres.py").write_text("from ..actors import triage\n")
    edges = {(edge.source, edge.target) for edge in import_edges(package)}
    assert ("marketing_agents.stores", "marketing_agents.stores.postgres") in edges
    assert ("marketing_agents.stores.postgres", "marketing_agents.actors.triage") in edges
    assert all(isinstance(edge, ImportEdge) for edge in import_edges(package))
