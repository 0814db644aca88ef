"""GET /api/v1/leads underneath: filters, both sorts in both orders, and cursor paging against real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from marketing_agents.domain.lead_views import LeadQuery, LeadSort, SortOrder
from marketing_agents.stores.postgres_lead_listing import InvalidCursor, LeadListing, encode_cursor

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


async def insert(pool, industry: str, *, score: float | None, category: str | None, status: str = "engaged",
                 created_at: datetime = T0, country: str = "DE") -> uuid.UUID:
    lead_id = uuid.uuid4()
    await pool.execute(
        """INSERT INTO leads (id, email, first_name, last_name, company, job_title, industry, company_size, country,
                              source, consent, status, lead_score, triage_category, created_at, updated_at,
                              review_queue)
           VALUES ($1, $2, 'Ana', 'Lima', 'Northwind', 'VP Sales', $3, 200, $4, 'referral', '{"email": true}',
                   $5, $6, $7, $8, $8, CASE WHEN $5 = 'needs_review' THEN 'HumanReview' END)""",
        lead_id, f"{lead_id.hex[:10]}@northwind.io", industry, country, status, score, category, created_at)
    return lead_id


@pytest.fixture
async def catalogue(pool):
    """17 leads in an industry of their own: ties on created_at and on lead_score, and unscored ones."""
    industry = f"Listing {uuid.uuid4().hex[:8]}"
    rows = []
    for i in range(17):
        score = None if i % 7 == 3 else float([35.5, 71.3, 90.0, 71.3, 12.0][i % 5])
        category = None if score is None else ("hot" if score >= 70 else "nurture" if score >= 25 else "disqualified")
        created = T0 + timedelta(minutes=i // 3)  # three leads per minute: ties on created_at
        status = "needs_review" if i % 4 == 0 else "engaged"
        country = "FR" if i % 5 == 0 else "DE"
        lead_id = await insert(pool, industry, score=score, category=category, status=status, created_at=created,
                               country=country)
        rows.append({"id": lead_id, "score": score, "category": category, "created_at": created, "status": status,
                     "country": country})
    return industry, rows


def expected(rows, sort: LeadSort, order: SortOrder) -> list[uuid.UUID]:
    def key(r):
        return (r["created_at"] if sort is LeadSort.CREATED_AT else (-1.0 if r["score"] is None else r["score"]),
                r["id"])
    return [r["id"] for r in sorted(rows, key=key, reverse=order is SortOrder.DESC)]


async def every_page(listing: LeadListing, **query) -> tuple[list[uuid.UUID], int]:
    ids, pages, cursor = [], 0, None
    while True:
        page = await listing.page(LeadQuery(**query, cursor=cursor))
        pages += 1
        assert len(page.items) <= page.limit
        ids += [item.id for item in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return ids, pages


@pytest.mark.parametrize("sort", list(LeadSort))
@pytest.mark.parametrize("order", list(SortOrder))
async def test_paging_walks_every_lead_once_in_sort_order(pool, catalogue, sort, order):
    industry, rows = catalogue
    ids, pages = await every_page(LeadListing(pool), industry=industry, sort=sort, order=order, limit=4)
    assert ids == expected(rows, sort, order)
    assert pages == 5  # 4 + 4 + 4 + 4 + 1


async def test_a_full_last_page_says_there_is_no_next_one(pool, catalogue):
    industry, rows = catalogue
    ids, pages = await every_page(LeadListing(pool), industry=industry, limit=17)
    assert len(ids) == 17 and pages == 1


async def test_leads_arriving_while_paging_neither_repeat_nor_hide_others(pool, catalogue):
    industry, rows = catalogue
    listing = LeadListing(pool)
    first = await listing.page(LeadQuery(industry=industry, sort="created_at", order="asc", limit=5))
    late = await insert(pool, industry, score=50.0, category="warm", created_at=T0 + timedelta(days=1))
    early = await insert(pool, industry, score=50.0, category="warm", created_at=T0 - timedelta(days=1))
    rest, _ = await every_page(listing, industry=industry, sort="created_at", order="asc", limit=5)
    seen = [item.id for item in first.items]
    rest_after = rest[rest.index(seen[-1]) + 1:]
    assert rest_after == expected(rows, LeadSort.CREATED_AT, SortOrder.ASC)[5:] + [late]
    assert early not in rest_after


async def test_filters_combine(pool, catalogue):
    industry, rows = catalogue
    listing = LeadListing(pool)

    async def ids(**query) -> set[uuid.UUID]:
        found, _ = await every_page(listing, industry=industry, limit=200, **query)
        return set(found)

    assert await ids(status="needs_review") == {r["id"] for r in rows if r["status"] == "needs_review"}
    assert await ids(triage_category="hot") == {r["id"] for r in rows if r["category"] == "hot"}
    assert await ids(country="fr") == {r["id"] for r in rows if r["country"] == "FR"}
    assert await ids(min_score=70, max_score=80) == {r["id"] for r in rows if r["score"] == 71.3}
    assert await ids(min_score=0) == {r["id"] for r in rows if r["score"] is not None}
    after, before = T0 + timedelta(minutes=1), T0 + timedelta(minutes=4)
    assert await ids(created_after=after, created_before=before) == {
        r["id"] for r in rows if after < r["created_at"] < before}
    assert await ids(triage_category="hot", status="engaged", country="DE") == {
        r["id"] for r in rows if (r["category"], r["status"], r["country"]) == ("hot", "engaged", "DE")}
    # Case-insensitive industry; another industry's leads never appear.
    upper, _ = await every_page(listing, industry=industry.upper(), limit=200)
    assert set(upper) == {r["id"] for r in rows}


async def test_a_listed_lead_has_its_triage(pool, catalogue):
    industry, rows = catalogue
    page = await LeadListing(pool).page(LeadQuery(industry=industry, sort="lead_score", order="desc", limit=1))
    top = page.items[0]
    assert (top.lead_score, top.triage_category, top.industry) == (90.0, "hot", industry)
    assert page.next_cursor is not None


async def test_a_cursor_for_another_sort_or_a_forged_one_is_refused(pool, catalogue):
    industry, _ = catalogue
    listing = LeadListing(pool)
    page = await listing.page(LeadQuery(industry=industry, sort="lead_score", order="desc", limit=2))
    with pytest.raises(InvalidCursor):
        await listing.page(LeadQuery(industry=industry, sort="created_at", order="desc", cursor=page.next_cursor))
    with pytest.raises(InvalidCursor):
        await listing.page(LeadQuery(industry=industry, sort="lead_score", order="asc", cursor=page.next_cursor))
    with pytest.raises(InvalidCursor):
        await listing.page(LeadQuery(industry=industry, cursor="bm90IGEgY3Vyc29y"))
    # A well-formed cursor past the end gives an empty last page.
    beyond = encode_cursor(LeadSort.LEAD_SCORE, SortOrder.DESC, -5.0, uuid.uuid4())
    last = await listing.page(LeadQuery(industry=industry, sort="lead_score", order="desc", cursor=beyond))
    assert last.items == [] and last.next_cursor is None


async def test_paging_uses_the_listing_indexes(pool):
    for sort_sql, index in (("created_at", "idx_lead_created_id"), ("coalesce(lead_score, -1)", "idx_lead_score_id")):
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL enable_seqscan = off")
            plan = "\n".join(r[0] for r in await conn.fetch(
                f"EXPLAIN SELECT id FROM leads WHERE ({sort_sql}, id) < ($1, $2::uuid) "
                f"ORDER BY {sort_sql} DESC, id DESC LIMIT 51", 50.0 if "score" in sort_sql else T0, uuid.uuid4()))
        assert index in plan, plan
