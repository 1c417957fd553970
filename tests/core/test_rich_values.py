"""``serializer=TaggedSerializer()``: rich values round-trip through the cookie."""

from __future__ import annotations

import datetime
import decimal
import uuid
from typing import Any

from koasession.serializers import TaggedSerializer

from ._app import client, cookie_header, cookie_pairs, decode_value, signed_cookie, wrap

RICH: dict[str, Any] = {
    "when": datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.timezone.utc),
    "day": datetime.date(2024, 5, 2),
    "id": uuid.UUID("5f0c7a9e-8d1b-4c3e-9a2f-6b7d8e9f0a1b"),
    "price": decimal.Decimal("19.99"),
    "blob": b"\x00\xffbytes",
    "tags": {"a", "b"},
    "pair": (1, "two"),
}


def rich_app(**options: Any) -> Any:
    def handler(scope: dict[str, Any]) -> Any:
        session = scope["session"]
        if scope["path"] == "/set":
            session.update(RICH)
            return None
        if scope["path"] == "/touch":
            session["pair"] = (1, "two")  # equal to what was loaded: not a change
            return None
        return {
            key: [type(value).__name__, value == RICH.get(key)] for key, value in session.items()
        }

    return wrap(handler, serializer=TaggedSerializer(), **options)


async def test_rich_values_round_trip_in_cookie_mode() -> None:
    app = rich_app()
    async with client(app) as c:
        first = await c.get("/set")
        stored = decode_value(cookie_pairs(first)["koa.sess"])
        assert stored["day"] == {" da": "2024-05-02"}  # tagged JSON in the cookie
        back = await c.get("/get", headers={"cookie": cookie_header(first)})
    assert back.json() == {key: [type(value).__name__, True] for key, value in RICH.items()}


async def test_an_equal_rich_value_is_not_a_change() -> None:
    app = rich_app()
    async with client(app) as c:
        first = await c.get("/set")
        again = await c.get("/touch", headers={"cookie": cookie_header(first)})
    assert again.headers.get_list("set-cookie") == []


async def test_encrypted_cookies_carry_rich_values() -> None:
    app = rich_app(encrypt=True)
    async with client(app) as c:
        first = await c.get("/set")
        back = await c.get("/get", headers={"cookie": cookie_header(first)})
    assert back.json() == {key: [type(value).__name__, True] for key, value in RICH.items()}


async def test_a_malformed_tag_is_an_invalid_session() -> None:
    events: list[tuple[str, Any]] = []
    app = rich_app(on_event=lambda name, payload: events.append((name, payload)))
    async with client(app) as c:
        response = await c.get("/get", headers={"cookie": signed_cookie({"d": {" dt": "nope"}})})
    assert response.json() == {}
    assert [name for name, _ in events] == ["invalid"]
