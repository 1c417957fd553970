"""Stores live with the app, not with one event loop (issue 9 §2).

A store made once, at import time, must keep working when the event loop changes (successive
``TestClient`` blocks, ``asyncio.run`` twice, pytest-asyncio's per-test loops), must survive
``close()`` (an app's shutdown) by reconnecting, and must never keep the process alive: a script
that forgets to close it exits, and ``koasession demo`` stops on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from koasession import SessionMiddleware

from .conftest import DATABASE_URL, MYSQL_URL, RUN_ID, unavailable

pytestmark = pytest.mark.timeout(120)

SRC = str(Path(__file__).resolve().parents[2] / "src")
KEYS = ["C-bWnhOFnTTIieFKiJeWfMZAQ8TTtERVA7VgYs_qYxM"]
STORE_KINDS = ["memory", "sqlite", "postgres", "mysql"]
SERVER_KINDS = {"postgres": "database_url", "mysql": "mysql_url"}
_tables = itertools.count()


@pytest.fixture(params=STORE_KINDS)
def store_url(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(store URL, constructor options) for each store kind this file covers."""
    kind: str = request.param
    if kind == "memory":
        yield "memory://", {}
    elif kind == "sqlite":
        yield f"sqlite:///{tmp_path}/lifecycle.db", {}
    else:
        url = str(request.getfixturevalue(SERVER_KINDS[kind]))  # skips when the server is down
        table = f"ks_life_{RUN_ID}_{next(_tables)}"
        yield url, {"table": table}
        from koasession.stores import store_from_url

        async def drop() -> None:
            async with store_from_url(url, table=table) as store:
                await store.drop_table()

        asyncio.run(drop())


def counter_app(store: Any) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def inc(request: Request) -> JSONResponse:
        request.session["views"] = request.session.get("views", 0) + 1
        return JSONResponse({"views": request.session["views"]})

    return SessionMiddleware(
        Starlette(routes=[Route("/", inc)]), keys=KEYS, store=store, allow_weak_keys=True
    )


# -- one store, several event loops ----------------------------------------------------------


def test_three_test_client_blocks_share_one_module_level_store(
    store_url: tuple[str, dict[str, Any]],
) -> None:
    from starlette.testclient import TestClient

    from koasession.stores import store_from_url

    url, options = store_url
    store = store_from_url(url, **options)  # made outside any event loop, like a module global
    app = counter_app(store)
    cookies: dict[str, str] = {}
    views = []
    for block in range(3):
        # Each block runs the app in a new event loop (and closes it at the end).
        with TestClient(app) as client:
            for _ in range(2):
                client.cookies.clear()  # the browser's cookies are the ones kept below
                header = "; ".join(f"{k}={v}" for k, v in cookies.items())
                response = client.get("/", headers={"cookie": header} if header else {})
                assert response.status_code == 200, response.text
                views.append(response.json()["views"])
                for line in response.headers.get_list("set-cookie"):
                    name, _, rest = line.partition("=")
                    cookies[name] = rest.split(";", 1)[0]
            if block == 1:
                # What an app's shutdown does; the store must reconnect in the next block.
                client.portal.call(store.close)
    assert views == [1, 2, 3, 4, 5, 6]  # the data persisted across the blocks


def test_one_store_across_asyncio_run_calls(store_url: tuple[str, dict[str, Any]]) -> None:
    from koasession.stores import store_from_url

    url, options = store_url
    store = store_from_url(url, **options)

    async def write() -> None:
        await store.set("across-loops", {"v": 1}, 60)

    async def read() -> Any:
        return await store.get("across-loops")

    asyncio.run(write())
    assert asyncio.run(read()) == {"v": 1}
    assert asyncio.run(read()) == {"v": 1}
    asyncio.run(store.close())
    assert asyncio.run(read()) == {"v": 1}  # close() released the connection, not the store
    asyncio.run(store.close())


# -- nothing keeps the process alive -----------------------------------------------------------

_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    from koasession.stores import store_from_url

    store = store_from_url(sys.argv[1], **json.loads(sys.argv[2]))

    async def main(i):
        await store.set(f"script-{i}", {"i": i}, 60)
        assert await store.get(f"script-{i}") == {"i": i}

    asyncio.run(main(1))
    asyncio.run(main(2))
    print("done", flush=True)
    """
)


def test_a_script_that_never_closes_its_store_exits(
    store_url: tuple[str, dict[str, Any]],
) -> None:
    import json

    url, options = store_url
    proc = subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, url, json.dumps(options)],
        env={**os.environ, "PYTHONPATH": SRC},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == b"done", proc.stderr.read() if proc.stderr else b""
        proc.wait(timeout=5)  # after its last line, the interpreter must exit by itself
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            pytest.fail(f"the demo exited early ({proc.returncode}): {err[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail("the demo did not start serving")


@pytest.mark.parametrize("kind", ["sqlite", "postgres", "mysql", "memory"])
def test_demo_exits_on_sigint(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path}/demo.db"
    elif kind in SERVER_KINDS:
        url = str(request.getfixturevalue(SERVER_KINDS[kind]))
    else:
        url = "memory://"
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "koasession", "demo", "--port", str(port), "--store", url],
        env={**os.environ, "PYTHONPATH": SRC},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for_port(port, proc)
        # A request, so that the store has opened its connection (and its worker thread).
        response = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert response.status_code == 200
        assert "set-cookie" in response.headers
        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        proc.wait(timeout=5)
        assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- pytest-asyncio: a new event loop for every test -------------------------------------------

_MODULE_STORES: dict[str, Any] = {}


def _module_store(kind: str) -> Any:
    """One store per kind for the whole module, made outside any event loop."""
    if kind not in _MODULE_STORES:
        from koasession.stores.mysql import MySQLStore
        from koasession.stores.postgres import PostgresStore
        from koasession.stores.sqlite import SQLiteStore

        if kind == "postgres":
            _MODULE_STORES[kind] = PostgresStore(DATABASE_URL, table=f"ks_module_{RUN_ID}")
        elif kind == "mysql":
            _MODULE_STORES[kind] = MySQLStore(MYSQL_URL, table=f"ks_module_{RUN_ID}")
        else:
            _MODULE_STORES[kind] = SQLiteStore(Path(tempfile.mkdtemp()) / "module.db")
    return _MODULE_STORES[kind]


@pytest.fixture(scope="module", autouse=True)
def _drop_module_stores() -> Iterator[None]:
    yield
    for kind in SERVER_KINDS:
        store = _MODULE_STORES.pop(kind, None)
        if store is not None:
            asyncio.run(_drop_and_close(store))
    sqlite = _MODULE_STORES.pop("sqlite", None)
    if sqlite is not None:
        asyncio.run(sqlite.close())
        shutil.rmtree(Path(sqlite.path).parent, ignore_errors=True)


async def _drop_and_close(store: Any) -> None:
    await store.drop_table()
    await store.close()


@pytest.mark.parametrize("kind", ["postgres", "mysql", "sqlite"])
@pytest.mark.parametrize("round_", [1, 2, 3])
async def test_module_level_store_in_per_test_event_loops(
    kind: str, round_: int, postgres_available: str | None, mysql_available: str | None
) -> None:
    reason = {"postgres": postgres_available, "mysql": mysql_available}.get(kind)
    if reason:
        unavailable(reason)
    store = _module_store(kind)
    key = f"per-test-{round_}"
    assert await store.set(key, {"round": round_}, 60) is True
    assert await store.get(key) == {"round": round_}
