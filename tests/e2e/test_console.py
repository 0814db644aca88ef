"""The operator console in a real headless Chromium against the running system: what a person signed in
with a key sees and does, checked against the API."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from selenium.webdriver.common.by import By

from marketing_agents.scoring_models.registry import ModelRegistry
from scripts.screenshots import start_chromium
from tests.e2e.console_driver import Console
from tests.support import lead_payload

pytestmark = pytest.mark.e2e

ADMIN_PAGES = ["Leads", "Review queues", "Campaigns", "Escalations", "Models", "System status", "API keys", "Audit"]
VIEWER_PAGES = ADMIN_PAGES[:-2]
# Every control that changes something, by the class the console gives it.
WRITE_CONTROLS = ("button.claim", "button.release", "form.decision-form", "button.open-review", "button.approve",
                  "button.rollback-optimization", "button.acknowledge", "button.promote", "button.rollback-model",
                  "form.new-key", "button.revoke")
WRITE_WORDS = ("Approve", "Roll back", "Acknowledge", "Claim", "Release claim", "Record decision", "Promote", "Review",
               "Create key", "Revoke")


@pytest.fixture(scope="module")
def browser(system, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    driver = start_chromium(str(tmp_path_factory.mktemp("chromium")))
    try:
        yield Console(driver, system.url)
    finally:
        driver.quit()


def unique_email(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:8]}@acme-robotics.com"


def post_lead(api: httpx.Client, **overrides) -> dict:
    response = api.post("/api/v1/leads", json=lead_payload(**overrides))
    assert response.status_code == 200, response.text
    return response.json()


def held_duplicate(api: httpx.Client) -> str:
    """A lead held in HumanReview: the second lead with an email already known."""
    email = unique_email("dup")
    post_lead(api, email=email)
    second = post_lead(api, email=email)
    assert second["status"] == "needs_review", second
    assert api.get(f"/api/v1/leads/{second['lead_id']}").json()["triage"]["route_to"] == "HumanReview"
    return second["lead_id"]


def proposed_optimization(api: httpx.Client) -> tuple[str, dict]:
    """A draft campaign whose ROI of -20 % makes the optimizer propose and escalate instead of applying."""
    created = api.post("/api/v1/campaigns", json={
        "name": f"console {uuid.uuid4().hex[:6]}", "status": "draft", "channels": ["email", "linkedin"],
        "objective": "Book demos", "budget": "50000.00", "start_date": "2025-03-01"})
    assert created.status_code == 201, created.text
    campaign_id = created.json()["id"]
    rows = [{"variant": "A", "channel": channel, "metric_date": "2025-03-01", "impressions": 5000, "clicks": 1000,
             "conversions": 100, "spend": "500.00", "revenue": "400.00"} for channel in ("email", "linkedin")]
    assert api.post(f"/api/v1/campaigns/{campaign_id}/metrics", json={"rows": rows}).status_code == 200
    proposal = api.post(f"/api/v1/campaigns/{campaign_id}/optimize").json()
    assert proposal["status"] == "proposed" and proposal["escalations"], proposal
    return campaign_id, proposal


def registered_copy(system, api: httpx.Client) -> tuple[str, str]:
    """(the active version, a second registered version to switch to)."""
    registry = ModelRegistry(system.data_dir / "models")
    active = api.get("/api/v1/models").json()["active"]
    assert active is not None
    return active, registry.register(registry.path(active))


def test_sign_in_shows_the_role_and_its_pages_and_keeps_the_key_in_this_tab_only(browser, system, api):
    wrong = "mas_" + "x" * 43  # shaped like a key, and no key
    refusal = api.get("/api/v1/me", headers={"Authorization": f"Bearer {wrong}"})
    assert refusal.status_code == 401
    browser.sign_in(wrong)
    browser.text_in("#signin-error", refusal.json()["error"]["message"])
    assert browser.storage()["session"] == {}

    assert browser.signed_in(system.admin_key) == "admin"
    assert [a.text for a in browser.all("#nav-links a")] == ADMIN_PAGES
    browser.element("#lead-results table")
    stored = browser.storage()
    assert system.admin_key not in browser.driver.current_url
    assert not [url for url in stored["resources"] if system.admin_key in url], "the key is in no URL the page asked for"
    assert system.admin_key in stored["session"].values()
    assert stored["local"] == {} and stored["cookies"] == ""

    browser.click("#sign-out")
    browser.visible("#api-key")
    assert browser.storage()["session"] == {}
    assert not browser.all("#lead-results"), "signing out takes the data off the page"


def test_a_lead_posted_through_the_api_appears_live_in_the_feed(browser, system, api):
    browser.signed_in(system.admin_key)
    browser.text_in("#live-state", "live:")
    browser.driver.execute_script("window.notReloaded = true")

    lead = post_lead(api, email=unique_email("live"))

    item = browser.element(f'#live-events li[data-type="lead.triaged"][data-lead-id="{lead["lead_id"]}"]')
    assert lead["triage_category"] in item.text and "route EngagementAgent" in item.text
    browser.element(f'#live-events li[data-type="handoff.completed"][data-lead-id="{lead["lead_id"]}"]')
    assert browser.driver.execute_script("return window.notReloaded") is True
    newest = browser.all("#live-events li")[0]
    assert int(newest.get_attribute("data-event-id")) >= int(item.get_attribute("data-event-id")), "newest first"
    clicked = api.post("/api/v1/interactions", json={"lead_id": lead["lead_id"], "type": "click", "channel": "email",
                                                     "occurred_at": datetime.now(UTC).isoformat()})
    assert clicked.status_code == 200, clicked.text
    item.find_element(By.CSS_SELECTOR, "a").click()
    browser.text_in("#main h1", "Jane Doe")
    assert browser.driver.current_url.endswith(f"#/leads/{lead['lead_id']}")
    browser.text_in("#timeline-h + .table-wrap", "interaction: click")  # the lead's page has its timeline


def test_a_possible_duplicate_is_engaged_from_its_review_queue_and_gets_a_plan(browser, system, api):
    lead_id = held_duplicate(api)
    operator = api.post("/api/v1/keys", json={"name": f"console operator {uuid.uuid4().hex[:6]}", "role": "operator"})
    assert operator.status_code == 201, operator.text
    as_operator = {"Authorization": f"Bearer {operator.json()['key']}"}
    assert api.post(f"/api/v1/leads/{lead_id}/claim", headers=as_operator).status_code == 200
    conflict = api.post(f"/api/v1/leads/{lead_id}/claim")
    assert conflict.status_code == 409

    browser.signed_in(system.admin_key)
    browser.go("#/reviews")
    browser.click('a[href="#/reviews/HumanReview"]')
    row = find_in_queue(browser, lead_id)

    row.find_element(By.CSS_SELECTOR, "button.open-review").click()
    panel = f'.review-panel[data-lead-id="{lead_id}"]'
    browser.click(f"{panel} button.claim")
    browser.text_in(f"{panel} .error[role=alert]", conflict.json()["error"]["message"])  # the holder, in the API's words
    assert api.delete(f"/api/v1/leads/{lead_id}/claim", headers=as_operator).status_code == 200
    browser.click(f"{panel} button.claim")
    browser.text_in(f"{panel} .claim-status", "Claimed by")
    assert not browser.driver.find_element(By.CSS_SELECTOR, f"{panel} .error[role=alert]").text
    assert browser.element(f'{panel} input[value="engage"]').is_selected()
    browser.driver.find_element(By.CSS_SELECTOR, f"{panel} textarea[name=note]").send_keys("same person, new role")
    browser.click(f"{panel} .decision-form button[type=submit]")
    outcome = browser.element(f'{panel} .outcome[data-decision="engage"]')
    shown = len(outcome.find_elements(By.CSS_SELECTOR, ".plan tbody tr"))
    assert shown > 0

    browser.go(f"#/leads/{lead_id}")
    browser.element("#plan-h")
    rows = browser.all("#plan-h ~ .plan tbody tr")
    detail = api.get(f"/api/v1/leads/{lead_id}").json()
    assert detail["lead"]["status"] == "engaged"
    touchpoints = detail["engagement_plan"]["touchpoints"]
    assert len(rows) == len(touchpoints) == shown
    assert [r.find_elements(By.TAG_NAME, "td")[1].text for r in rows] == [t["channel"] for t in touchpoints]


def find_in_queue(browser: Console, lead_id: str, pages: int = 40):
    """The lead's row in the queue, paging on with "Next page" (oldest first: a new lead comes last)."""
    for page in range(1, pages + 1):
        browser.text_in(".view .pager", f"Page {page}")
        rows = browser.all(f'.view tr[data-lead-id="{lead_id}"]')
        if rows:
            return rows[0]
        more = [b for b in browser.all(".view .pager button") if b.text == "Next page"]
        assert more, f"lead {lead_id} is not in the queue"
        more[0].click()
    raise AssertionError(f"lead {lead_id} is not in the first {pages} pages of the queue")


