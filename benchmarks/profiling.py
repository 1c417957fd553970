"""Profile the hot path with cProfile: the in-process harness, one scenario, top functions by
own time, per request. Standard library only, so ``--quick`` can print it too."""

from __future__ import annotations

import asyncio
import cProfile
import pstats
from dataclasses import dataclass
from pathlib import Path

from harness import Config, batch, make_scope

_REPO = str(Path(__file__).resolve().parents[1]) + "/"


@dataclass
class ProfileRow:
    function: str  # file:line(name), repository-relative or the standard library module
    calls: float  # per request
    own_us: float  # per request, excluding callees (inflated by cProfile's own overhead)
    cumulative_us: float  # per request, including callees


@dataclass
class Profile:
    config: str
    scenario: str
    requests: int
    calls_per_request: float  # every Python and C function call cProfile saw
    rows: list[ProfileRow]


def _where(filename: str, line: int, name: str) -> str:
    if filename == "~":  # a C function: cProfile names it "<built-in method ...>"
        return name
    if filename.startswith(_REPO):
        filename = filename[len(_REPO) :]
    elif "/site-packages/" in filename:
        filename = filename.split("/site-packages/", 1)[1]
    elif "/lib/python3" in filename:
        filename = filename.split("/lib/python3", 1)[1].split("/", 1)[-1]
    return f"{filename}:{line}({name})"


def profile(config: Config, scenario: str, requests: int = 20_000, top: int = 25) -> Profile:
    """cProfile over ``requests`` requests of ``scenario``; the ``top`` functions by own time."""
    app = config.apps[scenario]
    scope = make_scope(config.cookie)

    async def run() -> None:
        await batch(app, scope, 200)  # warm-up, not profiled
        profiler.enable()
        await batch(app, scope, requests)
        profiler.disable()

    profiler = cProfile.Profile()
    asyncio.run(run())
    stats = pstats.Stats(profiler)
    # pstats keeps {(file, line, name): (primitive calls, calls, own s, cumulative s, callers)}
    entries = stats.stats  # type: ignore[attr-defined]
    total_calls = sum(value[1] for value in entries.values())
    ordered = sorted(entries.items(), key=lambda item: item[1][2], reverse=True)
    rows = [
        ProfileRow(
            _where(*key),
            calls / requests,
            own / requests * 1e6,
            cumulative / requests * 1e6,
        )
        for key, (_, calls, own, cumulative, _) in ordered[:top]
    ]
    return Profile(config.name, scenario, requests, total_calls / requests, rows)


def markdown(found: Profile) -> list[str]:
    lines = [
        f"cProfile over {found.requests} `{found.scenario}` requests through "
        f"*{found.config}* (warm); {found.calls_per_request:.0f} function calls per request "
        "(the event loop's included). Times are per request and inflated by the profiler's "
        "own cost per call, so read them as shares, not as the unprofiled figures above.",
        "",
        "| function | calls/request | own us/request | cumulative us/request |",
        "|---|---:|---:|---:|",
    ]
    for row in found.rows:
        name = row.function.replace("|", "\\|")
        lines.append(f"| `{name}` | {row.calls:.1f} | {row.own_us:.2f} | {row.cumulative_us:.2f} |")
    return lines


def text(found: Profile, top: int = 15) -> str:
    """A short plain-text version for the terminal (``--quick --profile``)."""
    out = [
        f"{found.config} / {found.scenario}: {found.calls_per_request:.0f} calls/request",
        f"  {'own us':>7} {'cum us':>7} {'calls':>6}  function",
    ]
    for row in found.rows[:top]:
        out.append(f"  {row.own_us:7.2f} {row.cumulative_us:7.2f} {row.calls:6.1f}  {row.function}")
    return "\n".join(out)
