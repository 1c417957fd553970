"""koasession's counter with the json module and with orjson, measured side by side.

    python benchmarks/json_backends.py [--rounds 31]

``benchmarks/run.py --quick`` run twice (once with ``KOASESSION_JSON=std``) compares two runs
minutes apart on a shared machine, where the drift between runs is larger than the difference.
Here both rows run in one process, round-robin with the bare app (``harness.measure``), so the
per-round overheads and their ratio line up. Each row switches ``koasession.codec``'s backend
before every request (one attribute store, the same in both rows). First, the codec's own calls
of one counter request (decode, two snapshots, encode_payload) are timed alone, best of 40
alternated repeats: on a busy machine the best time is the stable figure. Not part of
``make test``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import timeit
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from harness import ASGIApp, Config, Scope

from koasession import SessionMiddleware, codec

SMALL = {"views": 1}
LARGER = {
    "user": {"id": 1234, "name": "Ada Lovelace", "roles": ["admin", "editor"]},
    "csrf": "Yq3sB8hq2t0mJxk5WqzJb0cX9n1rUe7aVd4fLg6pHs",
    "cart": [{"sku": f"SKU-{i:04d}", "qty": i % 3 + 1, "name": f"item {i}"} for i in range(6)],
    "theme": "dark",
    "flash": [],
}
META = {"_expire": 1_700_000_086_400, "_maxAge": 86_400_000}


def _codec_round(cookie: str) -> str:
    """The codec calls of one counter request: read, snapshot, change, snapshot, write."""
    data = codec.decode(cookie)
    assert data is not None
    body = {k: v for k, v in data.items() if k not in codec.META_KEYS}
    before = codec.snapshot(body)
    body["views"] = body.get("views", 0) + 1
    after = codec.snapshot(body)
    assert after != before
    return codec.encode_payload(body, after, META)


def codec_calls(repeat: int) -> None:
    """Best-of-``repeat`` time of the codec's part of a counter request, per backend.

    The backends alternate repeat by repeat, so a slow stretch of the machine hits both.
    """
    for label, session in (("{'views': 1}", SMALL), ("a 400-byte session", LARGER)):
        cookie = codec.encode({**session, **META})
        best = {"std": float("inf"), "orjson": float("inf")}
        number = 5_000
        for _ in range(repeat):
            for name in best:
                codec.set_json_backend(name)
                took = timeit.timeit(lambda c=cookie: _codec_round(c), number=number)
                best[name] = min(best[name], took / number * 1e6)
        for name, us in best.items():
            print(f"codec calls of one counter request, {label}, {name:6s}: {us:.2f} us")
    codec.set_json_backend("auto")


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
        overheads = harness.overheads(row, bare)
        spread = harness.spread(overheads)
        print(
            f"counter overhead, {row.config:11s}: {spread.text(2, ' us')}; "
            f"best {min(overheads):.2f} us"
        )
    pairs = zip(harness.overheads(std, bare), harness.overheads(fast, bare), strict=True)
    saved = [a - b for a, b in pairs]
    print(f"saved by orjson per request: {harness.spread(saved).text(2, ' us')}")
    print(f"orjson / json module: {harness.ratio(fast, std, bare).text(3)}")
    codec.set_json_backend("auto")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--codec-only", action="store_true", help="only the codec's calls")
    args = parser.parse_args()
    codec_calls(repeat=40)
    if not args.codec_only:
        asyncio.run(main(args.rounds))
