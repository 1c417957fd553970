"""``make bench``: koasession against a bare app, Starlette's SessionMiddleware, starsessions and
koa-session on Node. Writes docs/benchmarks.md and docs/benchmarks.png.

    python benchmarks/run.py [--quick] [--no-e2e] [--no-profile] [--out DIR]

Everything is bounded: fixed round counts with a time budget for the in-process harness, fixed
durations for the load runs, timeouts on every subprocess; all traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import configs  # noqa: E402
import harness  # noqa: E402
import memory  # noqa: E402
import memory_capacity  # noqa: E402
import profiling  # noqa: E402
import report  # noqa: E402

import e2e  # noqa: E402

log = e2e.log


async def in_process(rounds: int, target_s: float, budget_s: float) -> dict[str, Any]:
    redis_reason = await configs.redis_available()
    configs_, notes = configs.build_configs(redis_reason)
    ready = []
    for config in configs_:
        config.build()
        if config.family != "bare":
            try:
                await harness.prime(config)
            except Exception as exc:
                notes.append(f"{config.name} skipped: priming failed ({exc!r})")
                continue
        ready.append(config)
    log(f"in-process harness: {len(ready)} set-ups x 3 scenarios, up to {rounds} rounds")
    results = await harness.measure(ready, rounds=rounds, target_s=target_s, budget_s=budget_s)
    return {"results": results, "notes": notes, "configs": ready, "redis": redis_reason}


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("koasession", "starlette", "starsessions", "uvicorn", "redis", "cryptography"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "-"
    out["node"] = e2e.node_version()
    out["cpu"] = _cpu_model()
    out["cpus"] = str(os.cpu_count())
    try:
        out["load"] = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        out["load"] = "?"
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, shorter load runs")
    parser.add_argument("--no-e2e", action="store_true", help="skip uvicorn/Node load runs")
    parser.add_argument("--no-profile", action="store_true", help="skip pyinstrument")
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs")
    args = parser.parse_args()
    started = time.monotonic()
    rounds, target, budget = (3, 0.03, 30.0) if args.quick else (9, 0.12, 150.0)
    seconds, runs = (2.0, 1) if args.quick else (4.0, 3)

    env = versions()
    log(f"python {env['python']}, {env['cpus']} CPUs, load {env['load']}")
    harness_out = asyncio.run(in_process(rounds, target, budget))
    notes: list[str] = list(harness_out["notes"])

    redis_rows = None
    if harness_out["redis"] is None:
        log("Redis round trips")
        try:
            import redis_rt

            redis_rows = redis_rt.measure()
        except Exception as exc:
            notes.append(f"Redis round-trip count skipped: {exc!r}")

    log("MemoryStore memory per session (tracemalloc)")
    mem = memory.measure(5_000 if args.quick else 20_000)
    log("MemoryStore inserts at capacity")
    capacity = memory_capacity.measure(
        memory_capacity.SIZES[:2] if args.quick else memory_capacity.SIZES
    )

    profiles: dict[str, str] = {}
    if not args.no_profile:
        reason = profiling.ensure_pyinstrument()
        if reason is None:
            target_config = next(
                c for c in harness_out["configs"] if c.name == "koasession cookie sha256"
            )
            for scenario in ("counter", "untouched"):
                log(f"profiling koasession cookie sha256 / {scenario}")
                profiles[scenario] = profiling.profile(
                    target_config, scenario, 1.5 if args.quick else 4.0
                )
        else:
            notes.append(reason)

    e2e_results: dict[str, e2e.LoadResult] = {}
    if not args.no_e2e:
        e2e_results, e2e_notes = e2e.run_all(
            seconds, runs, ["bare", "koasession", "starlette", "starsessions"]
        )
        notes.extend(e2e_notes)

    env["elapsed"] = f"{time.monotonic() - started:.0f} s"
    data = report.Data(
        results=harness_out["results"],
        e2e=e2e_results,
        redis=redis_rows,
        memory=mem,
        profiles=profiles,
        notes=notes,
        env=env,
        stack=e2e.server_stack(),
        capacity=capacity,
    )
    targets = report.check_targets(data)
    print()
    for target_row in targets:
        print(f"  [{target_row.status:^7}] {target_row.name}: {target_row.detail}")
    args.out.mkdir(parents=True, exist_ok=True)
    chart = report.chart(data, args.out / "benchmarks.png")
    (args.out / "benchmarks.md").write_text(report.markdown(data, targets, chart))
    log(f"wrote {args.out / 'benchmarks.md'} and {chart or 'no chart'} in {env['elapsed']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
