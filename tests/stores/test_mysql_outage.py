"""MySQLStore when the server drops its connections (a restart, a failover, ``KILL``).

The store's pooled connections are killed on the shared server, identified by a user created
for this test alone (nobody else's connections are touched). Requests must not fail on the dead
connections: reads are retried once on a fresh one, and the pool replaces the others.

The kill runs while the store's event loop is blocked, as when a server goes away between two
requests of a busy process: the pool then hands out a connection whose socket is already
closed, and only the retry saves the read.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from koasession.stores.mysql import MySQLStore, describe_url

from .conftest import RUN_ID

pytestmark = pytest.mark.timeout(60)


class Ctx:
    def __init__(self, loaded_key: str | None = None) -> None:
        self.loaded_key = loaded_key


async def _admin(url: str, sql: str, *args: Any) -> list[Any]:
    import asyncmy

    kwargs, _, _ = describe_url(url)
    conn = await asyncmy.connect(**kwargs, autocommit=True)
    try:
        async with conn.cursor() as cur:
            await cur.execute(sql, args or None)
            return list(await cur.fetchall())
    finally:
        conn.close()


@pytest.fixture
async def own_user(mysql_url: str) -> AsyncIterator[str]:
    """A URL for a user of this test alone, so that killing its connections disturbs nobody."""
    user = f"ks_out_{RUN_ID}"
    database = describe_url(mysql_url)[0]["database"]
    await _admin(mysql_url, f"CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY 'pw-{RUN_ID}'")
    await _admin(mysql_url, f"GRANT ALL PRIVILEGES ON `{database}`.* TO '{user}'@'%'")
    host, port = describe_url(mysql_url)[0]["host"], describe_url(mysql_url)[0]["port"]
    try:
        yield f"mysql://{user}:pw-{RUN_ID}@{host}:{port}/{database}"
    finally:
        await _admin(mysql_url, f"DROP USER IF EXISTS '{user}'@'%'")


def _kill_connections_of(mysql_url: str, user: str) -> int:
    """Kill every connection of ``user``, blocking the running event loop meanwhile."""
    killed: list[int] = []

    async def kill() -> None:
        rows = await _admin(
            mysql_url, "SELECT id FROM information_schema.processlist WHERE user = %s", user
        )
        for (thread,) in rows:
            await _admin(mysql_url, f"KILL CONNECTION {int(thread)}")
            killed.append(int(thread))

    worker = threading.Thread(target=asyncio.run, args=(kill(),))
    worker.start()
    worker.join()
    time.sleep(0.2)  # the server has closed the sockets; this loop has not noticed yet
    return len(killed)


async def test_requests_survive_killed_connections(mysql_url: str, own_user: str) -> None:
    user = own_user.split("//")[1].split(":")[0]
    store = MySQLStore(own_user, table=f"ks_outage_{RUN_ID}", pool_options={"minsize": 3})
    try:
        await store.set("outage-id", {"v": 1}, 60, ctx=Ctx())
        # Several connections in the pool, all idle.
        await asyncio.gather(*(store.get("outage-id") for _ in range(3)))
        for round_ in range(3):
            assert _kill_connections_of(mysql_url, user) >= 1
            assert await store.get("outage-id") == {"v": 1 + round_}
            assert await store.set("outage-id", {"v": 2 + round_}, 60, ctx=Ctx("outage-id"))
    finally:
        await store.drop_table()
        await store.close()