def test_a_campaign_proposal_is_approved_in_the_console(browser, system, api):
    campaign_id, proposal = proposed_optimization(api)
    browser.signed_in(system.admin_key)
    browser.go(f"#/campaigns/{campaign_id}")
    status = f'.optimization-status[data-optimization-id="{proposal["id"]}"]'
    browser.text_in(status, "proposed")
    browser.element("#allocation-h")
    assert browser.all("#client-h ~ figure svg"), "the client metrics are charted per arm"

    browser.click(f'button.approve[data-optimization-id="{proposal["id"]}"]')
    browser.text_in(status, "applied")
    browser.text_in("#main .notice", "approved")

    record = api.get(f"/api/v1/optimizations/{proposal['id']}").json()
    assert record["status"] == "applied" and record["applied_by"].startswith("apikey:")
    assert {e["status"] for e in record["escalations"]} == {"acknowledged"}
    allocation = api.get(f"/api/v1/campaigns/{campaign_id}").json()["allocation"]
    assert allocation["optimization_id"] == proposal["id"]
    assert browser.all(f'button.rollback-optimization[data-optimization-id="{proposal["id"]}"]'), "now it can be rolled back"


def test_a_model_is_promoted_and_rolled_back_in_the_console(browser, system, api):
    before, copy = registered_copy(system, api)
    browser.signed_in(system.admin_key)
    browser.go("#/models")
    browser.element(".view figure svg")  # the gains chart

    browser.click(f'button.promote[data-version="{copy}"]')
    browser.wait(lambda d: d.find_element(By.CSS_SELECTOR, ".active-version").text == copy)
    assert api.get("/api/v1/models").json()["active"] == copy

    browser.click("button.rollback-model")
    browser.wait(lambda d: d.find_element(By.CSS_SELECTOR, ".active-version").text == before)
    assert api.get("/api/v1/models").json()["active"] == before


