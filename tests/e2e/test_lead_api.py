"""POST and GET leads over real HTTP, through Serve deployments on a real Ray cluster."""

from __future__ import annotations

import concurrent.futures
import uuid

import pytest
import redis

from tests.support import lead_payload

pytestmark = pytest.mark.e2e

RESPONSE_FIELDS = {"success", "lead_id", "triage_category", "lead_score", "engagement_plan", "next_actions",
                   "processing_time_ms", "status"}


def unique_email(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:8]}@acme-robotics.com"


async def count_leads(db) -> int:
    return await db.fetchval("SELECT count(*) FROM leads")


async def test_a_new_lead_is_triaged_handed_off_engaged_and_stored(api, db, system):
    response = api.post("/api/v1/leads", json=lead_payload(email=unique_email("e2e")))
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == RESPONSE_FIELDS
    assert body["success"] is True
    assert body["triage_category"] in ("hot", "warm") and 0 <= body["lead_score"] <= 100
    assert body["processing_time_ms"] > 0
    plan = body["engagement_plan"]
    assert plan["touchpoints"] and {tp["channel"] for tp in plan["touchpoints"]} <= {"email", "linkedin", "call"}
    assert [a["touchpoint_id"] for a in body["next_actions"]] == [tp["id"] for tp in plan["touchpoints"]]
    assert body["next_actions"][0]["action"] == "send_email"

    lead_id = uuid.UUID(body["lead_id"])
    row = await db.fetchrow("SELECT status, lead_score, triage_category FROM leads WHERE id = $1", lead_id)
    assert dict(row) == {"status": "engaged", "lead_score": pytest.approx(body["lead_score"]),
                         "triage_category": body["triage_category"]}
    handoff = await db.fetchrow("SELECT status, package_bytes, package FROM handoffs WHERE lead_id = $1", lead_id)
    assert handoff["status"] == "completed" and handoff["package_bytes"] > 0
    assert handoff["package"]["lead"]["id"] == str(lead_id)
    # The dispatcher (every 0.5 s here) may already have taken the first touchpoint, which is due at once.
    statuses = dict(await db.fetch("SELECT step, status FROM touchpoints WHERE lead_id = $1", lead_id))
    assert sorted(statuses) == [tp["step"] for tp in plan["touchpoints"]]
    assert statuses.pop(0) in {"pending", "sending", "sent"} and set(statuses.values()) <= {"pending"}

    ttl = redis.Redis.from_url(system.redis_url).ttl(f"mas:lead:{lead_id}:context")
    assert 0 < ttl <= 3600


def test_get_returns_the_stored_lead_with_triage_handoffs_and_plan(api):
    created = api.post("/api/v1/leads", json=lead_payload(email=unique_email("get"), job_title="Marketing Manager",
                                                         source="web_form")).json()
    response = api.get(f"/api/v1/leads/{created['lead_id']}")
    assert response.status_code == 200
    detail = response.json()
    assert detail["lead"]["id"] == created["lead_id"]
    assert detail["triage"]["triage_category"] == created["triage_category"]
    assert detail["triage"]["factors"], "a score comes with the factors behind it"
    assert [h["status"] for h in detail["handoffs"]] == ["completed"]
    # The dispatcher may have sent the first touchpoint (due at once) between the POST and the GET.
    stored, answered = detail["engagement_plan"], created["engagement_plan"]
    assert [tp.pop("status") for tp in answered["touchpoints"]] == ["pending"] * len(answered["touchpoints"])
    statuses = [tp.pop("status") for tp in stored["touchpoints"]]
    assert statuses[0] in {"pending", "sending", "sent"} and set(statuses[1:]) <= {"pending"}
    assert stored == answered


def test_an_unknown_lead_is_404_and_a_malformed_id_is_422(api):
    missing = api.get(f"/api/v1/leads/{uuid.uuid4()}")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    malformed = api.get("/api/v1/leads/not-a-uuid")
    assert malformed.status_code == 422
    assert malformed.json()["error"]["details"][0]["field"] == "lead_id"


