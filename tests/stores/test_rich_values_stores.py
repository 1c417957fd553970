"""``serializer=TaggedSerializer()`` in store mode, on every store."""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from typing import Any

import httpx
import pytest

from koasession import SessionMiddleware
from koasession.serializers import TaggedSerializer

from .conftest import Harness

pytestmark = pytest.mark.timeout(90)

KEYS = ["Rt6Yw2Bn8Kc4Xz0Qm7Vf3Lp9Hs5Dj1Ga6Ue8Io2Nq4"]
RICH: dict[str, Any] = {
    "when": datetime.datetime(2024, 5, 1, 12, 30),
    "day": datetime.date(2024, 5, 2),
    "id": uuid.UUID("5f0c7a9e-8d1b-4c3e-9a2f-6b7d8e9f0a1b"),
    "price": decimal.Decimal("0.10"),
    "blob": b"\x01\x02",
    "tags": {3, 1, 2},
    "pair": ("x", 2),
}


def app_for(store: Any, **options: Any) -> SessionMiddleware:
    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        session = scope["session"]
        if scope["path"] == "/set":
            session.update(RICH)
        body = {k: [type(v).__name__, v == RICH.get(k)] for k, v in session.items()}
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})

    return SessionMiddleware(
        inner, keys=KEYS, store=store, serializer=TaggedSerializer(), **options
    )


async def get(app: Any, path: str, cookie: str | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path, headers={"cookie": cookie} if cookie else {})


@pytest.mark.parametrize("encrypt", [False, True])
async def test_rich_values_round_trip_in_store_mode(harness: Harness, encrypt: bool) -> None:
    store = await harness.make()
    app = app_for(store, encrypt=encrypt)
    first = await get(app, "/set")
    cookie = "; ".join(line.split(";", 1)[0] for line in first.headers.get_list("set-cookie"))
    if not encrypt:
        assert '" u"' in json.dumps(await harness.dump(store)).replace("\\", "")
    back = await get(app, "/get", cookie)
    assert back.json() == {k: [type(v).__name__, True] for k, v in RICH.items()}
    assert back.headers.get_list("set-cookie") == []  # loaded equal: nothing to save
