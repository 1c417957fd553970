"""Litestar with koasession: ``request.session``, ``set_session()`` and ``clear_session()``.

``request.set_session({...})`` replaces the session data (koa's ``ctx.session = {...}``) and
``request.clear_session()`` removes the session (koa's ``ctx.session = null``): the cookies
expire. ``request.session`` is the koasession Session, with ``regenerate()`` and the rest.
``typed_session(Cart)`` gives a handler the session as a pydantic model and writes its changes
back; ``LoginRequired("user")`` answers 401 without a login and, as a plugin, declares the session
cookie in the OpenAPI schema (``/schema``).

Run: ``uvicorn examples.litestar_app:app`` (set ``KOASESSION_KEY``, e.g. to the output of
``koasession keygen``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Litestar, Request, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from pydantic import BaseModel

from koasession import Session, keys_from_env_or_random
from koasession.integrations.litestar import LitestarSessionMiddleware, LoginRequired, typed_session

# Without KOASESSION_KEY: a random key per start and a warning (sessions end at restart).
KEYS = keys_from_env_or_random(program=__name__)


@dataclass
class Login:
    """The login form."""

    user: str
    remember: bool = False


class Item(BaseModel):
    """An item to put in the cart."""

    name: str


class Cart(BaseModel):
    """The cart, kept in the session's ``cart_items`` key (every field has a default)."""

    cart_items: list[str] = []


#: ``session["user"]`` or a 401; as a plugin, the session cookie in the OpenAPI schema.
login_required = LoginRequired("user")


def session_of(request: Request[Any, Any, Any]) -> Session:
    """``request.session`` typed as the koasession :class:`Session` it is."""
    session: object = request.session
    assert isinstance(session, Session)
    return session


@get("/")
async def home(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Count this browser's views."""
    views = request.session.get("views", 0) + 1
    request.session["views"] = views
    return {"views": views, "user": request.session.get("user")}


@post("/login", status_code=200)
async def login(request: Request[Any, Any, Any], data: JSONBody[Login]) -> dict[str, Any]:
    """Log in: replace the data with the user's, then re-issue it under a new signature/id."""
    request.set_session({"user": data.user})  # koa: ctx.session = {user}
    session = session_of(request)
    if data.remember:
        session.max_age = 30 * 86400
    await session.regenerate()
    return {"user": data.user}


@post("/logout", status_code=200)
async def logout(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Log out: koa's ``ctx.session = null``."""
    request.clear_session()
    return {"user": None}


@post("/cart", dependencies={"cart": typed_session(Cart)}, status_code=200)
async def add_to_cart(data: JSONBody[Item], cart: NamedDependency[Cart]) -> Cart:
    """Add an item; the changed model is written back to the session after the handler."""
    cart.cart_items.append(data.name)
    return cart


@get(
    "/me",
    dependencies={"user": login_required.dependency, "cart": typed_session(Cart)},
    security=login_required.security,
)
async def me(user: NamedDependency[str], cart: NamedDependency[Cart]) -> dict[str, Any]:
    """The logged-in user and their cart; 401 without a login."""
    return {"user": user, "cart": cart.cart_items}


litestar_app = Litestar(
    route_handlers=[home, login, logout, add_to_cart, me], plugins=[login_required]
)
app = LitestarSessionMiddleware(litestar_app, keys=KEYS)
