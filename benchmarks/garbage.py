"""Garbage per request: what ``gc.collect()`` finds after N requests, with the collector off.

An object the collector finds is one that reference counting could not free: it sat in a
reference cycle (scope <-> session <-> per-request state, closures, events). Under load those
cycles make the collector run, which costs server CPU the in-process timings (run with the
collector disabled) do not show. The bare app is the control: the harness itself leaves nothing.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass

from harness import Config, make_scope, receive

WARMUP = 200


@dataclass
class Garbage:
    config: str
    scenario: str
    requests: int
    collected: int

    @property
    def per_request(self) -> float:
        return self.collected / self.requests


async def collected_after(config: Config, scenario: str, requests: int) -> Garbage:
    """Objects ``gc.collect()`` frees after ``requests`` requests of ``scenario``.

    A warm-up first, so caches, interned strings and lazily built tables are not counted.
    """
    app = config.apps[scenario]
    scope = make_scope(config.cookie)

    async def discard(message: object) -> None:
        return None

    for _ in range(WARMUP):
        await app(dict(scope), receive, discard)
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(requests):
            await app(dict(scope), receive, discard)
        found = gc.collect()
    finally:
        if was_enabled:
            gc.enable()
    return Garbage(config.name, scenario, requests, found)


async def measure(configs: list[Config], requests: int = 1000) -> list[Garbage]:
    rows = []
    for config in configs:
        for scenario in ("counter", "untouched"):
            if scenario in config.apps:
                rows.append(await collected_after(config, scenario, requests))
    return rows
