"""The review queues through the gateway's whole app (in-process ASGI, access control, the real intake
flow and agents, real PostgreSQL and Valkey): each decision, the claim and its 409, the capacity a
decision frees, a merge leaving one lead with both histories, consent given again in the audit, and bad
input refused with its field errors and nothing changed."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest

from marketing_agents.domain import NewLead
from marketing_agents.memory.event_bus import EventBus
from marketing_agents.memory.redis_layout import TtlPolicy
from marketing_agents.memory.short_term import ShortTermMemory
from marketing_agents.stores.redis import RedisShortTermStore
from tests.gateway_support import gateway_app
from tests.support import InProcessAgents, lead_payload

# The session's tests share the admin key and its per-minute budget; walking a queue takes many requests.
UNMETERED = 1_000_000


@pytest.fixture
async def gateway(migrated, pool, repository):
    async with gateway_app(migrated, pool, repository, models=None, rate_limit_per_minute=UNMETERED) as gateway:
        yield gateway


@pytest.fixture
async def admin(gateway):
    async with gateway.client() as client:
        yield client


def email() -> str:
    return f"review-{uuid.uuid4().hex[:10]}@acme-robotics.com"


async def post_lead(client, **overrides) -> dict:
    answer = await client.post("/api/v1/leads", json=lead_payload(**overrides))
    assert answer.status_code == 200, answer.text
    return answer.json()


async def duplicate(client, **overrides) -> tuple[str, str]:
    """A lead and its possible duplicate, which waits in HumanReview: (original id, duplicate id)."""
    address = overrides.pop("email", None) or email()
    original = await post_lead(client, email=address)
    second = await post_lead(client, email=address, **overrides)
    assert second["status"] == "needs_review", second
    return original["lead_id"], second["lead_id"]


async def key(admin, role: str, name: str | None = None) -> str:
    created = await admin.post("/api/v1/keys", json={"name": name or f"{role}-{uuid.uuid4().hex[:6]}", "role": role})
    assert created.status_code == 201, created.text
    return created.json()["key"]


async def queue(client, name: str) -> dict:
    queues = (await client.get("/api/v1/review-queues")).json()["items"]
    return next(q for q in queues if q["name"] == name)


async def queued_ids(client, name: str) -> list[str]:
    ids, cursor = [], None
    while True:
        page = await client.get(f"/api/v1/review-queues/{name}/leads", params={"limit": 50, **(
            {"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        ids += [item["id"] for item in page.json()["items"]]
        if (cursor := page.json()["next_cursor"]) is None:
            return ids


async def test_the_queues_list_every_configured_queue_with_what_waits_in_it(admin):
    _, held = await duplicate(admin)
    big = await post_lead(admin, email=email(), company_size=2500)  # hot, at a large company: the enterprise desk
    queues = {q["name"]: q for q in (await admin.get("/api/v1/review-queues")).json()["items"]}
    assert {"HumanReview", "EnterpriseSales", "ComplianceReview"} <= set(queues)
    assert queues["EnterpriseSales"]["capacity"] == 25 and queues["HumanReview"]["capacity"] is None
    assert queues["HumanReview"]["open"] >= 1 and queues["HumanReview"]["oldest_waiting_at"] is not None
    assert held in await queued_ids(admin, "HumanReview")
    assert big["status"] == "needs_review" and big["lead_id"] in await queued_ids(admin, "EnterpriseSales")
    detail = (await admin.get(f"/api/v1/leads/{held}")).json()
    assert detail["review"]["queue"] == "HumanReview" and detail["review"]["claim"] is None
    listed = (await admin.get("/api/v1/leads", params={"status": "needs_review", "limit": 200})).json()["items"]
    assert {item["review_queue"] for item in listed if item["id"] == held} == {"HumanReview"}

    unknown = await admin.get("/api/v1/review-queues/NoSuchDesk/leads")
    assert unknown.status_code == 404 and "NoSuchDesk" in unknown.json()["error"]["message"]


async def test_the_queue_pages_oldest_first_without_repeating_a_lead(admin):
    held = [(await duplicate(admin))[1] for _ in range(3)]
    first = await admin.get("/api/v1/review-queues/HumanReview/leads", params={"limit": 2})
    ids = await queued_ids(admin, "HumanReview")
    assert len(ids) == len(set(ids)) and [i for i in ids if i in held] == held  # in the order they arrived
    assert first.json()["order"] == "asc" and first.json()["next_cursor"] is not None


async def test_engage_hands_the_lead_to_the_engagement_agent_and_frees_its_place(admin, repository, redis_client):
    _, held = await duplicate(admin)
    before = (await repository.queue_loads())["HumanReview"]
    events = EventBus(RedisShortTermStore(redis_client), TtlPolicy())
    since = (await events.event_backlog(["reviews"], None)).sequence

    outcome = await admin.post(f"/api/v1/leads/{held}/review", json={"decision": "engage", "note": "same person, "
                                                                                            "new job"})
    assert outcome.status_code == 200, outcome.text
    answer = outcome.json()
    assert answer["status"] == "engaged" and answer["engagement_plan"]["touchpoints"]
    assert answer["decided_by"].startswith("apikey:") and answer["note"] == "same person, new job"

    assert (await repository.queue_loads()).get("HumanReview", 0) == before - 1
    assert held not in await queued_ids(admin, "HumanReview")
    detail = (await admin.get(f"/api/v1/leads/{held}")).json()
    assert detail["lead"]["status"] == "engaged" and detail["review"] is None
    assert detail["handoffs"][-1]["status"] == "completed"
    assert detail["engagement_plan"]["id"] == answer["engagement_plan"]["id"]
    decided = [h for h in detail["history"] if h["action"] == "review_engage"]
    assert decided and decided[0]["actor"] == answer["decided_by"] and "new job" in decided[0]["reason"]
    backlog = await events.event_backlog(["reviews"], since)
    assert any('"review.decided"' in text and held in text and '"engage"' in text for _, _, text in backlog.events)

    again = await admin.post(f"/api/v1/leads/{held}/review", json={"decision": "engage"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_in_review"


async def test_a_dead_lettered_handoff_is_retried_by_engaging_the_lead(admin, repository, redis_client):
    # Another replica's engagement agent kept failing: the handoff was dead-lettered, the lead held.
    failing = InProcessAgents(fail_engagement=10).intake(
        repository, ShortTermMemory(RedisShortTermStore(redis_client), TtlPolicy()))
    held = await failing.submit(NewLead(**lead_payload(email=email())))
    assert held.status == "needs_review"
    detail = (await admin.get(f"/api/v1/leads/{held.lead_id}")).json()
    assert detail["handoffs"][-1]["status"] == "dead_lettered" and detail["review"]["queue"] == "HumanReview"

    outcome = await admin.post(f"/api/v1/leads/{held.lead_id}/review", json={"decision": "engage"})
    assert outcome.status_code == 200, outcome.text
    assert outcome.json()["status"] == "engaged" and outcome.json()["engagement_plan"]["touchpoints"]
    statuses = [h["status"] for h in (await admin.get(f"/api/v1/leads/{held.lead_id}")).json()["handoffs"]]
    assert statuses == ["dead_lettered", "completed"]


async def test_a_claim_keeps_others_off_the_lead_until_it_is_released_or_expires(gateway, admin, pool):
    _, held = await duplicate(admin)
    ana, ben = await key(admin, "operator", "Ana (sales desk)"), await key(admin, "operator", "Ben")
    async with gateway.client(ana) as a, gateway.client(ben) as b:
        claimed = await a.post(f"/api/v1/leads/{held}/claim")
        assert claimed.status_code == 200, claimed.text
        assert claimed.json()["held_by_name"] == "Ana (sales desk)"

        for refused in (await b.post(f"/api/v1/leads/{held}/claim"),
                        await b.post(f"/api/v1/leads/{held}/review", json={"decision": "disqualify"})):
            assert refused.status_code == 409 and refused.json()["error"]["code"] == "claimed"
            assert "Ana (sales desk)" in refused.json()["error"]["message"]
            assert refused.json()["error"]["details"]["held_by"] == claimed.json()["held_by"]
        detail = (await b.get(f"/api/v1/leads/{held}")).json()
        assert detail["lead"]["status"] == "needs_review" and detail["review"]["claim"]["held_by_name"] == "Ana (sales desk)"

        released = await a.delete(f"/api/v1/leads/{held}/claim")
        assert released.status_code == 200 and released.json()["released"] is True
        assert (await b.post(f"/api/v1/leads/{held}/claim")).status_code == 200

        # Ben walks away: once his claim has lapsed, Ana may take the lead and decide it.
        await pool.execute("UPDATE review_claims SET expires_at = now() - interval '1 second' WHERE lead_id = $1",
                           uuid.UUID(held))
        assert (await a.post(f"/api/v1/leads/{held}/claim")).status_code == 200
        decided = await a.post(f"/api/v1/leads/{held}/review", json={"decision": "disqualify"})
        assert decided.status_code == 200 and decided.json()["status"] == "disqualified"
    assert await pool.fetchval("SELECT count(*) FROM review_claims WHERE lead_id = $1", uuid.UUID(held)) == 0


async def test_only_people_who_decide_may_claim_or_decide(gateway, admin):
    _, held = await duplicate(admin)
    for role in ("viewer", "service"):
        async with gateway.client(await key(admin, role)) as client:
            assert (await client.get("/api/v1/review-queues")).status_code == 200
            assert (await client.post(f"/api/v1/leads/{held}/claim")).status_code == 403
            assert (await client.post(f"/api/v1/leads/{held}/review", json={"decision": "engage"})).status_code == 403
    assert (await admin.get(f"/api/v1/leads/{held}")).json()["lead"]["status"] == "needs_review"


async def test_reassign_moves_the_lead_to_another_queue(admin):
    _, held = await duplicate(admin)
    moved = await admin.post(f"/api/v1/leads/{held}/review", json={"decision": "reassign", "queue": "ComplianceReview"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["status"] == "needs_review" and moved.json()["queue"] == "ComplianceReview"
    assert held in await queued_ids(admin, "ComplianceReview") and held not in await queued_ids(admin, "HumanReview")
    history = (await admin.get(f"/api/v1/leads/{held}")).json()["history"]
    assert history[-1]["action"] == "review_reassign" and "HumanReview to ComplianceReview" in history[-1]["reason"]


async def test_disqualify_takes_the_lead_out_for_good(admin):
    _, held = await duplicate(admin)
    answer = await admin.post(f"/api/v1/leads/{held}/review", json={"decision": "disqualify", "note": "a competitor"})
    assert answer.status_code == 200 and answer.json()["status"] == "disqualified"
    detail = (await admin.get(f"/api/v1/leads/{held}")).json()
    assert detail["lead"]["status"] == "disqualified" and detail["review"] is None and detail["engagement_plan"] is None


async def test_merge_leaves_one_lead_with_both_histories_consent_and_scores(admin, pool):
    original, held = await duplicate(admin, consent={"sms": True}, external_id=f"crm-{uuid.uuid4().hex[:8]}",
                                     attributes={"webinar": "q1"})
    for lead_id, kind in ((original, "open"), (held, "visit")):
        stored = await admin.post("/api/v1/interactions", json={"lead_id": lead_id, "type": kind, "channel": "email",
                                                                "occurred_at": "2026-12-01T10:00:00Z"})
        assert stored.status_code in (200, 201), stored.text
    histories = [len((await admin.get(f"/api/v1/leads/{i}/profile")).json()["behaviour"]["score_history"])
                 for i in (original, held)]

    merged = await admin.post(f"/api/v1/leads/{held}/review", json={"decision": "merge", "into": original})
    assert merged.status_code == 200, merged.text
    assert merged.json()["merged_into"] == original

    gone = await admin.get(f"/api/v1/leads/{held}")
    assert gone.status_code == 404 and gone.json()["error"]["details"]["merged_into"] == original
    kept = (await admin.get(f"/api/v1/leads/{original}")).json()
    lead = kept["lead"]
    assert lead["consent"]["sms"] and lead["consent"]["email"]  # the duplicate's consent joined the lead's
    assert lead["external_id"].startswith("crm-") and lead["attributes"]["webinar"] == "q1"
    types = {row["type"] for row in await pool.fetch("SELECT type FROM interactions WHERE lead_id = $1",
                                                     uuid.UUID(original))}
    assert {"open", "visit"} <= types
    assert await pool.fetchval("SELECT count(*) FROM leads WHERE email = $1", lead["email"]) == 1
    assert len(kept["handoffs"]) >= 1 and any(h["action"] == "review_merge" for h in kept["history"])
    after = (await admin.get(f"/api/v1/leads/{original}/profile")).json()
    assert len(after["behaviour"]["score_history"]) == sum(histories) and min(histories) >= 1


async def test_consent_given_again_is_recorded_with_its_source_and_caller(gateway, admin, pool):
    lead_id = (await post_lead(admin, email=email()))["lead_id"]
    assert (await admin.post(f"/api/v1/leads/{lead_id}/unsubscribe", json={"channels": ["email"]})).status_code == 200
    service = await key(admin, "service", "crm-sync")
    async with gateway.client(service) as crm:
        me = (await crm.get("/api/v1/me")).json()
        answer = await crm.patch(f"/api/v1/leads/{lead_id}", json={
            "consent": {"channels": ["email"], "source": "preference_center"}})
    assert answer.status_code == 200, answer.text
    assert answer.json()["lead"]["consent"]["email"] is True
    given = [h for h in answer.json()["history"] if h["action"] == "consent_given"]
    assert given and given[0]["actor"] == f"apikey:{me['key_id']}" and "preference_center" in given[0]["reason"]
    await admin.get("/api/v1/audit")  # flushes the request audit
    audited = await pool.fetchval("SELECT count(*) FROM api_audit WHERE key_id = $1 AND method = 'PATCH'",
                                  uuid.UUID(me["key_id"]))
    assert audited == 1


async def test_a_correction_changes_the_fields_given_and_can_triage_again(admin):
    lead_id = (await post_lead(admin, email=email(), company_size=40, job_title="Intern"))["lead_id"]
    before = (await admin.get(f"/api/v1/leads/{lead_id}")).json()
    answer = await admin.patch(f"/api/v1/leads/{lead_id}", json={"company": "Acme Robotics GmbH",
                                                                  "job_title": "Chief Executive Officer",
                                                                  "company_size": 900, "retriage": True})
    assert answer.status_code == 200, answer.text
    after = answer.json()
    assert after["lead"]["company"] == "Acme Robotics GmbH" and after["lead"]["company_size"] == 900
    assert after["lead"]["first_name"] == before["lead"]["first_name"]
    assert after["triage"]["lead_score"] > before["triage"]["lead_score"]
    assert {"correct", "retriage"} <= {h["action"] for h in after["history"]}


@pytest.mark.parametrize("body, field", [
    ({"company_size": "12"}, "company_size"),
    ({"email": "new@example.com"}, "email"),
    ({"first_name": "Ja\nne"}, "first_name"),
    ({"country": "XX"}, "country"),
    ({"consent": {"channels": ["email"]}}, "consent.source"),
    ({"consent": {"channels": [], "source": "call"}}, "consent.channels"),
    ({}, "body"),
])
async def test_a_bad_correction_names_the_field_and_changes_nothing(admin, body, field):
    lead_id = (await post_lead(admin, email=email()))["lead_id"]
    before = (await admin.get(f"/api/v1/leads/{lead_id}")).json()
    answer = await admin.patch(f"/api/v1/leads/{lead_id}", json=body)
    assert answer.status_code == 422, answer.text
    assert field in [e["field"] for e in answer.json()["error"]["details"]]
    assert (await admin.get(f"/api/v1/leads/{lead_id}")).json() == before


@pytest.mark.parametrize("body, field", [
    ({"decision": "approve"}, "decision"),
    ({"decision": "reassign"}, "queue"),
    ({"decision": "reassign", "queue": "NoSuchDesk"}, "queue"),
    ({"decision": "reassign", "queue": "HumanReview"}, "queue"),
    ({"decision": "engage", "queue": "ComplianceReview"}, "queue"),
    ({"decision": "merge"}, "into"),
    ({"decision": "merge", "into": str(uuid.uuid4())}, "into"),
    ({"decision": "disqualify", "note": "x" * 2001}, "note"),
    ({"decision": "disqualify", "by": "someone else"}, "by"),
])
async def test_a_bad_decision_names_the_field_and_changes_nothing(admin, body, field):
    _, held = await duplicate(admin)
    before = (await admin.get(f"/api/v1/leads/{held}")).json()
    answer = await admin.post(f"/api/v1/leads/{held}/review", json=body)
    assert answer.status_code == 422, answer.text
    assert field in [e["field"] for e in answer.json()["error"]["details"]]
    assert (await admin.get(f"/api/v1/leads/{held}")).json() == before


async def test_a_decision_on_a_lead_that_waits_nowhere_or_does_not_exist(admin):
    engaged = (await post_lead(admin, email=email()))["lead_id"]
    answer = await admin.post(f"/api/v1/leads/{engaged}/review", json={"decision": "disqualify"})
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "not_in_review"
    assert "engaged" in answer.json()["error"]["message"]
    assert (await admin.post(f"/api/v1/leads/{engaged}/claim")).status_code == 409
    missing = await admin.post(f"/api/v1/leads/{uuid.uuid4()}/review", json={"decision": "engage"})
    assert missing.status_code == 404


async def test_the_claim_lasts_as_configured(migrated, pool, repository):
    async with gateway_app(migrated, pool, repository, models=None, review_claim_ttl_s=60,
                           rate_limit_per_minute=UNMETERED) as gateway, \
            gateway.client() as admin:
        _, held = await duplicate(admin)
        claim = (await admin.post(f"/api/v1/leads/{held}/claim")).json()
        claimed_at = await pool.fetchval("SELECT claimed_at FROM review_claims WHERE lead_id = $1", uuid.UUID(held))
    assert datetime.fromisoformat(claim["expires_at"]) - claimed_at == timedelta(seconds=60)


async def test_an_id_merged_twice_points_at_the_lead_left(admin):
    address = email()
    first, second = await duplicate(admin, email=address)
    third = (await post_lead(admin, email=address))["lead_id"]
    assert (await admin.post(f"/api/v1/leads/{third}/review", json={"decision": "merge", "into": second})).status_code == 200
    assert (await admin.post(f"/api/v1/leads/{second}/review", json={"decision": "merge", "into": first})).status_code == 200
    for gone in (second, third):
        answer = await admin.get(f"/api/v1/leads/{gone}")
        assert answer.status_code == 404 and answer.json()["error"]["details"]["merged_into"] == first
