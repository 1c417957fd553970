"""In-process ASGI harness: call an ASGI app directly with a prepared scope, no HTTP client.

Every configuration wraps the same raw ASGI application. The application runs one of three
handlers (untouched, read, counter); the bare configuration has no middleware and always runs
the untouched handler, so ``overhead = with - bare`` is the whole cost of having sessions,
including the handler's own session calls.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]

#: 48 random-looking bytes; the harness never needs a secret that matters.
KEY = "I1cqobbcERqZlXvRYLhB82BbjJ7sjJtktOu_Skgzmw8"
BODY = b"ok"
SCENARIOS = ("untouched", "read", "counter")


def make_scope(cookie: str | None) -> Scope:
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", b"koasession-bench"),
        (b"accept", b"*/*"),
    ]
    if cookie:
        headers.append((b"cookie", cookie.encode("latin-1")))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


_REQUEST = {"type": "http.request", "body": b"", "more_body": False}


async def receive() -> Message:
    return _REQUEST


async def discard(message: Message) -> None:
    return None


def _start() -> Message:
    return {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")],
    }


_END = {"type": "http.response.body", "body": BODY}


def make_app(scenario: str, loader: Callable[[Scope], Awaitable[None]] | None = None) -> ASGIApp:
    """A raw ASGI app running ``scenario``; ``loader`` loads the session first (starsessions)."""

    async def untouched(scope: Scope, receive: Any, send: Any) -> None:
        await send(_start())
        await send(_END)

    async def read(scope: Scope, receive: Any, send: Any) -> None:
        if loader is not None:
            await loader(scope)
        scope["session"].get("views", 0)
        await send(_start())
        await send(_END)

    async def counter(scope: Scope, receive: Any, send: Any) -> None:
        if loader is not None:
            await loader(scope)
        session = scope["session"]
        session["views"] = session.get("views", 0) + 1
        await send(_start())
        await send(_END)

    return {"untouched": untouched, "read": read, "counter": counter}[scenario]


@dataclass
class Config:
    """One middleware set-up: ``wrap(app)`` returns the app with the middleware around it."""

    name: str
    family: str  # "koasession", "starlette", "starsessions", "bare"
    wrap: Callable[[ASGIApp], ASGIApp]
    loader: Callable[[Scope], Awaitable[None]] | None = None
    slow: bool = False  # network store: fewer iterations
    note: str = ""
    cookie: str | None = None
    apps: dict[str, ASGIApp] = field(default_factory=dict)
    # The pass-through middleware has no session, so it only runs the untouched handler.
    scenarios: tuple[str, ...] = SCENARIOS

    def build(self) -> None:
        self.apps = {s: self.wrap(make_app(s, self.loader)) for s in self.scenarios}


async def call(app: ASGIApp, scope: Scope) -> list[Message]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await app(dict(scope), receive, send)
    return sent


def cookie_from(messages: list[Message]) -> str | None:
    """The Cookie header a browser would send back after this response."""
    pairs = {}
    for message in messages:
        if message["type"] != "http.response.start":
            continue
        for key, value in message.get("headers", ()):
            if key.lower() == b"set-cookie":
                pair = value.decode("latin-1").split(";", 1)[0]
                name, _, val = pair.partition("=")
                pairs[name.strip()] = val.strip()
    return "; ".join(f"{k}={v}" for k, v in pairs.items()) or None


def set_cookie_count(messages: list[Message]) -> int:
    return sum(
        1
        for m in messages
        if m["type"] == "http.response.start"
        for k, _ in m.get("headers", ())
        if k.lower() == b"set-cookie"
    )


async def prime(config: Config) -> None:
    """Write a session with ``views`` through the counter app and keep its cookie."""
    first = await call(config.apps["counter"], make_scope(None))
    config.cookie = cookie_from(first)
    if config.cookie is None:
        raise RuntimeError(f"{config.name}: the counter wrote no cookie")
    second = await call(config.apps["counter"], make_scope(config.cookie))
    config.cookie = cookie_from(second) or config.cookie


async def views_seen(config: Config) -> Any:
    """What the handler reads from ``views`` with the primed cookie: a row that fails to verify
    or decode its own cookie would start a new session every request and look cheaper than it
    is, so ``prime`` callers check this is at least 2."""
    seen: list[Any] = []

    async def probe(scope: Scope, receive: Any, send: Any) -> None:
        if config.loader is not None:
            await config.loader(scope)
        seen.append(scope["session"].get("views"))
        await send(_start())
        await send(_END)

    await call(config.wrap(probe), make_scope(config.cookie))
    return seen[0] if seen else None


async def batch(app: ASGIApp, scope: Scope, n: int) -> float:
    """Mean µs of this process's CPU time per request over ``n`` sequential calls.

    CPU time, not wall time: the machine is shared, and time spent descheduled while another
    process runs is not the middleware's cost.
    """
    t0 = time.process_time_ns()
    for _ in range(n):
        await app(dict(scope), receive, discard)
    return (time.process_time_ns() - t0) / n / 1000


async def calibrate(app: ASGIApp, scope: Scope, target_s: float, cap: int) -> int:
    """Iterations that take about ``target_s`` (bounded by ``cap``)."""
    n = 50
    while True:
        per_call_us = await batch(app, scope, n)
        if per_call_us * n > 20_000 or n >= cap:
            break
        n *= 4
    return max(50, min(cap, int(target_s * 1e6 / max(per_call_us, 0.01))))


@dataclass
class Measurement:
    config: str
    family: str
    scenario: str
    us: float  # median batch mean, µs/request
    samples: list[float]  # one batch mean per round, in round order (rounds line up across rows)
    n: int

    @property
    def best(self) -> float:
        return min(self.samples)


@dataclass
class Spread:
    """Median and range of per-round values (a ratio or an overhead)."""

    median: float
    low: float
    high: float
    rounds: int

    def text(self, digits: int = 2, unit: str = "") -> str:
        return (
            f"{self.median:.{digits}f}{unit} (range {self.low:.{digits}f}-"
            f"{self.high:.{digits}f}, {self.rounds} rounds)"
        )


def spread(values: list[float]) -> Spread:
    ordered = sorted(values)
    mid = len(ordered) // 2
    median = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    return Spread(median, ordered[0], ordered[-1], len(ordered))


def overheads(row: Measurement, bare: Measurement) -> list[float]:
    """Per-round overhead over the bare app: each round's batch minus the same round's bare
    batch, so a slow stretch of the machine mostly cancels out."""
    return [x - b for x, b in zip(row.samples, bare.samples, strict=True)]


def ratio(num: Measurement, den: Measurement, bare: Measurement) -> Spread:
    """Per-round ratio of two overheads, side by side in the same rounds."""
    pairs = zip(overheads(num, bare), overheads(den, bare), strict=True)
    values = [a / b if b > 0 else float("inf") for a, b in pairs]
    return spread(values)


async def measure(
    configs: list[Config],
    *,
    rounds: int,
    target_s: float,
    budget_s: float,
) -> dict[tuple[str, str], Measurement]:
    """Round-robin over every (config, scenario) ``rounds`` times; report the median batch.

    Round-robin spreads slow drifts (frequency scaling, a noisy neighbour) over all rows
    instead of penalising whichever ran last, and keeps every round's batches side by side,
    so ratios are taken per round (see ``ratio``) and reported as median and range. GC is
    collected before and disabled during a batch, as timeit does: the garbage a middleware
    leaves is measured separately (garbage.py), not smeared into the timings.
    """
    jobs: list[tuple[Config, str, ASGIApp, Scope, int]] = []
    for config in configs:
        for scenario in config.scenarios:
            app = config.apps[scenario]
            scope = make_scope(config.cookie)
            cap = 5_000 if config.slow else 400_000
            n = await calibrate(app, scope, target_s / (4 if config.slow else 1), cap)
            jobs.append((config, scenario, app, scope, n))
    samples: dict[tuple[str, str], list[float]] = {(c.name, s): [] for c, s, *_ in jobs}
    deadline = time.monotonic() + budget_s
    for index in range(rounds):
        if index >= 2 and time.monotonic() > deadline:
            break
        for config, scenario, app, scope, n in jobs:
            gc.collect()
            gc.disable()
            try:
                samples[(config.name, scenario)].append(await batch(app, scope, n))
            finally:
                gc.enable()
    out = {}
    for config, scenario, _, _, n in jobs:
        got = samples[(config.name, scenario)]
        out[(config.name, scenario)] = Measurement(
            config.name, config.family, scenario, spread(got).median, got, n
        )
    return out
