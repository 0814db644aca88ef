"""Leads as a list: filters, a sort and cursor pagination over the ``leads`` table.

The cursor is opaque to clients: URL-safe base64 of the sort, the order and the last row's sort key
and id. The next page starts strictly after that pair, so paging is stable while leads arrive: a row
is never shown twice, and none that existed when paging began is skipped. Rows are compared as
``(key, id)`` pairs, which PostgreSQL answers from ``idx_lead_created_id`` / ``idx_lead_score_id``
(migration 0010).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from marketing_agents.domain.lead_views import LeadPage, LeadQuery, LeadSort, LeadSummary, SortOrder
from marketing_agents.errors import RequestError
from marketing_agents.stores.postgres import translated_errors

# The sort key as SQL; a lead without a score sorts as -1 (migration 0010 indexes this expression).
SORT_KEYS = {LeadSort.CREATED_AT: ("created_at", "timestamptz"),
             LeadSort.LEAD_SCORE: ("coalesce(lead_score, -1)", "real")}
COLUMNS = ", ".join(LeadSummary.model_fields)


class InvalidCursor(RequestError):
    code = "invalid_cursor"


def encode_cursor(sort: LeadSort, order: SortOrder, key: datetime | float, lead_id: UUID) -> str:
    value = key.isoformat() if isinstance(key, datetime) else key
    raw = json.dumps({"s": sort.value, "o": order.value, "k": value, "id": str(lead_id)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: LeadSort, order: SortOrder) -> tuple[datetime | float, UUID]:
    """The (key, id) a cursor points after; raises InvalidCursor for anything this module did not write
    for this sort and order."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(data, dict) or set(data) != {"s", "o", "k", "id"}:
            raise ValueError("not a cursor")
        lead_id = UUID(data["id"])
        if sort is LeadSort.CREATED_AT:
            created = datetime.fromisoformat(data["k"])
            if created.tzinfo is None:
                raise ValueError("naive time")
            key: datetime | float = created
        elif isinstance(data["k"], int | float) and not isinstance(data["k"], bool):
            key = float(data["k"])
        else:
            raise ValueError("not a score")
    except (ValueError, TypeError, AttributeError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidCursor("the cursor is not one this API gave out; start again without it",
                            {"cursor": cursor[:80]}) from exc
    if (data["s"], data["o"]) != (sort.value, order.value):
        raise InvalidCursor(f"the cursor belongs to sort={data['s']}&order={data['o']}; "
                            f"ask for the same sort and order, or start again without it",
                            {"cursor_sort": data["s"], "cursor_order": data["o"]})
    return key, lead_id


class LeadListing:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def page(self, query: LeadQuery) -> LeadPage:
        """One page of leads matching ``query``; raises InvalidCursor for a cursor it cannot read."""
        key_sql, key_type = SORT_KEYS[query.sort]
        where: list[str] = []
        args: list[Any] = []

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if query.status is not None:
            where.append(f"status = {arg(query.status.value)}")
        if query.triage_category is not None:
            where.append(f"triage_category = {arg(query.triage_category.value)}")
        if query.industry is not None:
            where.append(f"lower(industry) = lower({arg(query.industry)})")
        if query.country is not None:
            where.append(f"country = {arg(query.country.upper())}")
        if query.min_score is not None:
            where.append(f"lead_score >= {arg(query.min_score)}")
        if query.max_score is not None:
            where.append(f"lead_score <= {arg(query.max_score)}")
        if query.review_queue is not None:
            where.append(f"review_queue = {arg(query.review_queue)}")
        if query.created_after is not None:
            where.append(f"created_at > {arg(query.created_after)}")
        if query.created_before is not None:
            where.append(f"created_at < {arg(query.created_before)}")
        direction, after = ("DESC", "<") if query.order is SortOrder.DESC else ("ASC", ">")
        if query.cursor is not None:
            key, lead_id = decode_cursor(query.cursor, query.sort, query.order)
            where.append(f"({key_sql}, id) {after} ({arg(key)}::{key_type}, {arg(lead_id)}::uuid)")
        sql = (f"SELECT {COLUMNS}, {key_sql} AS sort_key FROM leads"
               f"{' WHERE ' + ' AND '.join(where) if where else ''}"
               f" ORDER BY {key_sql} {direction}, id {direction} LIMIT {arg(query.limit + 1)}")
        async with translated_errors("list leads"):
            rows = await self._pool.fetch(sql, *args)
        more = len(rows) > query.limit
        rows = rows[:query.limit]
        items = [LeadSummary.model_validate({name: row[name] for name in LeadSummary.model_fields}) for row in rows]
        next_cursor = (encode_cursor(query.sort, query.order, rows[-1]["sort_key"], rows[-1]["id"])
                       if more else None)
        return LeadPage(items=items, limit=query.limit, sort=query.sort, order=query.order, next_cursor=next_cursor)

    async def exists(self, lead_id: UUID) -> bool:
        async with translated_errors("look up a lead"):
            return bool(await self._pool.fetchval("SELECT EXISTS (SELECT 1 FROM leads WHERE id = $1)", lead_id))
