"""PostgreSQL connections: every process's pool at once must fit the server, at the most replicas."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from marketing_agents.cluster_manifests import serve_config_v2
from marketing_agents.memory.tier_actors import TIER_NAMES
from marketing_agents.settings import Settings
from marketing_agents.stores.connection_budget import (
    EMBEDDED_MAX_CONNECTIONS,
    budgeted,
    connections_needed,
    pool_size,
)

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


@pytest.fixture(scope="module")
def local_config() -> dict:
    return yaml.safe_load((ROOT / "ray_configs" / "serve_config.yaml").read_text())


def test_every_deployment_and_tier_has_a_pool_size(local_config):
    (app,) = local_config["applications"]
    for name in [d["name"] for d in app["deployments"]] + [f"memory-{tier}" for tier in TIER_NAMES]:
        assert pool_size(name) >= 0


def test_the_local_cluster_at_its_largest_fits_the_embedded_server(local_config):
    assert connections_needed(local_config) <= EMBEDDED_MAX_CONNECTIONS
    assert f"needs {connections_needed(local_config)} connections locally" in " ".join(README.split())


def test_the_readme_names_what_production_needs_from_postgres():
    """An operator sizing an external PostgreSQL reads the figure for the production replica bounds."""
    assert f"max_connections of at least {connections_needed(serve_config_v2())}" in " ".join(README.split())


def test_the_pool_setting_caps_every_budget():
    assert budgeted(Settings(postgres_pool_size=50), "LeadOrchestrator").postgres_pool_size == pool_size(
        "LeadOrchestrator")
    assert budgeted(Settings(postgres_pool_size=3), "LeadOrchestrator").postgres_pool_size == 3


def test_an_unknown_owner_is_refused_by_name():
    with pytest.raises(ValueError, match="no PostgreSQL pool size for 'Mystery'"):
        pool_size("Mystery")
