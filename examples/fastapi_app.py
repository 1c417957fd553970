"""FastAPI with koasession in store mode: ``SessionDep``, ``TypedSession`` and a login check.

The session data lives in a server-side store (an in-memory one here; use RedisStore,
PostgresStore or SQLiteStore in production) and the cookie holds only a signed id.
``TypedSession[Cart]`` reads the session as a pydantic model and writes its changes back;
``CurrentUser`` answers 401 without a login, and ``/docs`` shows the session cookie as the
security scheme of ``/me``.

Run: ``uvicorn examples.fastapi_app:app`` (set ``KOASESSION_KEY``, e.g. to the output of
``koasession keygen``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI
from pydantic import BaseModel

from koasession import MemoryStore, SessionMiddleware, keys_from_env_or_random
from koasession.integrations.fastapi import SessionDep, TypedSession, login_required

# Without KOASESSION_KEY: a random key per start and a warning (sessions end at restart).
KEYS = keys_from_env_or_random(program=__name__)
store = MemoryStore()

api = FastAPI()


class Login(BaseModel):
    """The login form."""

    user: str
    remember: bool = False


class Item(BaseModel):
    """An item to put in the cart."""

    name: str


class Cart(BaseModel):
    """The cart, kept in the session's ``cart_items`` key (every field has a default)."""

    cart_items: list[str] = []


#: ``session["user"]``, or a 401 ``{"detail": "Not logged in"}``.
CurrentUser = Annotated[str, Depends(login_required("user"))]


@api.get("/")
async def home(session: SessionDep) -> dict[str, Any]:
    """Count this browser's views."""
    session["views"] = session.get("views", 0) + 1
    return {"views": session["views"], "user": session.get("user"), "id": session.external_key}


@api.post("/login")
async def login(form: Login, session: SessionDep) -> dict[str, Any]:
    """Log in under a new session id (the old one is destroyed in the store)."""
    session["user"] = form.user
    if form.remember:
        session.max_age = 30 * 86400
    await session.regenerate()
    return {"user": form.user, "id": session.external_key}


@api.post("/logout")
async def logout(session: SessionDep) -> dict[str, Any]:
    """Log out: the store entry is destroyed and the cookies expire."""
    session.destroy()
    return {"user": None}


@api.post("/cart")
async def add_to_cart(item: Item, cart: TypedSession[Cart]) -> Cart:
    """Add an item; the changed model is written back to the session after the handler."""
    cart.cart_items.append(item.name)
    return cart


@api.get("/me")
async def me(user: CurrentUser, cart: TypedSession[Cart]) -> dict[str, Any]:
    """The logged-in user and their cart; 401 without a login."""
    return {"user": user, "cart": cart.cart_items}


# ``api.add_middleware(SessionMiddleware, keys=KEYS, store=store)`` does the same and
# type-checks too (the options are typed keywords); wrapping keeps ``app`` a plain ASGI callable
# whatever FastAPI builds inside.
app = SessionMiddleware(api, keys=KEYS, store=store)
