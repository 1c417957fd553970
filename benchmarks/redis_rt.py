"""Count Redis round trips per request in store mode, by wrapping the client's execute_command.

Commands issued before the handler runs are the load; those issued after are the save. The
wrapper counts what the store asks for, which is what reaches the server as one round trip each
(no pipelines are used; a retry after a connection error would not be counted).
"""

from __future__ import annotations

import asyncio
from typing import Any

from configs import koa_redis_store
from harness import KEY, Scope, cookie_from, make_scope, receive


async def _run(store: Any) -> list[dict[str, Any]]:
    from koasession import SessionMiddleware

    log: list[str] = []
    marks: list[int] = []
    client = store.client
    original = client.execute_command

    async def counting(*args: Any, **kwargs: Any) -> Any:
        log.append(str(args[0]).upper())
        return await original(*args, **kwargs)

    client.execute_command = counting

    def app_for(scenario: str, lazy: bool = False) -> Any:
        async def app(scope: Scope, receive: Any, send: Any) -> None:
            marks.append(len(log))
            session = scope["session"]
            if scenario == "counter":
                session["views"] = session.get("views", 0) + 1
            elif scenario == "read":
                session.get("views", 0)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        return SessionMiddleware(app, keys=[KEY], store=store, lazy=lazy)

    async def request(
        scenario: str, cookie: str | None, lazy: bool = False
    ) -> tuple[list[str], list[str], Any]:
        sent: list[Any] = []

        async def send(message: Any) -> None:
            sent.append(message)

        log.clear()
        marks.clear()
        await app_for(scenario, lazy)(make_scope(cookie), receive, send)
        split = marks[0]
        return log[:split], log[split:], sent

    rows = []
    load, save, sent = await request("counter", None)
    rows.append({"case": "new session, counter write (no cookie)", "load": load, "save": save})
    cookie = cookie_from(sent)
    for scenario, label in (
        ("counter", "existing session, counter write"),
        ("read", "existing session, read only"),
        ("untouched", "existing session, untouched"),
    ):
        load, save, sent = await request(scenario, cookie)
        rows.append({"case": label, "load": load, "save": save})
        cookie = cookie_from(sent) or cookie
    # lazy=True: the store is read only when the handler awaits session.load(), so a request
    # that never looks at its session makes no round trip at all (issue 14).
    load, save, sent = await request("untouched", cookie, lazy=True)
    rows.append({"case": "existing session, untouched, lazy=True", "load": load, "save": save})
    client.execute_command = original
    return rows


def measure() -> list[dict[str, Any]]:
    async def main() -> list[dict[str, Any]]:
        store = koa_redis_store()
        try:
            return await _run(store)
        finally:
            await store.close()

    return asyncio.run(main())
