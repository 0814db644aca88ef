"""The Serve config file that `serve deploy`, `serve run`, `make run` and the RayService all use.

It must validate against Serve's own schema, name every deployment the app builds, and give each one
what production needs: autoscaling (or a fixed count for the singletons that run schedules), a
bounded queue that answers 503 with Retry-After when full, health checks and a graceful shutdown.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

CONFIG = Path(__file__).resolve().parents[2] / "ray_configs" / "serve_config.yaml"
# Deployments that run a schedule (dispatching, consolidating): one replica, not autoscaled.
SINGLETONS = {"MemoryConsolidator", "TouchpointDispatcher"}


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load(CONFIG.read_text())


@pytest.fixture(scope="module")
def deployments(config) -> dict[str, dict]:
    (app,) = config["applications"]
    return {d["name"]: d for d in app["deployments"]}


def test_the_file_validates_against_serves_schema(config):
    ServeDeploySchema.model_validate(config)


def test_every_deployment_the_app_builds_is_configured(deployments):
    from marketing_agents.serve_app.app import build_app

    built, stack = set(), [build_app()]
    while stack:  # walk the bound application graph
        node = stack.pop()
        built.add(node._bound_deployment.name)
        stack += [a for a in (*node._bound_deployment.init_args, *node._bound_deployment.init_kwargs.values())
                  if hasattr(a, "_bound_deployment")]
    assert built == set(deployments)


NAMES = sorted(d["name"] for d in yaml.safe_load(CONFIG.read_text())["applications"][0]["deployments"])


@pytest.mark.parametrize("name", NAMES)
def test_each_deployment_is_bounded_autoscaled_checked_and_drains(name, deployments):
    d = deployments[name]
    if name in SINGLETONS:
        assert d["num_replicas"] == 1 and "autoscaling_config" not in d
    else:
        scaling = d["autoscaling_config"]
        assert 1 <= scaling["min_replicas"] <= scaling["initial_replicas"] <= scaling["max_replicas"]
        assert scaling["target_ongoing_requests"] > 0
        assert scaling["upscale_delay_s"] < scaling["downscale_delay_s"], "scale up fast, down slowly"
    assert d["max_ongoing_requests"] > 0
    assert d["max_queued_requests"] > 0, "a bounded queue: back-pressure instead of unbounded latency"
    assert d["backpressure_config"] == {"status_code": 503, "retry_after_s": d["backpressure_config"]["retry_after_s"]}
    assert d["backpressure_config"]["retry_after_s"] >= 1
    assert d["health_check_period_s"] > 0 and d["health_check_timeout_s"] > d["health_check_period_s"]
    assert d["graceful_shutdown_timeout_s"] >= d.get("graceful_shutdown_wait_loop_s", 2)
    assert 0 < d["ray_actor_options"]["num_cpus"] <= 0.5, "local values fit a 2-core machine"
