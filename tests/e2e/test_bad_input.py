"""Bad input gets a 4xx whose body names the field and the problem, and nothing is stored."""

from __future__ import annotations

import pytest

from tests.support import lead_payload

pytestmark = pytest.mark.e2e

JSON = {"Content-Type": "application/json"}


def without(payload: dict, field: str) -> dict:
    return {k: v for k, v in payload.items() if k != field}


FIELD_ERRORS = [
    pytest.param(lead_payload(email="not-an-email"), "email", "value_error", id="bad-email"),
    pytest.param(lead_payload(company_size="12"), "company_size", "int_type", id="size-as-string"),
    pytest.param(lead_payload(company_size=0), "company_size", "greater_than_equal", id="size-zero"),
    pytest.param(lead_payload(country="XX"), "country", "value_error", id="unknown-country"),
    pytest.param(lead_payload(country="DEU"), "country", "string_too_long", id="alpha-3-country"),
    pytest.param(lead_payload(first_name="x" * 101), "first_name", "string_too_long", id="long-name"),
    pytest.param(lead_payload(consent={"email": True, "fax": True}), "consent.fax", "extra_forbidden",
                 id="unknown-channel"),
    pytest.param(lead_payload(consent={"email": "yes"}), "consent.email", "bool_type", id="consent-not-bool"),
    pytest.param(lead_payload(favourite_colour="blue"), "favourite_colour", "extra_forbidden", id="unknown-field"),
    pytest.param(without(lead_payload(), "email"), "email", "missing", id="missing-email"),
    pytest.param(lead_payload(source="Trade Show!"), "source", "string_pattern_mismatch", id="bad-source"),
    pytest.param(lead_payload(attributes={f"k{i}": i for i in range(51)}), "attributes", "value_error",
                 id="too-many-attributes"),
]


async def count_leads(db) -> int:
    return await db.fetchval("SELECT count(*) FROM leads")


@pytest.mark.parametrize(("payload", "field", "error_type"), FIELD_ERRORS)
async def test_invalid_fields_are_422_naming_each_field_and_store_nothing(api, db, payload, field, error_type):
    before = await count_leads(db)
    response = api.post("/api/v1/leads", json=payload)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["message"]
    assert {"field": field, "type": error_type, "location": "body"}.items() <= next(
        d for d in error["details"] if d["field"] == field).items()
    assert await count_leads(db) == before


async def test_malformed_json_is_400_and_says_where(api, db):
    before = await count_leads(db)
    response = api.post("/api/v1/leads", content=b'{"email": "a@b.io",', headers=JSON)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "malformed_json" and isinstance(error["details"]["position"], int)
    assert await count_leads(db) == before


async def test_a_body_over_one_mebibyte_is_413(api, db):
    before = await count_leads(db)
    padded = lead_payload(attributes={"notes": "x" * 1000}) | {"padding": "y" * (1024 * 1024)}
    response = api.post("/api/v1/leads", json=padded)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert await count_leads(db) == before


async def test_an_oversized_chunked_body_without_content_length_is_413(api, db):
    before = await count_leads(db)

    def chunks():
        for _ in range(20):
            yield b"x" * 65536

    response = api.post("/api/v1/leads", content=chunks(), headers=JSON)
    assert response.status_code == 413
    assert await count_leads(db) == before


async def test_a_non_json_body_is_415(api, db):
    before = await count_leads(db)
    response = api.post("/api/v1/leads", content=b"email=a@b.io", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert await count_leads(db) == before


async def test_a_json_array_instead_of_an_object_is_422(api, db):
    before = await count_leads(db)
    response = api.post("/api/v1/leads", json=[lead_payload()])
    assert response.status_code == 422
    assert await count_leads(db) == before


async def test_an_overlong_idempotency_key_is_422_naming_the_header(api, db):
    before = await count_leads(db)
    response = api.post("/api/v1/leads", json=lead_payload(), headers={"Idempotency-Key": "k" * 256})
    assert response.status_code == 422
    detail = response.json()["error"]["details"][0]
    assert detail["location"] == "header" and detail["field"] == "Idempotency-Key"
    assert await count_leads(db) == before


def test_an_unknown_route_is_404_in_the_error_shape(api):
    response = api.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
