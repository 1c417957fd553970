"""protocols: the contract the engine keeps with what users plug in."""

from __future__ import annotations

from typing import Any

from koasession import MemoryStore, SessionContext
from koasession.protocols import ClosableStore, ExternalKey, HookContext, SessionData, Store
from koasession.stores import Store as StoresStore

from ._app import client, cookie_header, wrap


class RecordingStore:
    """A store that records the arguments the middleware passes."""

    def __init__(self) -> None:
        self.data: dict[str, SessionData] = {}
        self.calls: list[tuple[str, Any, HookContext]] = []

    async def get(
        self, key: str, max_age: float | str | None, *, rolling: bool, ctx: HookContext
    ) -> SessionData | None:
        self.calls.append(("get", max_age, ctx))
        return self.data.get(key)

    async def set(
        self,
        key: str,
        data: SessionData,
        max_age: float,
        *,
        rolling: bool,
        changed: bool,
        ctx: HookContext,
    ) -> bool:
        self.calls.append(("set", max_age, ctx))
        self.data[key] = data
        return True

    async def destroy(self, key: str, *, ctx: HookContext) -> None:
        self.data.pop(key, None)


def test_stores_module_reexports_the_protocol() -> None:
    assert StoresStore is Store
    assert isinstance(MemoryStore(), ClosableStore)
    assert isinstance(RecordingStore(), Store)
    assert not isinstance(object(), ExternalKey)


async def test_session_lifetime_reaches_get_as_the_string_and_set_as_seconds() -> None:
    store = RecordingStore()

    def count(scope: dict[str, Any]) -> int:
        session = scope["session"]
        session["n"] = session.get("n", 0) + 1
        n: int = session["n"]
        return n

    app = wrap(count, store=store, max_age="session", session_store_ttl=600)
    async with client(app) as http:
        first = await http.get("/")
        await http.get("/", headers={"cookie": cookie_header(first)})
    gets = [max_age for name, max_age, _ in store.calls if name == "get"]
    sets = [max_age for name, max_age, _ in store.calls if name == "set"]
    assert gets == ["session"]
    assert sets == [600, 600]
    assert all(isinstance(ctx, SessionContext) for _, _, ctx in store.calls)