async def test_an_idempotent_retry_returns_the_first_answer_and_stores_one_lead(api, db):
    payload = lead_payload(email=unique_email("idem"))
    key = f"idem-{uuid.uuid4()}"
    before = await count_leads(db)
    first = api.post("/api/v1/leads", json=payload, headers={"Idempotency-Key": key})
    retry = api.post("/api/v1/leads", json=payload, headers={"Idempotency-Key": key})
    assert first.status_code == retry.status_code == 200
    assert retry.json() == first.json()
    assert await count_leads(db) == before + 1


async def test_concurrent_retries_with_one_key_store_one_lead(api, db, system):
    payload = lead_payload(email=unique_email("burst"))
    key = f"burst-{uuid.uuid4()}"
    before = await count_leads(db)

    def post(_: int):
        import httpx

        headers = {"Idempotency-Key": key, "Authorization": f"Bearer {system.admin_key}"}
        return httpx.post(f"{system.url}/api/v1/leads", json=payload, headers=headers, timeout=60)

    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(post, range(6)))
    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["lead_id"] for r in responses}) == 1
    assert await count_leads(db) == before + 1


async def test_reusing_a_key_for_another_lead_is_refused(api, db):
    key = f"reuse-{uuid.uuid4()}"
    api.post("/api/v1/leads", json=lead_payload(email=unique_email("a")), headers={"Idempotency-Key": key})
    before = await count_leads(db)
    response = api.post("/api/v1/leads", json=lead_payload(email=unique_email("b")), headers={"Idempotency-Key": key})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert await count_leads(db) == before


async def test_a_known_external_id_is_409_and_names_the_existing_lead(api, db):
    external_id = f"crm-{uuid.uuid4().hex[:10]}"
    first = api.post("/api/v1/leads", json=lead_payload(email=unique_email("x1"), external_id=external_id)).json()
    before = await count_leads(db)
    again = api.post("/api/v1/leads", json=lead_payload(email=unique_email("x2"), external_id=external_id))
    assert again.status_code == 409
    assert again.json()["error"] == {
        "code": "lead_exists",
        "message": f"a lead with external_id '{external_id}' already exists",
        "details": {"external_id": external_id, "lead_id": first["lead_id"]},
    }
    assert await count_leads(db) == before


async def test_a_lead_without_consent_is_disqualified_with_no_plan(api, db):
    body = api.post("/api/v1/leads", json=lead_payload(email=unique_email("nc"), consent={})).json()
    assert body["triage_category"] == "disqualified"
    assert body["engagement_plan"] is None and body["next_actions"] == []
    lead_id = uuid.UUID(body["lead_id"])
    assert await db.fetchval("SELECT count(*) FROM touchpoints WHERE lead_id = $1", lead_id) == 0


async def test_unsubscribe_stops_every_pending_touchpoint_over_http(api, db):
    created = api.post("/api/v1/leads", json=lead_payload(email=unique_email("unsub"))).json()
    lead_id = uuid.UUID(created["lead_id"])
    response = api.post(f"/api/v1/leads/{lead_id}/unsubscribe")
    assert response.status_code == 200, response.text
    # Only the first touchpoint, due at once, may have been taken by the dispatcher before the unsubscribe.
    taken = await db.fetch("SELECT step, status FROM touchpoints WHERE lead_id = $1 AND status <> 'cancelled'", lead_id)
    assert all(row["step"] == 0 and row["status"] in {"sending", "sent"} for row in taken)
    assert response.json()["cancelled_touchpoints"] == len(created["engagement_plan"]["touchpoints"]) - len(taken)
    assert await db.fetchval("SELECT count(*) FROM touchpoints WHERE lead_id = $1 AND status = 'pending'", lead_id) == 0
    unknown = api.post(f"/api/v1/leads/{uuid.uuid4()}/unsubscribe", json={"channels": ["email"]})
    assert unknown.status_code == 404
    bad = api.post(f"/api/v1/leads/{lead_id}/unsubscribe", json={"channels": ["fax"]})
    assert bad.status_code == 422


