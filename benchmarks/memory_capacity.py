"""MemoryStore inserts at capacity: the cost of writing a new session into a full store.

A store of ``max_entries`` live sessions (none expired) is filled, then further new sessions
are written: each must evict one. Reported per size, as microseconds per insert (best of a few
batches) and the ratio to the smallest size, which stays near 1 when the cost does not grow
with the store.

    python benchmarks/memory_capacity.py [--sizes 10000,100000,1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from typing import Any

from koasession import MemoryStore

SIZES = (10_000, 100_000, 1_000_000)
CAPTION = (
    "`benchmarks/memory_capacity.py`: a MemoryStore filled to `max_entries` with live sessions, "
    "then 2000 more new sessions written (each evicts the least recently used one); best of 5 "
    "batches. Before the expiry queue, each such insert swept the whole store: about 8 ms at "
    "100,000 entries and 370 ms at 1,000,000."
)
PAYLOAD = {"views": 12, "user": "user-000042"}


class _NewSession:
    """The request context of a fresh session (``loaded_key`` None: an insert)."""

    loaded_key = None


async def _measure(size: int, inserts: int, batches: int) -> float:
    store = MemoryStore(max_entries=size)
    ctx = _NewSession()
    for _ in range(size):
        await store.set(secrets.token_urlsafe(32), PAYLOAD, 86400, ctx=ctx)
    best = float("inf")
    for _ in range(batches):
        ids = [secrets.token_urlsafe(32) for _ in range(inserts)]
        start = time.perf_counter()
        for key in ids:
            await store.set(key, PAYLOAD, 86400, ctx=ctx)
        best = min(best, (time.perf_counter() - start) / inserts)
    assert len(store) == size
    return best * 1e6


def measure(
    sizes: tuple[int, ...] = SIZES, inserts: int = 2000, batches: int = 5
) -> list[dict[str, Any]]:
    """Microseconds per insert into a full store, for each size."""
    rows: list[dict[str, Any]] = []
    for size in sizes:
        us = asyncio.run(_measure(size, inserts, batches))
        rows.append({"entries": size, "us_per_insert": us})
    base = rows[0]["us_per_insert"]
    for row in rows:
        row["ratio"] = row["us_per_insert"] / base
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """The table written into docs/benchmarks.md."""
    lines = [
        "| entries (full, all live) | us per insert (evicts one) | vs smallest |",
        "|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(f"| {row['entries']:,} | {row['us_per_insert']:.1f} | {row['ratio']:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    args = parser.parse_args()
    sizes = tuple(int(s) for s in args.sizes.split(","))
    print(CAPTION, "", markdown(measure(sizes)), sep="\n")


if __name__ == "__main__":
    main()
