"""Memory per stored session in MemoryStore (tracemalloc), next to starsessions' InMemoryStore."""

from __future__ import annotations

import asyncio
import gc
import json
import secrets
import time
import tracemalloc
from typing import Any

from koasession import MemoryStore

# What the counter stores: the data plus the metadata the middleware adds.
DATA = {"views": 12, "user": "user-000042"}


def _payload() -> dict[str, Any]:
    now_ms = int(time.time() * 1000)
    return {**DATA, "_expire": now_ms + 86_400_000, "_maxAge": 86_400_000}


async def _koa(n: int) -> tuple[float, int]:
    store = MemoryStore(max_entries=n + 1)
    ids = [secrets.token_urlsafe(32) for _ in range(n)]  # the default genid's ids
    payload = _payload()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for key in ids:
            await store.set(key, payload, 86400)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(store) == n
    return (after - before) / n, len(json.dumps(payload, separators=(",", ":")))


async def _starsessions(n: int) -> float | None:
    try:
        from starsessions import InMemoryStore, JsonSerializer
    except ImportError:
        return None
    store = InMemoryStore()
    serializer = JsonSerializer()
    ids = [secrets.token_hex(16) for _ in range(n)]  # starsessions' own id format
    payload = {**DATA, "__metadata__": {"lifetime": 86400, "created": 1.0, "last_access": 1.0}}
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for key in ids:
            await store.write(key, serializer.serialize(payload), 86400, 86400)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return (after - before) / n


def measure(n: int = 20_000) -> dict[str, Any]:
    """Bytes per session (ids are allocated before tracing; the store's copy of each key is
    counted only when the store makes one)."""
    per_koa, payload_len = asyncio.run(_koa(n))
    per_star = asyncio.run(_starsessions(n))
    return {"sessions": n, "koasession": per_koa, "starsessions": per_star, "json": payload_len}
