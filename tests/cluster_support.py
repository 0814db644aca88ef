"""A Ray cluster of several nodes on this machine, with the Serve app deployed across them (tests only).

``ray.cluster_utils.Cluster`` starts a head node and worker nodes as separate raylets on this host; each
node is a real Ray node (its own raylet, object store and worker processes) and ``remove_node`` kills
all of a node's processes, as a machine failing would. The app is ``build_app`` itself, with each
deployment's settings from ray_configs/serve_config.yaml and only what the test must control changed:
the replica count (fixed instead of autoscaled, so that "back to target" is one number) and a custom
resource that says which nodes a deployment may use.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import ray
import yaml
from ray import serve
from ray.cluster_utils import Cluster
from ray.serve.schema import ServeInstanceDetails

from marketing_agents.serve_app import app as app_module
from marketing_agents.serve_app.status import APP_NAME

REPO = Path(__file__).resolve().parents[1]
SERVE_CONFIG = REPO / "ray_configs" / "serve_config.yaml"

# Faster than Ray's defaults (a 3 s period, 5 failures) at noticing a dead raylet, no quicker to give up
# on a slow one: a busy node still has 3 x 10 s to answer before it is declared dead.
FAST_NODE_FAILURE_DETECTION = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 1000,
    "health_check_failure_threshold": 3,
}


@dataclass(frozen=True)
class Replica:
    deployment: str
    replica_id: str
    node_id: str
    state: str


def serve_config() -> dict[str, Any]:
    return yaml.safe_load(SERVE_CONFIG.read_text())


def deployment_options(config: dict[str, Any], replicas: int, node_resource: str,
                       **overrides: Any) -> dict[str, Any]:
    """``Deployment.options(...)`` from one deployment's entry in the Serve config file, with a fixed
    replica count and a small demand for ``node_resource`` (only the nodes that have it can host it)."""
    options = {k: v for k, v in config.items() if k not in ("name", "autoscaling_config", "num_replicas")}
    actor_options = dict(options.get("ray_actor_options") or {})
    actor_options["resources"] = {**(actor_options.get("resources") or {}), node_resource: 0.001}
    return {**options, "ray_actor_options": actor_options, "num_replicas": replicas, **overrides}


class LocalCluster:
    """A head and ``len(worker_resources)`` worker nodes on this host; the driver is connected to it."""

    def __init__(self, env_vars: dict[str, str], head_resources: dict[str, float],
                 worker_resources: Iterable[dict[str, float]], head_cpus: float = 1, worker_cpus: float = 2,
                 namespace: str = "mas-multi-node") -> None:
        self.env_vars = env_vars
        self.head_resources = head_resources
        self.worker_resources = list(worker_resources)
        self.head_cpus = head_cpus
        self.worker_cpus = worker_cpus
        self.namespace = namespace
        self.cluster: Cluster | None = None
        self.workers: dict[str, ray._private.node.Node] = {}  # node id -> node
        self.dead: set[str] = set()

    @property
    def head_node_id(self) -> str:
        return self.cluster.head_node.node_id

    def start(self) -> None:
        """Call it from the main thread: Ray's nodes install signal handlers."""
        # Nodes inherit this process's environment: no store address or Ray address of another run may
        # leak into them (the replicas get theirs from the job's runtime_env below). Nor is this cluster
        # written to /tmp/ray/ray_current_cluster, where a plain `ray.init()` elsewhere on the machine
        # (another test run's batch job, say) would find it and join it.
        inherited = [k for k in os.environ if k.startswith("MAS_") or k == "RAY_ADDRESS"]
        with mock.patch.dict(os.environ), mock.patch("ray._private.utils.write_ray_address"):
            for name in inherited:
                del os.environ[name]
            self.cluster = Cluster(initialize_head=True, head_node_args={
                "num_cpus": self.head_cpus, "resources": self.head_resources, "include_dashboard": False,
                "dashboard_agent_listen_port": None, "_system_config": FAST_NODE_FAILURE_DETECTION})
            for resources in self.worker_resources:
                node = self.cluster.add_node(num_cpus=self.worker_cpus, resources=resources,
                                             dashboard_agent_listen_port=None)
                self.workers[node.node_id] = node
            self.cluster.wait_for_nodes()
            ray.init(address=self.cluster.address, namespace=self.namespace, log_to_driver=False,
                     runtime_env={"env_vars": self.env_vars})

    def deploy(self, http_port: int, options_by_deployment: dict[str, dict[str, Any]],
               timeout_s: float = 300) -> None:
        """``build_app`` with each deployment's ``.options(...)`` replaced, HTTP on the head only.

        Waits (up to ``timeout_s``) until the application is RUNNING and the head's proxy serves it.
        """
        http_options = {**(serve_config().get("http_options") or {}), "host": "127.0.0.1", "port": http_port}
        # Every node here shares one host, so one proxy (on the head) is all that can listen on the port.
        serve.start(proxy_location="HeadOnly", http_options=http_options)
        with _deployments_with(options_by_deployment):
            application = app_module.build_app({})
        done: list[BaseException | None] = []

        def run() -> None:
            try:
                serve.run(application, name=APP_NAME, route_prefix="/")
                done.append(None)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                done.append(exc)

        thread = threading.Thread(target=run, name="serve-run", daemon=True)
        thread.start()
        thread.join(timeout_s)
        if not done:
            raise TimeoutError(f"the Serve app was not running within {timeout_s:.0f} s: {serve.status()}")
        if done[0] is not None:
            raise done[0]

    def replicas(self) -> list[Replica]:
        """Every replica of the app that Serve knows of, with the node it runs on (Serve's own details,
        which `serve status -v` and the dashboard show)."""
        details = ServeInstanceDetails(**serve.context._get_global_client().get_serve_details())
        app = details.applications.get(APP_NAME)
        if app is None:
            return []
        return [Replica(name, r.replica_id, r.node_id or "", str(getattr(r.state, "value", r.state)))
                for name, deployment in app.deployments.items() for r in deployment.replicas]

    def replicas_per_worker(self) -> Counter[str]:
        return Counter(r.node_id for r in self.replicas() if r.node_id in self.workers)

    def kill_worker(self, node_id: str) -> None:
        """Kills every process of the worker node at once (no graceful shutdown), as a crashed machine."""
        node = self.workers.pop(node_id)
        self.dead.add(node_id)
        self.cluster.remove_node(node, allow_graceful=False)

    def alive_node_ids(self) -> set[str]:
        return {n["NodeID"] for n in ray.nodes() if n["Alive"]}

    def stop(self) -> None:
        """Tears everything down; each step runs even when an earlier one fails."""
        steps = [serve.shutdown, ray.shutdown] if ray.is_initialized() else []  # serve.shutdown would start Ray
        if self.cluster is not None:
            steps.append(self._shutdown_cluster)
        errors = []
        for step in steps:
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - the remaining steps must still run
                errors.append(exc)
        self.cluster = None
        if errors:
            raise errors[0]

    def _shutdown_cluster(self) -> None:
        with mock.patch("ray._common.utils.reset_ray_address"):  # the address file is not ours (see start)
            self.cluster.shutdown()


@contextmanager
def _deployments_with(options_by_deployment: dict[str, dict[str, Any]]) -> Iterator[None]:
    """While ``build_app`` runs, each deployment it binds is the module's one with ``.options(...)``."""
    found = {name: value for name, value in vars(app_module).items() if isinstance(value, serve.Deployment)}
    unknown = {d.name for d in found.values()} ^ set(options_by_deployment)
    if unknown:
        raise ValueError(f"options and build_app's deployments differ: {sorted(unknown)}")
    with mock.patch.multiple(app_module, **{name: deployment.options(**options_by_deployment[deployment.name])
                                           for name, deployment in found.items()}):
        yield
