"""Work per request in figures that do not drift with the machine: the Python function calls,
the bytecodes executed and the distinct functions touched by one warm request, counted with
``sys.settrace``. Timings on a shared machine swing from run to run; these counts only change
when the code does, so they show what a change to the hot path did even when the timings cannot.

The request's own frames are counted, the handler's included (the bare row is that part); the
harness's loop is not.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import Any

from harness import Config, batch, discard, make_scope, receive


@dataclass
class Work:
    config: str
    scenario: str
    calls: int  # Python function calls (C functions are not traced)
    bytecodes: int
    functions: int  # distinct code objects


def count(config: Config, scenario: str) -> Work:
    """The work of one ``scenario`` request through ``config`` (after a warm-up)."""
    app = config.apps[scenario]
    scope = make_scope(config.cookie)
    calls = bytecodes = 0
    codes: set[CodeType] = set()

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal calls, bytecodes
        if event == "call":
            frame.f_trace_opcodes = True
            calls += 1
            codes.add(frame.f_code)
        elif event == "opcode":
            bytecodes += 1
        return tracer

    async def run() -> None:
        await batch(app, scope, 3)  # warm: lazily built state, caches, a first-request path
        sys.settrace(tracer)
        try:
            await app(dict(scope), receive, discard)
        finally:
            sys.settrace(None)

    asyncio.run(run())
    return Work(config.name, scenario, calls, bytecodes, len(codes))


def measure(configs: list[Config]) -> list[Work]:
    """Every scenario of every in-process row but the network store's (its I/O is the event
    loop's work, which a trace of one request does not isolate)."""
    return [count(c, s) for c in configs if not c.slow for s in c.scenarios]


def markdown(rows: list[Work]) -> list[str]:
    lines = [
        "One warm request, traced with `sys.settrace`: Python function calls, bytecodes executed "
        "and distinct functions touched, the handler's included (the bare row is that part). "
        "These figures do not drift with the machine, so they show what a change to the hot "
        "path did even when the timings above are noisy; C functions (hashing, JSON, base64) "
        "are not counted.",
        "",
        "| set-up | scenario | Python calls | bytecodes | distinct functions |",
        "|---|---|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.config} | {row.scenario} | {row.calls} | {row.bytecodes:,} | {row.functions} |"
        )
    return lines


def text(rows: list[Work]) -> str:
    """A plain-text version for the terminal."""
    out = [f"  {'calls':>5} {'bytecodes':>9} {'functions':>9}  set-up / scenario"]
    for row in rows:
        out.append(
            f"  {row.calls:5d} {row.bytecodes:9d} {row.functions:9d}  {row.config} / {row.scenario}"
        )
    return "\n".join(out)
