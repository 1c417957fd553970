"""koasession's counter with the json module and with orjson, measured side by side.

    python benchmarks/json_backends.py [--rounds 31]

``benchmarks/run.py --quick`` run twice (once with ``KOASESSION_JSON=std``) compares two runs
minutes apart on a shared machine, where the drift between runs is larger than the difference.
Here both rows run in one process, round-robin with the bare app (``harness.measure``), so the
per-round overheads and their ratio line up. Each row switches ``koasession.codec``'s backend
before every request (one attribute store, the same in both rows); not part of ``make test``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from harness import ASGIApp, Config, Scope

from koasession import SessionMiddleware, codec


def _with_backend(name: str) -> Any:
    codec.set_json_backend(name)
    backend = codec._orjson  # None for the json module
    codec.set_json_backend("auto")

    def wrap(app: ASGIApp) -> ASGIApp:
        inner = SessionMiddleware(app, keys=[harness.KEY])

        async def switched(scope: Scope, receive: Any, send: Any) -> None:
            codec._orjson = backend
            await inner(scope, receive, send)

        return switched

    return wrap


async def main(rounds: int) -> None:
    codec.set_json_backend("auto")  # whatever KOASESSION_JSON says: both rows are measured
    if codec.json_backend() != "orjson":
        sys.exit("orjson is not installed: pip install orjson")
    configs = [
        Config("bare app", "bare", lambda app: app, scenarios=("untouched",)),
        Config("json module", "koasession", _with_backend("std"), scenarios=("counter",)),
        Config("orjson", "koasession", _with_backend("orjson"), scenarios=("counter",)),
    ]
    for config in configs:
        config.build()
        if config.family == "koasession":
            await harness.prime(config)
            if (await harness.views_seen(config) or 0) < 2:
                sys.exit(f"{config.name}: the counter did not read back its own cookie")
    results = await harness.measure(configs, rounds=rounds, target_s=0.05, budget_s=120.0)
    bare = results[("bare app", "untouched")]
    std = results[("json module", "counter")]
    fast = results[("orjson", "counter")]
    for row in (std, fast):
        spread = harness.spread(harness.overheads(row, bare))
        print(f"counter overhead, {row.config:11s}: {spread.text(2, ' us')}")
    pairs = zip(harness.overheads(std, bare), harness.overheads(fast, bare), strict=True)
    saved = [a - b for a, b in pairs]
    print(f"saved by orjson per request: {harness.spread(saved).text(2, ' us')}")
    print(f"orjson / json module: {harness.ratio(fast, std, bare).text(3)}")
    codec.set_json_backend("auto")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=31)
    asyncio.run(main(parser.parse_args().rounds))
