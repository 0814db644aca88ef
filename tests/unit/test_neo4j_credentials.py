"""Neo4j's login from the settings or the URI's userinfo (issue 14, item 13): pure parsing, no server."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from marketing_agents.errors import ConfigError
from marketing_agents.settings import Settings
from marketing_agents.stores.connections import redact
from marketing_agents.stores.neo4j_graph import Neo4jGraphStore, credentials, split_credentials


def settings(**values) -> Settings:
    return Settings(**{"neo4j_user": None, "neo4j_password": None, **values})


def test_the_uris_userinfo_is_the_login_and_leaves_the_uri():
    assert credentials(settings(neo4j_uri="neo4j://bob:s3cr%40t@graph.internal:7687")) == (
        "neo4j://graph.internal:7687", ("bob", "s3cr@t"))
    assert split_credentials("neo4j+s://graph.internal") == ("neo4j+s://graph.internal", None, None)


def test_the_settings_login_wins_over_the_uris():
    found = credentials(settings(neo4j_uri="bolt://bob:old@graph:7687", neo4j_user="alice",
                                 neo4j_password=SecretStr("new")))
    assert found == ("bolt://graph:7687", ("alice", "new"))
    assert credentials(settings(neo4j_uri="bolt://graph:7687", neo4j_user="neo4j",
                                neo4j_password=SecretStr("pw"))) == ("bolt://graph:7687", ("neo4j", "pw"))


def test_no_user_is_a_server_without_auth_and_a_user_needs_a_password():
    assert credentials(settings(neo4j_uri="bolt://127.0.0.1:7687")) == ("bolt://127.0.0.1:7687", None)
    with pytest.raises(ConfigError, match="MAS_NEO4J_PASSWORD") as missing:
        credentials(settings(neo4j_uri="bolt://127.0.0.1:7687", neo4j_user="neo4j"))
    assert missing.value.details == {"field": "neo4j_password"}


def test_the_driver_gets_the_pool_size_and_the_password_is_never_shown():
    store = Neo4jGraphStore.from_settings(settings(neo4j_uri="neo4j://bob:hunter2@graph.internal:7687",
                                                   neo4j_pool_size=7, graph_query_timeout_s=1.5))
    assert store._timeout_s == 1.5
    assert "hunter2" not in redact("neo4j://bob:hunter2@graph.internal:7687")
    with pytest.raises(ConfigError) as refused:  # the driver's own error would repeat the URI, password included
        Neo4jGraphStore.connect("neo4j://graph internal:hunter2@:x")
    assert "hunter2" not in str(refused.value)
