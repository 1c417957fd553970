"""Count Redis round trips per request in store mode, by wrapping redis-py's connections.

Commands issued before the handler runs are the load; those issued after are the save. Every
write on a connection (``send_packed_command``) is one round trip, named by its first command:
this sees what the store sends whether through the client or on connections of its own, and
health-check PINGs and retries too (a pipeline would count once, as its one round trip).
"""

from __future__ import annotations

import asyncio
from typing import Any

from configs import koa_redis_store
from harness import KEY, Scope, cookie_from, make_scope, receive


async def _run(store: Any) -> list[dict[str, Any]]:
    from redis.asyncio.connection import AbstractConnection

    from koasession import SessionMiddleware

    log: list[str] = []
    marks: list[int] = []
    original = AbstractConnection.send_packed_command

    async def counting(self: Any, command: Any, *args: Any, **kwargs: Any) -> Any:
        packed = command if isinstance(command, (bytes, str)) else b"".join(command)
        packed = packed.encode() if isinstance(packed, str) else packed
        # b"*<n>\r\n$<len>\r\n<NAME>\r\n...": the third line is the command's name.
        log.append(packed.split(b"\r\n", 3)[2].decode().upper())
        return await original(self, command, *args, **kwargs)

    AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]

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
    # A first request opens the connection: its handshake (HELLO, CLIENT SETINFO) is paid once
    # per connection, not per request, so it is left out.
    await request("counter", None)
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
    AbstractConnection.send_packed_command = original  # type: ignore[method-assign]
    return rows


def measure() -> list[dict[str, Any]]:
    async def main() -> list[dict[str, Any]]:
        store = koa_redis_store()
        try:
            return await _run(store)
        finally:
            await store.close()

    return asyncio.run(main())
