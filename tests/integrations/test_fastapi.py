"""FastAPI: ``SessionDep`` and ``get_session_dependency`` (examples/fastapi_app.py, store mode)."""

from __future__ import annotations

import warnings
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, WebSocket

from koasession import MemoryStore, Session, SessionMiddleware, testing
from koasession.integrations.fastapi import SessionDep, get_session_dependency, session_dependency

from ._support import check_counter, check_login_logout, client, load_example

KEY = "IIl7RT1znY9NZV9yiW_2fC5-U6cvAcx8xufPxlhXlIU"
# Module level: FastAPI resolves string annotations in the function's globals.
AdminSession = Annotated[Session, Depends(get_session_dependency("admin"))]


async def test_counter() -> None:
    http = await check_counter(load_example("fastapi_app").app)
    await http.aclose()


async def test_login_regenerate_and_logout() -> None:
    await check_login_logout(load_example("fastapi_app").app)


async def test_regenerate_moves_the_data_to_a_new_store_id() -> None:
    example = load_example("fastapi_app")
    app, store = example.app, example.store
    async with client(app) as http:
        first = await http.get("/")
        old_id = testing.response_session_id(first, app)
        assert old_id is not None and first.json()["id"] == old_id
        assert await store.get(old_id) is not None
        login = await http.post("/login", json={"user": "ada"})
        new_id = testing.response_session_id(login, app)
        assert new_id is not None and new_id != old_id and login.json()["id"] == new_id
        assert await store.get(old_id) is None  # the pre-login id is dead (no fixation)
        assert await testing.aread_session(login, app) == {"views": 1, "user": "ada"}
        logout = await http.post("/logout")
        assert await store.get(new_id) is None
        assert testing.session_removed(logout, app)


async def test_aset_session_writes_the_store() -> None:
    example = load_example("fastapi_app")
    app = example.app
    async with client(app) as http:
        await testing.aset_session(http, app, {"views": 9, "user": "grace"})
        response = await http.get("/")
    assert response.json()["views"] == 10
    assert response.json()["user"] == "grace"
    assert len(example.store) == 1


async def test_dependency_type_and_scope_key() -> None:
    api = FastAPI()

    @api.get("/")
    async def both(session: SessionDep, admin: AdminSession) -> dict[str, Any]:
        assert isinstance(session, Session) and isinstance(admin, Session)
        assert session is not admin
        session["user"] = "ada"
        admin["level"] = 3
        return {}

    inner = SessionMiddleware(api, keys=[KEY], key="admin.sess", scope_key="admin")
    app = SessionMiddleware(inner, keys=[KEY], store=MemoryStore())
    async with client(app) as http:
        response = await http.get("/")
    assert response.status_code == 200
    assert testing.read_session(response, app, scope_key="admin") == {"level": 3}
    assert await testing.aread_session(response, app) == {"user": "ada"}


async def test_add_middleware_declaration_is_found() -> None:
    api = FastAPI()

    @api.get("/")
    async def home(session: SessionDep) -> dict[str, Any]:
        session["views"] = session.get("views", 0) + 1
        return {"views": session["views"]}

    api.add_middleware(SessionMiddleware, keys=[KEY])
    async with client(api) as http:
        testing.set_session(http, api, {"views": 4})
        response = await http.get("/")
    assert response.json() == {"views": 5}
    assert testing.read_session(response, api) == {"views": 5}


async def test_missing_middleware_is_explained() -> None:
    api = FastAPI()

    @api.get("/")
    async def home(session: SessionDep) -> dict[str, Any]:  # pragma: no cover
        return {}

    async with client(api) as http:
        with pytest.raises(RuntimeError, match="add SessionMiddleware"):
            await http.get("/")


def test_session_dependency_names() -> None:
    dependency = get_session_dependency("other")
    assert dependency.__name__ == "session_dependency_other"
    assert callable(session_dependency)


def test_websocket_reads_the_session() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Starlette 1.x nudges towards httpx2
        from starlette.testclient import TestClient

    api = FastAPI()

    @api.websocket("/ws")
    async def ws(websocket: WebSocket, session: SessionDep) -> None:
        await websocket.accept()
        await websocket.send_json({"user": session.get("user")})
        await websocket.close()

    app = SessionMiddleware(api, keys=[KEY])
    with TestClient(app) as http:
        testing.set_session(http, app, {"user": "ada"})
        with http.websocket_connect("/ws") as socket:
            assert socket.receive_json() == {"user": "ada"}


async def test_session_dep_loads_a_lazy_store_session_only_where_asked() -> None:
    store = MemoryStore()
    reads: list[str] = []
    app = FastAPI()

    @app.get("/")
    async def home(session: SessionDep) -> dict[str, Any]:
        session["n"] = session.get("n", 0) + 1
        return {"n": session["n"]}

    @app.get("/plain")
    async def plain() -> dict[str, Any]:
        return {}

    async def get_spy(key: str, *args: Any, **kw: Any) -> Any:
        reads.append(key)
        return await MemoryStore.get(store, key, *args, **kw)

    store.get = get_spy  # type: ignore[method-assign]
    wrapped = SessionMiddleware(app, keys=[KEY], store=store, lazy=True)
    async with client(wrapped) as http:
        assert (await http.get("/")).json() == {"n": 1}
        assert (await http.get("/plain")).status_code == 200
        assert len(reads) == 0  # the first request started a new session, /plain never loads
        assert (await http.get("/")).json() == {"n": 2}
        assert len(reads) == 1
