"""The cluster manifests in cluster/, checked offline.

- The RayService's serveConfigV2 is what ``python -m marketing_agents.cluster_manifests render`` makes from
  ray_configs/serve_config.yaml (the file `serve deploy` and `make run` use) with cluster/serve-production.yaml
  over it, so the two cannot drift; it validates against Serve's own schema and fits the worker group.
- Built-in kinds validate against the Kubernetes JSON schemas shipped in ``kubernetes-validate`` (strict:
  an unknown field fails), for the oldest Kubernetes we support and for the EKS cluster's version; so do
  the pod templates inside the RayService and the RayJob.
- RayService and RayJob validate against KubeRay's CRD schemas, the PodMonitor against the Prometheus
  Operator's, the eksctl ClusterConfig against eksctl's (tests/data/cluster_schemas, vendored with their
  source commits); unknown fields fail there too.
- What ties the files together: Services reach the pods that serve, on the seed's ports; NetworkPolicies
  admit exactly the Ray pods to the databases; every Secret reference names a key the README creates and
  no secret value is in the repository; the Grafana dashboard asks only for metrics that are exported.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import ray
import yaml
from ray.serve.schema import ServeDeploySchema

from marketing_agents import cluster_manifests as cm
from marketing_agents.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "cluster"
SCHEMAS = ROOT / "tests" / "data" / "cluster_schemas"
# What the README's envsubst fills in before kubectl applies a manifest, with stand-ins for the tests.
PLACEHOLDERS = {"MAS_IMAGE": "123456789012.dkr.ecr.us-east-1.amazonaws.com/marketing-agents:0.1.0",
                "EFS_FILESYSTEM_ID": "fs-0123456789abcdef0"}
OLDEST_KUBERNETES = "1.31"
SECRET = "marketing-agents-secrets"
SECRET_ENV = {"MAS_POSTGRES_DSN": "postgres-dsn", "MAS_REDIS_URL": "redis-url", "MAS_NEO4J_URI": "neo4j-uri",
              "MAS_NEO4J_USER": "neo4j-user", "MAS_NEO4J_PASSWORD": "neo4j-password",
              "MAS_ADMIN_API_KEY": "admin-api-key"}
OPTIONAL_SECRET_ENV = {"MAS_NEO4J_URI", "MAS_NEO4J_USER", "MAS_NEO4J_PASSWORD"}  # the graph may stay in PostgreSQL
SEED_PORTS = {8080, 8765, 8766}
DATABASE_PORTS = {"postgresql": 5432, "redis": 6379, "neo4j": 7687}
BUILT_IN_GROUPS = {"v1", "apps/v1", "batch/v1", "networking.k8s.io/v1", "storage.k8s.io/v1", "policy/v1"}


def _substitute(text: str) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: PLACEHOLDERS[m[1]], text)


def _documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(_substitute(path.read_text())) if d]


MANIFEST_FILES = sorted(p for p in CLUSTER.glob("*.yaml") if p.name not in ("serve-production.yaml",))
DOCS = [(p.name, d) for p in MANIFEST_FILES for d in _documents(p)]


def _name(doc: dict) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def _one(kind: str, name: str | None = None) -> dict:
    found = [d for _, d in DOCS if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def rayservice() -> dict:
    return _one("RayService")


@pytest.fixture(scope="module")
def rayjob() -> dict:
    return _one("RayJob")


@pytest.fixture(scope="module")
def eks() -> dict:
    return _one("ClusterConfig")


def _ray_cluster_specs() -> list[tuple[str, dict]]:
    return [("RayService", _one("RayService")["spec"]["rayClusterConfig"]),
            ("RayJob", _one("RayJob")["spec"]["rayClusterSpec"])]


def _pod_templates() -> list[tuple[str, dict]]:
    out = []
    for kind, spec in _ray_cluster_specs():
        out.append((f"{kind} head", spec["headGroupSpec"]["template"]))
        out += [(f"{kind} worker {g['groupName']}", g["template"]) for g in spec["workerGroupSpecs"]]
    return out


def _container(template: dict) -> dict:
    return template["spec"]["containers"][0]  # KubeRay's Ray container is the first


# -- serveConfigV2 is generated from the Serve config file ---------------------------------------------------------


def test_the_rayservice_is_what_render_writes():
    current, wanted = cm.render(ROOT)
    assert current == wanted, "cluster/rayservice.yaml is out of date: python -m marketing_agents.cluster_manifests render"
    assert cm.main(["check"]) == 0


def test_the_serve_config_v2_equals_the_serve_config_with_the_production_overrides(rayservice):
    assert yaml.safe_load(rayservice["spec"]["serveConfigV2"]) == cm.serve_config_v2(ROOT)


def test_every_deployment_of_the_serve_config_is_in_the_rayservice(rayservice):
    local = yaml.safe_load((ROOT / cm.SERVE_CONFIG).read_text())
    cluster = yaml.safe_load(rayservice["spec"]["serveConfigV2"])
    assert [a["name"] for a in cluster["applications"]] == [a["name"] for a in local["applications"]]
    for local_app, cluster_app in zip(local["applications"], cluster["applications"], strict=True):
        assert [d["name"] for d in cluster_app["deployments"]] == [d["name"] for d in local_app["deployments"]]
        assert cluster_app["import_path"] == local_app["import_path"]
        assert cluster_app["route_prefix"] == local_app["route_prefix"]


def test_the_serve_config_v2_validates_against_serves_schema(rayservice):
    ServeDeploySchema.model_validate(yaml.safe_load(rayservice["spec"]["serveConfigV2"]))


def _deployments(config: dict) -> dict[str, dict]:
    (app,) = config["applications"]
    return {d["name"]: d for d in app["deployments"]}


def test_production_values_follow_the_seed(rayservice):
    config = yaml.safe_load(rayservice["spec"]["serveConfigV2"])
    prod = _deployments(config)
    local = _deployments(yaml.safe_load((ROOT / cm.SERVE_CONFIG).read_text()))
    assert prod["LeadOrchestrator"]["autoscaling_config"]["max_replicas"] == 5, "the seed: orchestrator up to 5"
    assert prod["McpServer"]["autoscaling_config"]["max_replicas"] == 3, "the seed: MCP server 3 replicas"
    assert config["http_options"]["host"] == "0.0.0.0"
    serve_ports = {p["containerPort"] for p in _container(rayservice["spec"]["rayClusterConfig"]["headGroupSpec"]
                                                          ["template"])["ports"] if p["name"] == "serve"}
    assert serve_ports == {config["http_options"]["port"]}, "the proxy listens on the head's port named serve"
    for name, d in prod.items():
        assert d["ray_actor_options"]["num_cpus"] > local[name]["ray_actor_options"]["num_cpus"], name
        if "autoscaling_config" in d:
            scaling = d["autoscaling_config"]
            assert 1 <= scaling["min_replicas"] <= scaling["initial_replicas"] <= scaling["max_replicas"], name
            assert scaling["max_replicas"] >= local[name]["autoscaling_config"]["max_replicas"], name


def _cpus(quantity: str | int | float) -> float:
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def test_the_replicas_fit_the_worker_group(rayservice):
    """At their maxima (and minima) the replicas' CPU shares fit the worker group at its max (min) size."""
    spec = rayservice["spec"]["rayClusterConfig"]
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0", "no replicas on the head"
    (workers,) = spec["workerGroupSpecs"]
    per_worker = _cpus(_container(workers["template"])["resources"]["limits"]["cpu"])
    deployments = _deployments(yaml.safe_load(rayservice["spec"]["serveConfigV2"])).values()

    def needed(bound: str) -> float:
        return sum(d["ray_actor_options"]["num_cpus"] * (d["autoscaling_config"][bound] if "autoscaling_config" in d
                                                         else d["num_replicas"]) for d in deployments)

    assert needed("max_replicas") <= workers["maxReplicas"] * per_worker
    assert needed("min_replicas") <= workers["minReplicas"] * per_worker


