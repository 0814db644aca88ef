"""Job titles to the knowledge graph's personas: the key a recall asks the graph with."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from marketing_agents.domain.persona import PERSONA_RULES, persona_of


@pytest.mark.parametrize(("title", "persona"), [
    ("VP Marketing", "cmo"), ("Chief Marketing Officer", "cmo"), ("Head of Marketing", "cmo"),
    ("Marketing Manager", "marketing_manager"), ("Senior Marketing Specialist", "marketing_manager"),
    ("CTO", "cto"), ("VP of Engineering", "cto"), ("CFO", "cfo"), ("Financial Controller", "cfo"),
    ("VP Sales", "head_of_sales"), ("Chief Revenue Officer", "head_of_sales"),
    ("IT Manager", "it_manager"), ("CIO", "it_manager"),
    ("Software Engineer", None), ("Designer", None), ("", None), (None, None),
])
def test_a_title_maps_to_the_persona_that_holds_it(title, persona):
    assert persona_of(title) == persona


def test_every_persona_is_a_node_of_the_starter_graph():
    graph = json.loads(resources.files("marketing_agents.memory").joinpath("data/starter_graph.json").read_text())
    personas = {node["id"] for node in graph["nodes"] if node["kind"] == "persona"}
    assert {f"persona:{key}" for key, _ in PERSONA_RULES} == personas
