"""Every store writes the package's one JSON policy (``JSON.stringify``'s bytes), through the
middleware, for each store kind: lone surrogates are escaped instead of failing the store's
UTF-8 encoding (issue 9 §7), and data JSON cannot hold is the application's error, raised
before any store call, never a 503."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from koasession import SessionMiddleware

from .conftest import Harness

pytestmark = pytest.mark.timeout(90)

KEYS = ["7Ed4WqJxFir995_ZnADWJgXSVgFAIsf_SdC_Sh1F894"]

#: Data whose JSON differs between Python's json module and JSON.stringify in every way that
#: matters: index-like keys (ordered first), an integral float, an exponent, a lone surrogate.
DATA: dict[str, Any] = {"s": "a\ud800b😀", "10": 1, "2": 2.0, "f": 1e-7}
#: What Node writes for it (JSON.stringify, checked with node 20).
JS_JSON = '{"2":2,"10":1,"s":"a\\ud800b😀","f":1e-7,'


def make_app(store: Any, value: Any) -> tuple[SessionMiddleware, list[str]]:
    events: list[str] = []

    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        session = scope["session"]
        if scope["path"] == "/write":
            session.update(value)
            body = b"{}"
        else:
            body = json.dumps(dict(session)).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    app = SessionMiddleware(
        inner, keys=KEYS, store=store, on_event=lambda name, payload: events.append(name)
    )
    return app, events


async def get(app: Any, path: str, cookie: str | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path, headers={"cookie": cookie} if cookie else {})


def cookie_of(response: httpx.Response) -> str:
    return "; ".join(line.split(";", 1)[0] for line in response.headers.get_list("set-cookie"))


async def test_store_bytes_are_json_stringify_bytes_and_lone_surrogates_round_trip(
    harness: Harness,
) -> None:
    store = await harness.make()
    app, events = make_app(store, DATA)
    written = await get(app, "/write")
    assert written.status_code == 200, written.text
    assert "store_error" not in events
    (raw,) = (await harness.dump(store)).values()
    assert JS_JSON in raw

    read = await get(app, "/read", cookie_of(written))
    assert read.status_code == 200
    # Python reads back what JavaScript would: the integral float is an int now.
    assert json.loads(read.text) == {"2": 2, "10": 1, "s": "a\ud800b😀", "f": 1e-7}
    assert events == []


@pytest.mark.parametrize(
    ("value", "error", "where"),
    [
        ({"tags": {"a", "b"}}, TypeError, "session['tags']"),
        ({"cart": {"items": [1, object()]}}, TypeError, "session['cart']['items'][1]"),
        ({"ratio": float("nan")}, ValueError, "session['ratio']"),
    ],
)
async def test_non_json_data_is_the_applications_error_before_any_store_call(
    harness: Harness, value: dict[str, Any], error: type[Exception], where: str
) -> None:
    store = await harness.make()
    harness.forbid_server(store)  # any store call would fail the test with AssertionError
    app, events = make_app(store, value)
    with pytest.raises(error, match=r"cannot be stored as JSON") as caught:
        await get(app, "/write")
    assert str(caught.value).startswith(where + " ")
    assert events == []
