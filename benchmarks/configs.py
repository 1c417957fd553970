"""The middleware set-ups compared by the in-process harness."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from floor import Floor, PassThrough, orjson_codec
from harness import KEY, ASGIApp, Config, Scope
from parts import Parts

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
REDIS_PREFIX = "koasession-bench:"


async def redis_available() -> str | None:
    """``None`` when Redis answers at REDIS_URL, else the reason it cannot be used."""
    try:
        from redis.asyncio import Redis
    except ImportError:
        return "redis-py is not installed"
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        await asyncio.wait_for(client.ping(), 2)
    except Exception as exc:
        return f"no Redis at {REDIS_URL} ({exc.__class__.__name__})"
    finally:
        await client.aclose()
    return None


def koa_redis_store() -> Any:
    """koasession's RedisStore, or raise ImportError with the reason it is unavailable."""
    from koasession.stores.redis import RedisStore

    return RedisStore(REDIS_URL, key_prefix=REDIS_PREFIX)


def crypto_available() -> str | None:
    try:
        from koasession import SessionMiddleware

        SessionMiddleware(lambda s, r, se: None, keys=[KEY], encrypt=True)  # type: ignore[arg-type, return-value]
    except Exception as exc:
        return f"encrypt=True unavailable: {exc}"
    return None


async def _starsessions_load(scope: Scope) -> None:
    from starlette.requests import HTTPConnection
    from starsessions import load_session

    await load_session(HTTPConnection(scope))


def _koa(**options: Any) -> Any:
    from koasession import SessionMiddleware

    return lambda app: SessionMiddleware(app, keys=[KEY], **options)


#: Row names the targets and the quick mode refer to.
BARE = "bare app"
BASE = "koasession cookie sha256"
ENCRYPTED = "koasession encrypted"
MEMORY = "koasession MemoryStore"
REDIS = "koasession RedisStore"
STARLETTE = "Starlette SessionMiddleware"
STAR_REDIS = "starsessions RedisStore"
PASS_THROUGH = "pass-through middleware (wraps send)"
FLOOR = "floor: same wire work, minimal Python"
FLOOR_ORJSON = "floor with orjson"
PARTS = "koasession's parts, no engine"

#: ``--quick``: only these rows, only these scenarios (what the targets and the floor need).
QUICK = {
    BARE: ("untouched",),
    BASE: ("untouched", "counter"),
    ENCRYPTED: ("counter",),
    MEMORY: ("untouched", "counter"),
    STARLETTE: ("untouched", "counter"),
    PASS_THROUGH: ("untouched",),
    FLOOR: ("untouched", "counter"),
    FLOOR_ORJSON: ("counter",),
    PARTS: ("counter",),
}


def _quick(configs: list[Config]) -> list[Config]:
    out = []
    for config in configs:
        if config.name in QUICK:
            config.scenarios = QUICK[config.name]
            out.append(config)
    return out


def build_configs(redis_reason: str | None, quick: bool = False) -> tuple[list[Config], list[str]]:
    """Every configuration that can run here, and notes on the ones that cannot."""
    configs, notes = _build_all("not in --quick" if quick else redis_reason)
    return (_quick(configs) if quick else configs), notes


def _build_all(redis_reason: str | None) -> tuple[list[Config], list[str]]:
    from starlette.middleware.sessions import SessionMiddleware as StarletteSessions

    from koasession import MemoryStore

    notes: list[str] = []
    configs = [
        Config(BARE, "bare", lambda app: app, scenarios=("untouched",)),
        Config(
            PASS_THROUGH,
            "reference",
            PassThrough,  # type: ignore[arg-type]
            scenarios=("untouched",),
        ),
        Config(FLOOR, "reference", lambda app: Floor(app, KEY)),  # type: ignore[arg-type, return-value]
    ]
    codec = orjson_codec()
    if codec is not None:
        loads, dumps = codec
        configs.append(
            Config(
                FLOOR_ORJSON,
                "reference",
                lambda app: Floor(app, KEY, loads, dumps),  # type: ignore[arg-type, return-value]
            )
        )
    else:
        notes.append("floor with orjson skipped: orjson is not installed (pip install orjson)")
    configs += [
        Config(PARTS, "reference", lambda app: Parts(app, KEY)),  # type: ignore[arg-type, return-value]
        Config(BASE, "koasession", _koa()),
        Config("koasession cookie sha1", "koasession", _koa(algorithm="sha1")),
    ]
    reason = crypto_available()
    if reason is None:
        configs.append(Config("koasession encrypted", "koasession", _koa(encrypt=True)))
    else:
        notes.append(reason)
    configs.append(
        Config("koasession MemoryStore", "koasession", _koa(store=MemoryStore(max_entries=1000)))
    )
    if redis_reason is None:
        try:
            store = koa_redis_store()
        except Exception as exc:  # RedisStore missing or unfinished
            notes.append(f"koasession RedisStore skipped: {exc!r}")
        else:
            configs.append(
                Config("koasession RedisStore", "koasession", _koa(store=store), slow=True)
            )
    else:
        notes.append(f"Redis rows skipped: {redis_reason}")

    def starlette(app: ASGIApp) -> ASGIApp:
        return StarletteSessions(app, secret_key=KEY)  # type: ignore[arg-type, return-value]

    configs.append(Config("Starlette SessionMiddleware", "starlette", starlette))
    try:
        import starsessions
        from starsessions.stores.redis import RedisStore as StarRedis
    except ImportError as exc:
        notes.append(f"starsessions rows skipped: {exc}")
        return configs, notes

    def star(store_factory: Any) -> Any:
        # One store per set-up, shared by its scenario apps: the session primed through the
        # counter app must be there when the read and untouched apps look it up.
        store = store_factory()

        def wrap(app: ASGIApp) -> ASGIApp:
            return starsessions.SessionMiddleware(  # type: ignore[return-value]
                app,  # type: ignore[arg-type]
                store=store,
                lifetime=86400,
                cookie_https_only=False,
            )

        return wrap

    configs.append(
        Config(
            "starsessions CookieStore",
            "starsessions",
            star(lambda: starsessions.CookieStore(secret_key=KEY)),
            loader=_starsessions_load,
        )
    )
    configs.append(
        Config(
            "starsessions InMemoryStore",
            "starsessions",
            star(starsessions.InMemoryStore),
            loader=_starsessions_load,
        )
    )
    if redis_reason is None:
        from redis.asyncio import Redis

        configs.append(
            Config(
                "starsessions RedisStore",
                "starsessions",
                star(
                    lambda: StarRedis(
                        connection=Redis.from_url(REDIS_URL), prefix=REDIS_PREFIX + "star:"
                    )
                ),
                loader=_starsessions_load,
                slow=True,
            )
        )
    return configs, notes


#: Which competitor row each koasession row is compared with (same storage model).
COUNTERPARTS = {
    "koasession cookie sha256": ("Starlette SessionMiddleware", "starsessions CookieStore"),
    "koasession cookie sha1": ("Starlette SessionMiddleware", "starsessions CookieStore"),
    "koasession encrypted": ("Starlette SessionMiddleware", "starsessions CookieStore"),
    "koasession MemoryStore": ("Starlette SessionMiddleware", "starsessions InMemoryStore"),
    "koasession RedisStore": ("Starlette SessionMiddleware", "starsessions RedisStore"),
}