def test_a_viewer_sees_the_data_and_no_control_it_may_not_use(browser, system, api):
    created = api.post("/api/v1/keys", json={"name": f"console viewer {uuid.uuid4().hex[:6]}", "role": "viewer"})
    assert created.status_code == 201, created.text
    # On every page something a decider could act on.
    held = held_duplicate(api)
    campaign_id, proposal = proposed_optimization(api)
    registered_copy(system, api)

    assert browser.signed_in(created.json()["key"]) == "viewer"
    assert [a.text for a in browser.all("#nav-links a")] == VIEWER_PAGES
    pages = [
        ("#/leads", "#lead-results tbody a[data-lead-id]"),
        (f"#/leads/{held}", "#triage-h"),
        ("#/reviews", 'a[href="#/reviews/HumanReview"]'),
        ("#/reviews/HumanReview", ".view tbody tr[data-lead-id]"),
        (f"#/campaigns/{campaign_id}", f'.optimization-status[data-optimization-id="{proposal["id"]}"]'),
        ("#/escalations", f'.view tbody a[href="#/campaigns/{campaign_id}"]'),
        ("#/models", "code.active-version"),
        ("#/system", "#main h2 + .table-wrap tbody tr"),
    ]
    for route, data in pages:
        browser.go(route)
        browser.element(data)
        present = [selector for selector in WRITE_CONTROLS if browser.all(selector)]
        assert not present, f"{route} shows {present} to a viewer"
        words = [b.text for b in browser.all("#main button") if b.text.startswith(WRITE_WORDS)]
        assert not words, f"{route} shows the buttons {words} to a viewer"

    browser.go("#/keys")
    browser.wait(lambda d: d.current_url.endswith("#/leads"))


def test_an_api_error_is_shown_in_the_apis_own_words(browser, system, api):
    refusal = api.get("/api/v1/leads", params={"min_score": "500"})
    assert refusal.status_code == 422
    error = refusal.json()["error"]
    browser.signed_in(system.admin_key)
    browser.go("#/leads")
    browser.element('form.filters input[name="min_score"]').send_keys("500")
    browser.click("form.filters button[type=submit]")

    browser.text_in(".view .error[role=alert]", error["message"])
    for detail in error["details"]:
        browser.text_in(".view .error[role=alert]", detail["message"])
    # The filter is now in the page's address (#/leads?min_score=500): the form was drawn again from it.
    note = browser.element('form.filters input[name="min_score"] + .field-error')
    assert note.text == error["details"][0]["message"]
    field = browser.element('form.filters input[name="min_score"]')
    assert field.get_attribute("value") == "500" and field.get_attribute("aria-invalid") == "true"