# -- the generator itself -------------------------------------------------------------------------------------------

BASE = {"proxy_location": "EveryNode", "http_options": {"host": "127.0.0.1", "port": 8080, "request_timeout_s": 60},
        "applications": [{"name": "app", "import_path": "m:f", "deployments": [
            {"name": "A", "autoscaling_config": {"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 4},
             "ray_actor_options": {"num_cpus": 0.1}},
            {"name": "B", "num_replicas": 1, "ray_actor_options": {"num_cpus": 0.1}}]}]}


def test_overrides_merge_mappings_by_key_and_items_by_name():
    before = copy.deepcopy(BASE)
    merged = cm.apply_overrides(BASE, {"http_options": {"host": "0.0.0.0"}, "applications": [
        {"name": "app", "deployments": [{"name": "A", "autoscaling_config": {"max_replicas": 5}}]}]})
    assert BASE == before, "the inputs are not changed"
    assert merged["http_options"] == {"host": "0.0.0.0", "port": 8080, "request_timeout_s": 60}
    a, b = merged["applications"][0]["deployments"]
    assert a["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 5, "target_ongoing_requests": 4}
    assert b == BASE["applications"][0]["deployments"][1]
    assert merged["applications"][0]["import_path"] == "m:f"


@pytest.mark.parametrize("overrides", [
    {"applications": [{"name": "app", "deployments": [{"name": "Typo", "num_replicas": 2}]}]},
    {"applications": [{"name": "other", "deployments": []}]},
])
def test_an_override_naming_what_the_serve_config_lacks_is_an_error(overrides):
    with pytest.raises(cm.ManifestError, match="does not have"):
        cm.apply_overrides(BASE, overrides)


MANIFEST = """\
spec:
  before: 1
  serveConfigV2: |
    old: text
      nested: too

    more: old
  after:
    key: 2
"""


def test_render_replaces_only_the_block():
    out = cm.replace_block(MANIFEST, "new: 1\nlist:\n- a\n")
    assert out == "spec:\n  before: 1\n  serveConfigV2: |\n    new: 1\n    list:\n    - a\n  after:\n    key: 2\n"
    assert cm.replace_block(out, "new: 1\nlist:\n- a\n") == out
    assert yaml.safe_load(out)["spec"]["serveConfigV2"] == "new: 1\nlist:\n- a\n"
    with pytest.raises(cm.ManifestError):
        cm.replace_block("spec: {}\n", "x: 1\n")


def test_check_fails_on_drift_and_render_fixes_it(tmp_path, capsys):
    for relative in (cm.SERVE_CONFIG, cm.OVERRIDES, cm.RAYSERVICE):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text((ROOT / relative).read_text())
    assert cm.main(["--root", str(tmp_path), "check"]) == 0
    config = tmp_path / cm.SERVE_CONFIG
    config.write_text(config.read_text().replace("request_timeout_s: 60", "request_timeout_s: 61"))
    assert cm.main(["--root", str(tmp_path), "check"]) == 1
    assert "request_timeout_s: 61" in capsys.readouterr().out, "check shows the difference"
    assert cm.main(["--root", str(tmp_path), "render"]) == 0
    assert cm.main(["--root", str(tmp_path), "check"]) == 0
    rendered = yaml.safe_load((tmp_path / cm.RAYSERVICE).read_text())
    assert yaml.safe_load(rendered["spec"]["serveConfigV2"])["http_options"]["request_timeout_s"] == 61


# -- built-in kinds against the Kubernetes schemas ------------------------------------------------------------------


def _kubernetes_versions() -> list[str]:
    return sorted({OLDEST_KUBERNETES, str(_one("ClusterConfig")["metadata"]["version"])})


BUILT_IN = [(f, d) for f, d in DOCS if d["apiVersion"] in BUILT_IN_GROUPS]


def test_the_built_in_kinds_we_ship():
    assert {d["kind"] for _, d in BUILT_IN} >= {"Namespace", "ConfigMap", "Service", "NetworkPolicy",
                                                "StorageClass", "PersistentVolumeClaim"}
    assert not [d for _, d in DOCS if d["kind"] == "Secret"], "no Secret in the repository: kubectl creates it"


def _validate_built_in(doc: dict, version: str) -> None:
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as e:
        where = "/".join(str(p) for p in e.caught.absolute_path)
        pytest.fail(f"{_name(doc)} is not valid Kubernetes {version} at {where}: {e.caught.message}")


@pytest.mark.parametrize("version", _kubernetes_versions())
@pytest.mark.parametrize("doc", [d for _, d in BUILT_IN], ids=[f"{f}:{_name(d)}" for f, d in BUILT_IN])
def test_built_in_kinds_validate_against_the_kubernetes_schema(doc, version):
    _validate_built_in(doc, version)


@pytest.mark.parametrize("version", _kubernetes_versions())
@pytest.mark.parametrize("where", [w for w, _ in _pod_templates()])
def test_ray_pod_templates_validate_as_kubernetes_pod_templates(where, version):
    template = dict(_pod_templates())[where]
    _validate_built_in({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "ray"},
                        "template": template}, version)


def test_the_validator_catches_an_unknown_field():
    service = copy.deepcopy(_one("Service", "marketing-agents-rest"))
    service["spec"]["ports"][0]["targetPrt"] = 8000
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, OLDEST_KUBERNETES, strict=True)


