"""Demo data for ``make run``: a few campaigns and leads, so that a new installation has something to show.

Leads go through the real API, so each one is triaged, handed off and engaged like any other. Loading
is idempotent: each demo lead carries a fixed external id and Idempotency-Key, so a restart stores
nothing twice.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import UUID

import asyncpg
import httpx

from marketing_agents.domain import Campaign, CampaignStatus, Channel
from marketing_agents.stores.postgres import CampaignRepository, init_connection

DEMO_CAMPAIGNS = [
    Campaign(id=UUID("00000000-0000-4000-8000-000000000001"), name="Q4 SaaS demand gen", status=CampaignStatus.ACTIVE,
             channels=[Channel.EMAIL, Channel.LINKEDIN], objective="Book demos with mid-market SaaS",
             budget=Decimal("25000.00"), start_date=date(2026, 10, 1), end_date=date(2026, 12, 31),
             created_at=datetime(2026, 9, 20, tzinfo=UTC), variants=["A", "B"]),
    Campaign(id=UUID("00000000-0000-4000-8000-000000000002"), name="Fintech webinar series", status=CampaignStatus.ACTIVE,
             channels=[Channel.EMAIL, Channel.WEBINAR], objective="Educate finance leaders",
             budget=Decimal("12000.00"), start_date=date(2026, 11, 1), end_date=None,
             created_at=datetime(2026, 10, 15, tzinfo=UTC)),
    Campaign(id=UUID("00000000-0000-4000-8000-000000000003"), name="Healthcare re-engagement", status=CampaignStatus.DRAFT,
             channels=[Channel.EMAIL, Channel.SMS, Channel.CALL], objective="Win back dormant accounts",
             budget=Decimal("8000.00"), start_date=date(2027, 1, 10), end_date=date(2027, 3, 31),
             created_at=datetime(2026, 11, 20, tzinfo=UTC)),
]

_FIRST = ["Ava", "Noah", "Mia", "Liam", "Zoe", "Ethan", "Lena", "Omar", "Priya", "Kenji", "Sofia", "Lucas"]
_LAST = ["Schmidt", "Garcia", "Chen", "Okafor", "Rossi", "Novak", "Dubois", "Tanaka", "Silva", "Kowalski"]
_COMPANIES = [("Northwind Analytics", "northwind.io", "software", 420), ("Bluefin Capital", "bluefin.com", "fintech", 1200),
              ("Medisphere", "medisphere.health", "healthcare", 3100), ("Crafted Goods", "gmail.com", "retail", 8),
              ("Ironclad Manufacturing", "ironclad.de", "manufacturing", 5400), ("Parcelly", "parcelly.eu", "logistics", 150)]
_TITLES = ["CEO", "VP Marketing", "Director of Sales", "Marketing Manager", "Growth Lead", "Data Analyst", "Intern"]
_COUNTRIES = ["US", "DE", "GB", "FR", "IN", "JP", "BR", "NL"]
_SOURCES = ["demo_request", "referral", "web_form", "event", "content_download", "paid_search", "list_import"]


def demo_leads(count: int = 12, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    leads = []
    for n in range(1, count + 1):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        company, domain, industry, size = rng.choice(_COMPANIES)
        channels = rng.sample([c.value for c in Channel], k=rng.randint(0, 4))
        leads.append({
            "email": f"{first}.{last}{n}@{domain}".lower(),
            "first_name": first, "last_name": last, "company": company, "job_title": rng.choice(_TITLES),
            "industry": industry, "company_size": size, "country": rng.choice(_COUNTRIES),
            "source": rng.choice(_SOURCES), "consent": {c: True for c in channels},
            "external_id": f"demo-{n:04d}", "attributes": {"demo": True},
        })
    return leads


def campaign_leads(campaign_id: UUID, count: int = 8, seed: int = 11) -> list[dict]:
    """Leads that came from a campaign (each gets one of its arms), and one who filled in the form twice:
    a possible duplicate, waiting in HumanReview for a person."""
    leads = [{**lead, "external_id": f"demo-c{n:03d}", "email": lead["email"].replace("@", "+c@"),
              "campaign_id": str(campaign_id)} for n, lead in enumerate(demo_leads(count, seed), start=1)]
    twice = {**leads[0], "external_id": "demo-c-again", "source": "web_form"}
    return [*leads, twice]


def campaign_metrics(days: int = 14, seed: int = 3) -> list[dict]:
    """Two weeks of the daily numbers an ad platform would send for the first campaign's four arms: B
    converts better on email, linkedin costs more, so the optimizer has something to find."""
    rng = random.Random(seed)
    rates = {("A", "email"): 0.040, ("B", "email"): 0.065, ("A", "linkedin"): 0.030, ("B", "linkedin"): 0.028}
    start, rows = date(2026, 10, 1), []
    for offset in range(days):
        for (variant, channel), rate in rates.items():
            impressions = rng.randint(1800, 2600)
            clicks = int(impressions * rng.uniform(0.08, 0.12))
            conversions = min(clicks, int(clicks * rng.gauss(rate, rate / 5)) if rate > 0 else 0)
            rows.append({"variant": variant, "channel": channel,
                         "metric_date": date.fromordinal(start.toordinal() + offset).isoformat(),
                         "impressions": impressions, "clicks": clicks, "conversions": max(conversions, 0),
                         "spend": f"{clicks * (0.9 if channel == 'email' else 2.4):.2f}",
                         "revenue": f"{max(conversions, 0) * 60:.2f}"})
    return rows


def load_demo_data(api_url: str, dsn: str, api_key: str) -> str:
    """Posts the demo leads with ``api_key`` (the bootstrap admin key) and stores the demo campaigns,
    with two weeks of the first one's metrics (a day sent again replaces itself)."""
    asyncio.run(_ensure_campaigns(dsn))
    leads = demo_leads() + campaign_leads(DEMO_CAMPAIGNS[0].id)
    with httpx.Client(base_url=api_url, timeout=30, headers={"Authorization": f"Bearer {api_key}"}) as client:
        for lead in leads:
            response = client.post("/api/v1/leads", json=lead, headers={"Idempotency-Key": lead["external_id"]})
            if response.status_code not in (200, 409):  # 409: loaded by an earlier run
                response.raise_for_status()
        campaign = f"/api/v1/campaigns/{DEMO_CAMPAIGNS[0].id}"
        client.post(f"{campaign}/metrics", json={"rows": campaign_metrics()}).raise_for_status()
        steps = client.get(f"{campaign}/optimizations")
        steps.raise_for_status()
        if not steps.json()["optimizations"]:  # a first step now, so that the allocation has something to show
            client.post(f"{campaign}/optimize").raise_for_status()
    return f"{len(leads)} demo leads and {len(DEMO_CAMPAIGNS)} demo campaigns in place"


async def _ensure_campaigns(dsn: str) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1, init=init_connection)
    try:
        repository = CampaignRepository(pool)
        for campaign in DEMO_CAMPAIGNS:
            await repository.ensure(campaign)
    finally:
        await pool.close()
