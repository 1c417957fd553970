"""What the tests need from the machine: the servers' URLs, their probes, and the rule for a
missing server or tool.

Outside CI a missing server or tool skips the tests that need it, with the reason; under
``CI=true`` it fails them (``.ci/run`` installs and starts everything), so a CI run never passes
by skipping. Imported as ``_services`` (``tests/`` is on ``sys.path`` under pytest).
"""

from __future__ import annotations

import asyncio
import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def unavailable(reason: str) -> NoReturn:
    """Skip the test for ``reason``, or fail it under ``CI=true``."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: every test must run; .ci/run provides what they need)")
    pytest.skip(reason)


def require_module(name: str) -> ModuleType:
    """The module ``name`` (a test dependency in the dev extra), else :func:`unavailable`:
    ``pytest.importorskip`` would skip under CI too."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        unavailable(f"{name} is not installed (pip install -e '.[dev]'): {exc}")


def redis_problem(url: str = REDIS_URL) -> str | None:
    """``None`` when Redis at ``url`` answers PING, else why not."""
    try:
        import redis
    except ImportError:
        return "the redis package is not installed (pip install 'koasession[redis]')"
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except Exception as exc:
        return f"Redis unreachable at {url}: {exc}"
    finally:
        client.close()
    return None


def postgres_problem(url: str = DATABASE_URL) -> str | None:
    """``None`` when PostgreSQL at ``url`` accepts a connection, else why not."""
    try:
        import asyncpg  # type: ignore[import-untyped]
    except ImportError:
        return "asyncpg is not installed (pip install 'koasession[postgres]')"

    async def probe() -> None:
        conn = await asyncpg.connect(url, timeout=3)
        await conn.close()

    try:
        asyncio.run(probe())
    except Exception as exc:
        return f"PostgreSQL unreachable at {url}: {exc}"
    return None


def mysql_problem(url: str = MYSQL_URL) -> str | None:
    """``None`` when MySQL/MariaDB at ``url`` accepts a connection, else why not."""
    try:
        import asyncmy  # type: ignore[import-untyped]
    except ImportError:
        return "asyncmy is not installed (pip install 'koasession[mysql]')"
    from koasession.stores.mysql import describe_url

    async def probe() -> None:
        args, _, _ = describe_url(url)
        conn = await asyncmy.connect(**args, connect_timeout=3)
        conn.close()

    try:
        asyncio.run(probe())
    except Exception as exc:
        return f"MySQL/MariaDB unreachable at {url}: {exc}"
    return None


def require_redis(url: str = REDIS_URL) -> str:
    """``url``, once Redis answers there (else :func:`unavailable`)."""
    problem = redis_problem(url)
    if problem:
        unavailable(problem)
    return url


def require_postgres(url: str = DATABASE_URL) -> str:
    """``url``, once PostgreSQL answers there (else :func:`unavailable`)."""
    problem = postgres_problem(url)
    if problem:
        unavailable(problem)
    return url
