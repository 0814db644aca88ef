"""The rest of REST API v1 over real HTTP on the running system: batch, list, profile, export, erasure,
the model registry, /metrics, and the OpenAPI document."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families

from marketing_agents.scoring_models.registry import ModelRegistry
from marketing_agents.stores.postgres import LEAD_TABLES
from tests.support import lead_payload, wait_for

pytestmark = pytest.mark.e2e


def tag() -> str:
    return uuid.uuid4().hex[:8]


def email(prefix: str) -> str:
    return f"{prefix}.{tag()}@acme-robotics.com"


def error_of(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    if code is not None:
        assert error["code"] == code
    return error


# -- POST /api/v1/leads:batch --------------------------------------------------------------------------

async def test_a_batch_reports_each_lead_in_its_place_and_stores_the_rest(api, db):
    t = tag()
    known = api.post("/api/v1/leads", json=lead_payload(email=email("known"), external_id=f"crm-known-{t}"))
    assert known.status_code == 200, known.text
    items = [
        lead_payload(email=email("b0"), external_id=f"crm-0-{t}"),
        lead_payload(email="nobody", company_size=-3),
        lead_payload(email=email("b2"), external_id=f"crm-known-{t}"),
        lead_payload(email=email("b3"), job_title="Marketing Manager", source="web_form"),
        lead_payload(email=email("b4"), consent={}),
    ]

    response = api.post("/api/v1/leads:batch", json={"leads": items})

    assert response.status_code == 200, response.text
    body = response.json()
    assert [r["status"] for r in body["results"]] == ["stored", "invalid", "conflict", "stored", "stored"]
    assert [r["index"] for r in body["results"]] == [0, 1, 2, 3, 4]
    assert (body["stored"], body["invalid"], body["conflicts"], body["failed"]) == (3, 1, 1, 0)
    assert body["scoring_model"].startswith("rules-v1")
    invalid = body["results"][1]["error"]
    assert invalid["code"] == "validation_error" and {f["field"] for f in invalid["details"]} == {"email",
                                                                                                  "company_size"}
    conflict = body["results"][2]["error"]
    assert conflict["code"] == "lead_exists" and conflict["details"]["lead_id"] == known.json()["lead_id"]
    stored = [body["results"][i]["result"] for i in (0, 3, 4)]
    assert stored[0]["status"] == "engaged" and stored[0]["engagement_plan"]["touchpoints"]
    assert stored[2]["status"] == "disqualified"
    for result in stored:
        lead_id = uuid.UUID(result["lead_id"])
        row = await db.fetchrow("SELECT status, lead_score FROM leads WHERE id = $1", lead_id)
        assert (row["status"], row["lead_score"]) == (result["status"], pytest.approx(result["lead_score"]))
        assert await db.fetchval("SELECT count(*) FROM triage_results WHERE lead_id = $1", lead_id) == 1
        assert api.get(f"/api/v1/leads/{lead_id}").status_code == 200
    assert await db.fetchval("SELECT count(*) FROM leads WHERE email IN ($1, $2)", items[2]["email"], "nobody") == 0


async def test_a_resent_batch_with_its_key_stores_nothing_twice(api, db):
    key, items = f"batch-{tag()}", [lead_payload(email=email(f"again{i}")) for i in range(3)]
    first = api.post("/api/v1/leads:batch", json={"leads": items}, headers={"Idempotency-Key": key}).json()
    again = api.post("/api/v1/leads:batch", json={"leads": items}, headers={"Idempotency-Key": key}).json()
    assert [r["result"]["lead_id"] for r in again["results"]] == [r["result"]["lead_id"] for r in first["results"]]
    emails = [item["email"] for item in items]
    assert await db.fetchval("SELECT count(*) FROM leads WHERE email = ANY($1::text[])", emails) == 3


def test_a_batch_too_big_too_long_or_empty_is_refused_whole(api, db):
    padded = lead_payload(attributes={f"note{i}": "x" * 1000 for i in range(40)})
    error_of(api.post("/api/v1/leads:batch", json={"leads": [padded] * 30}), 413, "payload_too_large")
    error = error_of(api.post("/api/v1/leads:batch", json={"leads": [{"email": "x"}] * 1001}), 422,
                     "validation_error")
    assert error["details"][0]["field"] == "leads"
    error_of(api.post("/api/v1/leads:batch", json={"leads": []}), 422, "validation_error")
    error_of(api.post("/api/v1/leads:batch", json=[lead_payload()]), 422, "validation_error")
    error_of(api.post("/api/v1/leads:batch", content=b'{"leads": [', headers={"Content-Type": "application/json"}),
             400, "malformed_json")


# -- GET /api/v1/leads ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def listed(api_module):
    """Nine leads in an industry of their own, sent as one batch: hot, warm, nurture and disqualified."""
    industry = f"Robotics {tag()}"
    shapes = [("VP Marketing", "demo_request", {"email": True, "call": True, "linkedin": True}, 5000),
              ("Marketing Manager", "web_form", {"email": True}, 300),
              ("Analyst", "list_import", {"email": True}, 8),
              ("Student", "social", {}, 5)]
    items = [lead_payload(email=email(f"list{i}"), industry=industry, job_title=title, source=source,
                          consent=consent, company_size=size, country="FR" if i % 3 == 0 else "DE")
             for i, (title, source, consent, size) in enumerate(shapes * 2 + shapes[:1])]
    response = api_module.post("/api/v1/leads:batch", json={"leads": items})
    assert response.status_code == 200 and response.json()["stored"] == len(items), response.text
    return industry, [r["result"] for r in response.json()["results"]]


@pytest.fixture(scope="module")
def api_module(system):
    import httpx

    with httpx.Client(base_url=system.url, timeout=60,
                      headers={"Authorization": f"Bearer {system.admin_key}"}) as client:
        yield client


def every_page(api, **params) -> tuple[list[dict], int]:
    items, pages, cursor = [], 0, None
    while True:
        response = api.get("/api/v1/leads", params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items, pages


@pytest.mark.parametrize("sort", ["created_at", "lead_score"])
@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_paging_through_all_pages_shows_every_lead_once_in_order(api, db, listed, sort, order):
    industry, results = listed
    items, pages = every_page(api, industry=industry, sort=sort, order=order, limit=2)
    assert pages == 5
    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids)) == len(results)
    key = "created_at" if sort == "created_at" else "coalesce(lead_score, -1)"
    direction = order.upper()
    expected = await db.fetch(f"SELECT id FROM leads WHERE industry = $1 ORDER BY {key} {direction}, id {direction}",
                              industry)
    assert ids == [str(row["id"]) for row in expected]


def test_filters_narrow_the_list(api, listed):
    industry, results = listed

    def ids(**params) -> set[str]:
        return {item["id"] for item in every_page(api, **{"industry": industry, "limit": 200, **params})[0]}

    by_id = {r["lead_id"]: r for r in results}
    assert ids() == set(by_id)
    for category in ("hot", "warm", "nurture", "disqualified"):
        assert ids(triage_category=category) == {i for i, r in by_id.items() if r["triage_category"] == category}
    assert ids(status="disqualified") == {i for i, r in by_id.items() if r["status"] == "disqualified"}
    assert ids(min_score=50, max_score=100) == {i for i, r in by_id.items() if r["lead_score"] >= 50}
    assert ids(max_score=49.9) == {i for i, r in by_id.items() if r["lead_score"] <= 49.9}
    french = ids(country="FR")
    assert french and french < set(by_id)
    assert ids(industry=industry.upper()) == set(by_id)
    assert ids(created_after="2000-01-01T00:00:00Z", created_before="2100-01-01T00:00:00Z") == set(by_id)
    assert ids(created_after="2100-01-01T00:00:00Z") == set()


def test_listing_errors(api, listed):
    industry, _ = listed
    first = api.get("/api/v1/leads", params={"industry": industry, "limit": 2, "sort": "lead_score"}).json()
    assert first["next_cursor"] and len(first["items"]) == 2
    error = error_of(api.get("/api/v1/leads", params={"cursor": "definitely-not-ours"}), 400, "invalid_cursor")
    assert "cursor" in error["message"]
    error_of(api.get("/api/v1/leads", params={"cursor": first["next_cursor"], "sort": "created_at"}), 400,
             "invalid_cursor")
    for bad in ({"limit": 0}, {"limit": 201}, {"sort": "email"}, {"order": "sideways"}, {"status": "asleep"},
                {"min_score": 80, "max_score": 20}, {"created_after": "2026-01-01T00:00:00"}, {"min_score": "high"}):
        error = error_of(api.get("/api/v1/leads", params=bad), 422, "validation_error")
        assert error["details"][0]["location"] == "query", (bad, error)
    assert len(api.get("/api/v1/leads", params={"limit": 200}).json()["items"]) <= 200
    assert len(api.get("/api/v1/leads").json()["items"]) <= 50


# -- profile, export, erasure ----------------------------------------------------------------------------

async def test_profile_export_and_erasure_of_a_lead(api, db, system):
    import redis

    created = api.post("/api/v1/leads", json=lead_payload(email=email("rights"), external_id=f"crm-r-{tag()}"))
    lead_id = created.json()["lead_id"]
    click = {"lead_id": lead_id, "type": "click", "channel": "email", "occurred_at": datetime.now(UTC).isoformat()}
    clicked = api.post("/api/v1/interactions", json=click)
    assert clicked.status_code == 200, clicked.text

    profile = api.get(f"/api/v1/leads/{lead_id}/profile")
    assert profile.status_code == 200, profile.text
    behaviour = profile.json()["behaviour"]
    # the intake's score, then the one the click gave it
    assert [p["lead_score"] for p in behaviour["score_history"]] == [created.json()["lead_score"],
                                                                       clicked.json()["rescore"]["lead_score"]]
    assert behaviour["score_history"][-1]["factor"]["name"] == "behaviour"
    assert set(profile.json()) == {"lead_id", "profile", "behaviour", "rfm", "updated_at"}

    exported = api.get(f"/api/v1/leads/{lead_id}/export")
    assert exported.status_code == 200, exported.text
    export = exported.json()
    assert export["lead"]["id"] == lead_id and set(export["tables"]) == set(LEAD_TABLES)
    assert export["tables"]["handoffs"] and export["tables"]["touchpoints"] and export["tables"]["interactions"]
    assert any(key.endswith(":context") for key in export["short_term"])
    assert "no personal data" in export["semantic"]

    erased = api.delete(f"/api/v1/leads/{lead_id}")
    assert erased.status_code == 200, erased.text
    report = erased.json()
    assert report["removed"]["postgres"]["leads"] == 1 and report["removed"]["postgres"]["handoffs"] >= 1
    assert report["removed"]["short_term"]["keys"] >= 1 and report["total"] > 2
    for table in LEAD_TABLES:
        assert await db.fetchval(f"SELECT count(*) FROM {table} WHERE lead_id = $1", uuid.UUID(lead_id)) == 0, table
    assert await db.fetchval("SELECT count(*) FROM leads WHERE id = $1", uuid.UUID(lead_id)) == 0
    assert list(redis.Redis.from_url(system.redis_url).scan_iter(match=f"*{lead_id}*")) == []

    for path in ("", "/profile", "/export"):
        error_of(api.get(f"/api/v1/leads/{lead_id}{path}"), 404, "not_found")
    # Erasing again answers the same report (a retry after a failure finishes the erasure).
    assert api.delete(f"/api/v1/leads/{lead_id}").json()["removed"] == report["removed"]
    # A fresh opt-in through the API with the same external_id is a new lead (only imports are suppressed).
    again = api.post("/api/v1/leads", json=lead_payload(email=email("rights"),
                                                        external_id=export["lead"]["external_id"]))
    assert again.status_code == 200


def test_unknown_and_malformed_lead_ids(api):
    unknown = uuid.uuid4()
    for method, path in (("GET", "/profile"), ("GET", "/export"), ("DELETE", "")):
        error = error_of(api.request(method, f"/api/v1/leads/{unknown}{path}"), 404, "not_found")
        assert error["details"] == {"lead_id": str(unknown)}
        error_of(api.request(method, f"/api/v1/leads/not-a-uuid{path}"), 422, "validation_error")


# -- models ----------------------------------------------------------------------------------------------

def test_model_versions_are_listed_promoted_and_rolled_back(api, system):
    registry = ModelRegistry(system.data_dir / "models")
    listing = api.get("/api/v1/models")
    assert listing.status_code == 200, listing.text
    before = listing.json()["active"]
    assert before is not None
    copy = registry.register(registry.path(before))  # a second version to switch to

    models = api.get("/api/v1/models").json()
    versions = {v["version"]: v for v in models["versions"]}
    assert versions[copy]["active"] is False and versions[before]["active"] is True
    assert 0 < versions[before]["metrics"]["roc_auc"] <= 1 and versions[before]["metrics"]["lift_at_pct"]
    assert versions[copy]["synthetic"] == versions[before]["synthetic"]

    promoted = api.post(f"/api/v1/models/{copy}/promote")
    assert promoted.status_code == 200, promoted.text
    assert promoted.json() | {"at": None} == {"action": "promote", "active": copy, "previous": before,
                                              "changed": True, "at": None}
    assert api.post(f"/api/v1/models/{copy}/promote").json()["changed"] is False
    lead_id = api.post("/api/v1/leads", json=lead_payload(email=email("model"))).json()["lead_id"]
    assert api.get(f"/api/v1/leads/{lead_id}").json()["triage"]["scoring_model"] == f"rules-v1+{copy}"
    assert api.get("/api/v1/models").json()["history"][-1] == before

    rolled = api.post("/api/v1/models/rollback")
    assert rolled.status_code == 200 and (rolled.json()["active"], rolled.json()["previous"]) == (before, copy)
    assert api.get("/api/v1/models").json()["active"] == before

    error = error_of(api.post("/api/v1/models/v9999-20990101T000000Z/promote"), 404, "model_not_found")
    assert "v9999" in error["message"]
    error_of(api.post("/api/v1/models/latest/promote"), 404, "model_not_found")
    # Rolling back past the first active version is a conflict; the active version is put back after.
    history = api.get("/api/v1/models").json()["history"]
    for _ in history:
        assert api.post("/api/v1/models/rollback").status_code == 200
    error_of(api.post("/api/v1/models/rollback"), 409, "registry_conflict")
    assert api.post(f"/api/v1/models/{before}/promote").status_code == 200


# -- /metrics --------------------------------------------------------------------------------------------

async def test_metrics_proxy_the_ray_node_export_in_prometheus_text_format(api):
    assert api.post("/api/v1/leads", json=lead_payload(email=email("metrics"))).status_code == 200

    def families() -> dict[str, list]:
        response = api.get("/metrics")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        return {f.name: f.samples for f in text_string_to_metric_families(response.text)}

    found = await wait_for(lambda: (lambda f: f if "ray_mas_handoffs" in f else None)(families()), timeout_s=60)
    assert any(s.name == "ray_mas_handoffs_total" and s.value >= 1 for s in found["ray_mas_handoffs"])
    assert any(name.startswith("ray_serve_") for name in found), "Serve's own metrics come along"


# -- OpenAPI ---------------------------------------------------------------------------------------------

def test_the_openapi_document_is_valid_openapi_3_and_every_route_has_its_response_model(api):
    response = api.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert spec["openapi"].startswith("3.")
    validate(spec)
    missing = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            success = {code: r for code, r in operation["responses"].items() if code.startswith("2")}
            schemas = [c.get("schema") for r in success.values() for c in (r.get("content") or {}).values()]
            if not schemas or not all(schemas):
                missing.append(f"{method.upper()} {path}")
    assert missing == [], f"routes without a 2xx response model: {missing}"
    paths = spec["paths"]
    for path, method in (("/api/v1/leads:batch", "post"), ("/api/v1/leads", "get"),
                         ("/api/v1/leads/{lead_id}/profile", "get"), ("/api/v1/leads/{lead_id}/export", "get"),
                         ("/api/v1/leads/{lead_id}", "delete"), ("/api/v1/models", "get"),
                         ("/api/v1/models/{version}/promote", "post"), ("/api/v1/models/rollback", "post")):
        responses = paths[path][method]["responses"]
        assert responses["404"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorResponse")
        assert "422" in responses
    assert "text/plain" in paths["/metrics"]["get"]["responses"]["200"]["content"]
    assert json.dumps(spec)  # serialisable as served