async def test_the_first_touchpoint_is_delivered_by_the_cluster_to_the_local_mail_sink(api, db, system):
    from email import message_from_bytes

    from tests.support import wait_for

    email = unique_email("mailed")
    created = api.post("/api/v1/leads", json=lead_payload(email=email)).json()
    first = created["next_actions"][0]
    assert first["action"] == "send_email"
    eml = system.data_dir / "outbox" / f"{first['touchpoint_id']}.eml"
    await wait_for(eml.exists, timeout_s=60, interval_s=0.25)
    message = message_from_bytes(eml.read_bytes())
    assert message["To"] == email and message["Subject"]
    assert "Jane" in message.get_payload(decode=True).decode(), "the template was filled with the lead's name"
    status = await db.fetchval("SELECT status FROM touchpoints WHERE id = $1", uuid.UUID(first["touchpoint_id"]))
    assert status == "sent"


def test_a_model_promoted_and_rolled_back_while_the_system_serves_is_used_at_once(api, system, tmp_path):
    import subprocess
    import sys

    from marketing_agents.scoring_models.synthetic import generate_leads

    def scoring_model() -> str:
        lead_id = api.post("/api/v1/leads", json=lead_payload(email=unique_email("model"))).json()["lead_id"]
        return api.get(f"/api/v1/leads/{lead_id}").json()["triage"]["scoring_model"]

    def cli(*args: str) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "-m", "marketing_agents.cli", *args], env=system.env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        return result

    before = scoring_model()
    assert before.startswith("rules-v1+v0001-") and before.endswith("synthetic"), "the default model serves"

    data = tmp_path / "leads.csv"
    generate_leads(3000, seed=11).to_csv(data, index=False)
    cli("train", "--data", str(data), "--label", "converted", "--id", "lead_id", "--out", str(tmp_path / "m"),
        "--cv", "3", "--register", "--promote")
    active = api.get("/api/v1/models").json()["active"]  # the version just trained (others may be registered)
    promoted = scoring_model()
    assert promoted != before and promoted == f"rules-v1+{active}" and not active.endswith("synthetic")

    cli("models", "rollback")
    assert scoring_model() == before


async def test_the_plan_of_a_lead_with_a_known_persona_uses_the_graphs_channel_evidence(api, db):
    """A VP Marketing at a manufacturer is the graph's CMO persona: the recall asks the graph, and the
    plan's rationale names what the graph said."""
    body = api.post("/api/v1/leads", json=lead_payload(email=unique_email("persona"), job_title="VP Marketing",
                                                        industry="Manufacturing")).json()
    package = await db.fetchval("SELECT package FROM handoffs WHERE lead_id = $1", uuid.UUID(body["lead_id"]))
    best = package["memory"]["best_channels"]
    assert best and {c["channel"]["id"] for c in best} <= {f"channel:{c}" for c in ("email", "linkedin", "webinar",
                                                                                     "call", "sms")}
    assert all(edge["type"] == "CONVERTS_TO" for c in best for edge in c["evidence"])
    assert "semantic" not in package["memory"]["missing"]
    assert "the knowledge graph rates it" in body["engagement_plan"]["rationale"]


def test_a_person_engages_a_lead_from_its_review_queue_through_the_deployed_agents(api):
    """The review route reaches the LeadOrchestrator deployment, which hands the lead to the engagement
    agent through the HandoffOrchestrator deployment: a plan comes back and the queue has one lead less."""
    address = unique_email("review")
    assert api.post("/api/v1/leads", json=lead_payload(email=address)).status_code == 200
    held = api.post("/api/v1/leads", json=lead_payload(email=address)).json()
    assert held["status"] == "needs_review"

    def waiting() -> int:
        queues = api.get("/api/v1/review-queues").json()["items"]
        return next(q["open"] for q in queues if q["name"] == "HumanReview")

    before = waiting()
    assert api.post(f"/api/v1/leads/{held['lead_id']}/claim").status_code == 200
    outcome = api.post(f"/api/v1/leads/{held['lead_id']}/review", json={"decision": "engage"})
    assert outcome.status_code == 200, outcome.text
    assert outcome.json()["status"] == "engaged" and outcome.json()["engagement_plan"]["touchpoints"]
    assert waiting() == before - 1
    detail = api.get(f"/api/v1/leads/{held['lead_id']}").json()
    assert [h["status"] for h in detail["handoffs"]] == ["completed"] and detail["review"] is None