def test_custom_resources_have_valid_object_metadata():
    for _, doc in DOCS:
        if doc["apiVersion"] not in BUILT_IN_GROUPS and "metadata" in doc and doc["kind"] != "ClusterConfig":
            _validate_built_in({"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc["metadata"]},
                               OLDEST_KUBERNETES)


# -- KubeRay, Prometheus Operator and eksctl kinds against their projects' schemas -----------------------------------


def _closed(schema: Any) -> Any:
    """The schema with unknown fields refused wherever it lists the fields (the API server prunes them)."""
    if isinstance(schema, list):
        return [_closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _closed(v) for k, v in schema.items()}
    if ("properties" in schema and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def _crd_validator(group: str, kind: str) -> jsonschema.Draft202012Validator:
    vendored = json.loads((SCHEMAS / f"{group}.json").read_text())
    schema = {**_closed(vendored["kinds"][kind]), "$defs": _closed(vendored["$defs"])}
    return jsonschema.Draft202012Validator(schema)


def _errors(validator: jsonschema.Validator, doc: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


@pytest.mark.parametrize("group,kind", [("kuberay", "RayService"), ("kuberay", "RayJob"),
                                       ("prometheus-operator", "PodMonitor")])
def test_custom_resources_validate_against_their_crds(group, kind):
    doc = _one(kind)
    assert doc["apiVersion"] == {"kuberay": "ray.io/v1", "prometheus-operator": "monitoring.coreos.com/v1"}[group]
    assert _errors(_crd_validator(group, kind), doc) == []


def test_the_crd_validation_catches_an_unknown_or_mistyped_field(rayservice):
    validator = _crd_validator("kuberay", "RayService")
    typo = copy.deepcopy(rayservice)
    typo["spec"]["rayClusterConfig"]["enableInTreeAutoscalling"] = True
    assert any("enableInTreeAutoscalling" in e for e in _errors(validator, typo))
    mistyped = copy.deepcopy(rayservice)
    mistyped["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["maxReplicas"] = "six"
    assert _errors(validator, mistyped)
    deep = copy.deepcopy(rayservice)
    _container(deep["spec"]["rayClusterConfig"]["headGroupSpec"]["template"])["readinessProbe"]["httpGet"]["prot"] = 1
    assert any("prot" in e for e in _errors(validator, deep))


def test_the_vendored_schemas_name_their_source():
    for path in SCHEMAS.glob("*.json"):
        source = json.loads(path.read_text())["source"]
        assert re.search(r"github\.com/\S+ v[\d.]+ \([0-9a-f]{40}\)", source["from"]), path.name


def test_the_eks_cluster_config_validates_against_eksctls_schema(eks):
    schema = json.loads((SCHEMAS / "eksctl.json").read_text())["schema"]
    assert _errors(jsonschema.Draft7Validator(schema), eks) == []
    typo = {**eks, "managedNodeGroups": [{**eks["managedNodeGroups"][0], "privateNetwork": True}]}
    assert _errors(jsonschema.Draft7Validator(schema), typo), "eksctl's schema refuses unknown fields"


def test_the_eks_cluster_has_three_nodes_in_three_zones_on_private_subnets(eks):
    zones = eks["availabilityZones"]
    assert len(set(zones)) == 3
    groups = eks["managedNodeGroups"]
    assert {z for g in groups for z in g["availabilityZones"]} == set(zones)
    assert sum(g["minSize"] for g in groups) == 3 == sum(g["desiredCapacity"] for g in groups)
    assert all(g["minSize"] < g["maxSize"] for g in groups), "every node group can grow"
    assert all(g["privateNetworking"] for g in groups), "nodes in private subnets"
    assert eks["vpc"]["nat"]["gateway"] == "HighlyAvailable"
    addons = {a["name"]: a for a in eks["addons"]}
    assert json.loads(addons["vpc-cni"]["configurationValues"])["enableNetworkPolicy"] == "true", \
        "the VPC CNI enforces the NetworkPolicies"
    assert "aws-efs-csi-driver" in addons, "the shared volume of cluster/storage.yaml"


# -- what ties the files together -----------------------------------------------------------------------------------


def test_ray_version_image_and_dockerfile_agree():
    (base,) = re.findall(r"^FROM (\S+)$", (CLUSTER / "Dockerfile").read_text(), re.MULTILINE)
    assert base == f"rayproject/ray:{ray.__version__}-py311", "the image's Ray is the one the project runs"
    for kind, spec in _ray_cluster_specs():
        assert spec["rayVersion"] == ray.__version__, kind
    for where, template in _pod_templates():
        images = {c["image"] for c in template["spec"]["containers"] + template["spec"].get("initContainers", [])}
        assert images == {PLACEHOLDERS["MAS_IMAGE"]}, f"{where} runs our image (built from cluster/Dockerfile)"


def test_placeholders_are_the_ones_the_readme_substitutes():
    used = {m for p in MANIFEST_FILES for m in re.findall(r"\$\{(\w+)\}", p.read_text())}
    assert used == set(PLACEHOLDERS)
    readme = (ROOT / "README.md").read_text()
    for name in PLACEHOLDERS:
        assert f"envsubst '${{{name}}}'" in readme, f"the README applies with envsubst '${{{name}}}'"


def test_the_rayservice_autoscales_and_survives_a_head_restart(rayservice):
    spec = rayservice["spec"]["rayClusterConfig"]
    assert spec["enableInTreeAutoscaling"] is True and spec["autoscalerOptions"]["idleTimeoutSeconds"] > 0
    (workers,) = spec["workerGroupSpecs"]
    assert workers["minReplicas"] >= 3 and workers["maxReplicas"] > workers["minReplicas"]
    ft = spec["gcsFaultToleranceOptions"]
    assert ft["redisAddress"].endswith(":6379")
    assert ft["redisPassword"]["valueFrom"]["secretKeyRef"]["name"] == SECRET
    for where, template in _pod_templates():
        if where.startswith("RayService"):
            container = _container(template)
            resources = container["resources"]
            assert resources["requests"] == resources["limits"], f"{where}: requests equal limits (KubeRay's advice)"
            assert container["readinessProbe"] and container["livenessProbe"], where


@pytest.mark.parametrize("where", [w for w, _ in _pod_templates()])
def test_every_ray_pod_gets_its_stores_from_the_secret(where):
    container = _container(dict(_pod_templates())[where])
    env = {e["name"]: e for e in container["env"]}
    wanted = SECRET_ENV if where.startswith("RayService") else {"MAS_POSTGRES_DSN": "postgres-dsn"}
    for name, key in wanted.items():
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": SECRET, "key": key,
                                                          **({"optional": True} if name in OPTIONAL_SECRET_ENV else {})}
    assert {"configMapRef": {"name": "marketing-agents-config"}} in container["envFrom"]


def _secret_refs(node: Any) -> list[dict]:
    if isinstance(node, dict):
        found = [node["secretKeyRef"]] if "secretKeyRef" in node else []
        return found + [r for v in node.values() for r in _secret_refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _secret_refs(v)]
    return []


def test_every_ray_cluster_takes_only_rays_token():
    """The dashboard and the job API run code on the cluster: with token authentication, only a holder of
    the token KubeRay generates can reach them."""
    clusters = [doc["spec"]["rayClusterConfig" if doc["kind"] == "RayService" else "rayClusterSpec"]
                for _, doc in DOCS if doc.get("kind") in ("RayService", "RayJob")]
    assert len(clusters) == 2
    assert all(cluster["authOptions"] == {"mode": "token"} for cluster in clusters)


def test_secret_references_name_keys_the_readme_creates_and_no_value_is_committed():
    refs = [r for _, d in DOCS for r in _secret_refs(d)]
    assert refs and {r["name"] for r in refs} == {SECRET}
    keys = {r["key"] for r in refs}
    assert keys == set(SECRET_ENV.values()) | {"gcs-redis-password"}
    readme = (ROOT / "README.md").read_text()
    assert f"kubectl -n marketing-agents create secret generic {SECRET}" in readme
    for key in keys:
        assert f"--from-literal={key}=" in readme, f"the README creates the key {key}"
    for _, doc in DOCS:
        for env in _env_entries(doc):
            assert "value" not in env or not env["name"].startswith("MAS_"), f"{env['name']} as a literal"


def _env_entries(node: Any) -> list[dict]:
    if isinstance(node, dict):
        return [e for e in node.get("env", []) if isinstance(e, dict)] + \
            [e for k, v in node.items() if k != "env" for e in _env_entries(v)]
    if isinstance(node, list):
        return [e for v in node for e in _env_entries(v)]
    return []


def test_the_config_map_sets_only_real_settings_and_no_secret_ones():
    config = _one("ConfigMap", "marketing-agents-config")["data"]
    fields = {f"MAS_{name.upper()}" for name in Settings.model_fields}
    assert set(config) <= fields, f"unknown settings: {set(config) - fields}"
    assert not set(config) & set(SECRET_ENV)
    Settings.model_validate({k[4:].lower(): v for k, v in config.items()})


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _kuberay_labels(template: dict, node_type: str, serving: bool) -> dict[str, str]:
    """The labels KubeRay puts on a pod made from this template (ray.io/serve once its proxy is healthy)."""
    labels = {**template["metadata"]["labels"], "ray.io/is-ray-node": "yes", "ray.io/node-type": node_type}
    return {**labels, "ray.io/serve": "true"} if serving else labels


def test_the_seed_port_services_reach_the_serve_proxy_of_the_serving_pods(rayservice):
    services = [d for _, d in DOCS if d["kind"] == "Service"]
    assert {p["port"] for s in services for p in s["spec"]["ports"]} == SEED_PORTS
    spec = rayservice["spec"]["rayClusterConfig"]
    serving = [_kuberay_labels(spec["headGroupSpec"]["template"], "head", True)] + \
        [_kuberay_labels(g["template"], "worker", True) for g in spec["workerGroupSpecs"]]
    batch = _kuberay_labels(_one("RayJob")["spec"]["rayClusterSpec"]["headGroupSpec"]["template"], "head", False)
    for service in services:
        assert all(p["targetPort"] == "serve" for p in service["spec"]["ports"])
        selector = service["spec"]["selector"]
        assert selector["ray.io/serve"] == "true", "only pods whose proxy is healthy"
        assert all(_matches(selector, labels) for labels in serving), _name(service)
        assert not _matches(selector, batch), "the batch job's pods serve nothing"
    for where, template in _pod_templates():
        if where.startswith("RayService"):
            assert {"name": "serve", "containerPort": 8000} in _container(template)["ports"], where


def test_only_the_ray_pods_reach_the_databases():
    policies = [d for _, d in DOCS if d["kind"] == "NetworkPolicy"]
    assert {p["metadata"]["namespace"] for p in policies} == {"marketing-data"}
    deny = _one("NetworkPolicy", "default-deny-all")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}, "everything denied unless allowed"
    ray_pods = [_kuberay_labels(t, "head" if "head" in w else "worker", False) for w, t in _pod_templates()]
    allowed_ports: dict[str, set[int]] = {}
    for policy in policies:
        spec = policy["spec"]
        for rule in spec.get("ingress", []):
            for peer in rule["from"]:
                if peer == {"podSelector": {}}:
                    continue  # members of the same database namespace (replication)
                assert peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "marketing-agents"}}
                selector = peer["podSelector"]["matchLabels"]
                assert selector["ray.io/is-ray-node"] == "yes", "Ray pods only"
                assert all(_matches(selector, labels) for labels in ray_pods), "every Ray pod of ours is admitted"
                assert not _matches(selector, {"app.kubernetes.io/part-of": "marketing-agents"}), \
                    "a pod that is not a Ray pod is not"
                database = spec["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
                allowed_ports.setdefault(database, set()).update(p["port"] for p in rule["ports"])
    assert allowed_ports == {name: {port} for name, port in DATABASE_PORTS.items()}


def test_prometheus_scrapes_every_ray_pod_on_its_metrics_port():
    monitor = _one("PodMonitor")["spec"]
    selector = monitor["selector"]["matchLabels"]
    for where, template in _pod_templates():
        labels = _kuberay_labels(template, "head" if "head" in where else "worker", False)
        assert _matches(selector, labels), where
        assert any(p["name"] == "metrics" for p in _container(template)["ports"]), where
    assert {e["port"] for e in monitor["podMetricsEndpoints"]} == {"metrics"}


# -- the Grafana dashboard ------------------------------------------------------------------------------------------

# Ray's own metrics the dashboard uses (exported with the ray_ prefix), by kind; the test below finds each
# name in the installed Ray's source, so a rename in a Ray upgrade shows here.
RAY_METRICS = {"serve_num_http_requests": "counter", "serve_num_http_error_requests": "counter",
               "serve_http_request_latency_ms": "histogram", "serve_deployment_replica_healthy": "gauge",
               "serve_autoscaling_target_replicas": "gauge", "node_mem_used": "gauge", "node_mem_total": "gauge"}
PROMQL_WORDS = {"sum", "by", "rate", "increase", "histogram_quantile", "le", "clamp_min"}


def _our_metrics() -> dict[str, str]:
    """Metric name -> kind, read from marketing_agents/metrics.py (ray.util.metrics constructors)."""
    tree = ast.parse((ROOT / "marketing_agents" / "metrics.py").read_text())
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id in ("Counter", "Histogram", "Gauge") and node.args and \
                isinstance(node.args[0], ast.Constant):
            found[node.args[0].value] = node.func.id.lower()
    return found


def _exported_series() -> set[str]:
    """Every series name Ray's Prometheus export has for the metrics above."""
    series = set()
    for name, kind in {**_our_metrics(), **RAY_METRICS}.items():
        full = f"ray_{name}"
        if kind == "counter":
            series.add(full if full.endswith("_total") else f"{full}_total")
        elif kind == "histogram":
            series.update(f"{full}_{suffix}" for suffix in ("bucket", "sum", "count"))
        else:
            series.add(full)
    return series


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads((CLUSTER / "grafana" / "marketing-agents.json").read_text())


def _panels(dashboard: dict) -> list[dict]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def test_our_metrics_are_read_from_the_metrics_module():
    assert {"mas_handoffs_total": "counter", "mas_handoff_latency_ms": "histogram",
            "mas_handoff_attempts_total": "counter", "mas_handoff_quality": "histogram",
            "mas_touchpoints_total": "counter"}.items() <= _our_metrics().items()


def test_rays_metric_names_exist_in_the_installed_ray():
    source = "\n".join(p.read_text(errors="ignore") for sub in ("serve/_private", "dashboard/modules/reporter")
                       for p in (Path(ray.__file__).parent / sub).rglob("*.py"))
    for name in RAY_METRICS:
        templated = name.replace("_http_", "_{protocol_name}_").replace("serve_http", "serve_{protocol_name}")
        assert f'"{name}"' in source or templated in source, f"Ray {ray.__version__} has no metric {name}"


def test_every_dashboard_query_names_an_exported_metric(dashboard):
    exported = _exported_series()
    panels = _panels(dashboard)
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"]), "panel ids are unique"
    for panel in panels:
        assert panel["targets"], panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            names = set(re.findall(r"\b(ray_[a-z0-9_]+)", target["expr"]))
            assert names, f"{panel['title']}: {target['expr']}"
            assert names <= exported, f"{panel['title']}: {names - exported} is not exported"
            words = set(re.findall(r"\b([a-z_]+)\s*\(", target["expr"]))
            assert words <= PROMQL_WORDS, f"{panel['title']}: {words - PROMQL_WORDS}"


def test_the_dashboard_has_the_seeds_panels(dashboard):
    titles = " | ".join(p["title"].lower() for p in _panels(dashboard))
    for wanted in ("response time", "error rate", "throughput", "healthy replicas", "memory", "handoff latency",
                   "handoff quality", "touchpoints"):
        assert wanted in titles, wanted
    queries = " ".join(t["expr"] for p in _panels(dashboard) for t in p["targets"])
    for quantile in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}, sum by (le) (rate(ray_serve_http_request_latency_ms_bucket" in queries
    assert 'ray_mas_touchpoints_total{result="failed"}' in queries
    for name in _our_metrics():
        assert re.search(rf"\bray_{name}(_bucket|_sum|_count)?\b", queries), f"no panel shows ray_{name}"
