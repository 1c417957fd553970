"""The demo page shows the session's times and flushes the session (over HTTP, in process)."""

from __future__ import annotations

import re

import httpx
import pytest

from koasession.demo import build_app
from koasession.diagnose import keygen
from koasession.stores import MemoryStore


def _token(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


@pytest.mark.parametrize("store", [None, MemoryStore()], ids=["cookie", "memory"])
async def test_demo_shows_times_and_starts_over(store: MemoryStore | None) -> None:
    app = build_app(store, keys=[keygen()])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
        first = await client.get("/")
        assert re.search(r'id="created">\d{4}-\d\d-\d\d \d\d:\d\d UTC<', first.text)
        assert re.search(r'id="expires">\d{4}-\d\d-\d\d \d\d:\d\d UTC \(in 1 day\)<', first.text)
        second = await client.get("/")
        assert 'id="views">2<' in second.text
        old_id = re.search(r'id="sid">([^<]+)<', second.text)

        flushed = await client.post(
            "/flush", data={"csrf_token": _token(second.text)}, follow_redirects=False
        )
        assert flushed.status_code == 303
        again = await client.get("/")
        assert 'id="views">1<' in again.text  # a new, empty session
        if store is not None:
            assert old_id is not None
            assert old_id.group(1) not in again.text  # and a new id
