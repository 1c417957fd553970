"""``make bench``: koasession against a bare app, reference middlewares (pass-through, floor),
Starlette's SessionMiddleware, starsessions and koa-session on Node; checks issue 12's targets.
Writes docs/benchmarks.md and docs/benchmarks.png.

    python benchmarks/run.py                 # everything, writes the report (several minutes)
    python benchmarks/run.py --quick         # in-process targets only, prints, < 1 minute
    python benchmarks/run.py --quick --profile   # the same plus the counter's cProfile and the
                                                 # bytecodes per request
    python benchmarks/run.py --only e2e      # one part (inprocess, garbage, memory, redis,
                                             # profile, e2e, instructions), prints, writes
                                             # nothing

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

import bytecodes  # noqa: E402
import configs  # noqa: E402
import floor  # noqa: E402
import garbage  # noqa: E402
import harness  # noqa: E402
import instructions  # noqa: E402
import memory  # noqa: E402
import memory_capacity  # noqa: E402
import profiling  # noqa: E402
import report  # noqa: E402

import e2e  # noqa: E402
from koasession import codec  # noqa: E402

log = e2e.log


PARTS = ("inprocess", "garbage", "memory", "redis", "profile", "e2e", "instructions")


async def in_process(
    rounds: int, target_s: float, budget_s: float, quick: bool, parts: set[str]
) -> dict[str, Any]:
    redis_reason = await configs.redis_available()
    configs_, notes = configs.build_configs(redis_reason, quick=quick)
    ready = []
    for config in configs_:
        config.build()
        if "counter" in config.scenarios:  # rows with a session: get a valid cookie first
            try:
                await harness.prime(config)
                views = await harness.views_seen(config)
                if not isinstance(views, int) or views < 2:
                    raise RuntimeError(f"its own cookie reads back views={views!r}")
            except Exception as exc:
                notes.append(f"{config.name} skipped: priming failed ({exc!r})")
                continue
        ready.append(config)
    results = {}
    if "inprocess" in parts:
        jobs = sum(len(c.scenarios) for c in ready)
        log(f"in-process harness: {jobs} rows, up to {rounds} rounds")
        results = await harness.measure(ready, rounds=rounds, target_s=target_s, budget_s=budget_s)
    leftovers: list[garbage.Garbage] = []
    if "garbage" in parts:
        log("garbage per request (gc.collect after N requests)")
        leftovers = await garbage.measure(ready, 500 if quick else 2000)
    return {
        "results": results,
        "notes": notes,
        "configs": ready,
        "redis": redis_reason,
        "garbage": leftovers,
    }


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("koasession", "starlette", "starsessions", "uvicorn", "redis", "cryptography"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "-"
    out["node"] = e2e.node_version()
    # orjson when installed, unless KOASESSION_JSON=std (koasession.codec)
    out["json"] = codec.json_backend()
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
    parser.add_argument(
        "--quick",
        action="store_true",
        help="in-process rows only (koasession cookie/encrypted/MemoryStore, Starlette, "
        "pass-through, floor); prints the targets, writes nothing",
    )
    parser.add_argument(
        "--profile", action="store_true", help="with --quick: print cProfile and bytecodes"
    )
    parser.add_argument(
        "--only", help=f"comma-separated parts to run and print: {', '.join(PARTS)}"
    )
    parser.add_argument("--no-e2e", action="store_true", help="skip uvicorn/Node load runs")
    parser.add_argument(
        "--no-profile", action="store_true", help="skip the cProfile and bytecode tables"
    )
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs")
    args = parser.parse_args()
    started = time.monotonic()
    if args.quick:
        parts = {"inprocess", "garbage"} | ({"profile"} if args.profile else set())
    elif args.only:
        parts = {p.strip() for p in args.only.split(",")}
        unknown = parts - set(PARTS)
        if unknown:
            parser.error(f"unknown part(s) {', '.join(sorted(unknown))}; choose from {PARTS}")
    else:
        parts = set(PARTS)
        if args.no_e2e:
            parts.discard("e2e")
        if args.no_profile:
            parts.discard("profile")
    # Many short rounds in quick mode: the median of per-round ratios needs rounds more than
    # long batches.
    rounds, target, budget = (15, 0.03, 30.0) if args.quick else (15, 0.08, 200.0)
    # End to end: many short rounds rather than a few long ones, for the same reason; each
    # round's ratio pairs runs made seconds apart.
    seconds, runs = 2.0, 10

    env = versions()
    log(f"python {env['python']}, {env['cpus']} CPUs, load {env['load']}, JSON {env['json']}")
    harness_out = asyncio.run(in_process(rounds, target, budget, args.quick, parts))
    notes: list[str] = list(harness_out["notes"])

    redis_rows = None
    if "redis" in parts and harness_out["redis"] is None:
        log("Redis round trips")
        try:
            import redis_rt

            redis_rows = redis_rt.measure()
        except Exception as exc:
            notes.append(f"Redis round-trip count skipped: {exc!r}")

    mem = capacity = None
    if "memory" in parts:
        log("MemoryStore memory per session (tracemalloc)")
        mem = memory.measure(20_000)
        log("MemoryStore inserts at capacity")
        capacity = memory_capacity.measure(memory_capacity.SIZES)

    profiles = []
    work: list[bytecodes.Work] = []
    if "profile" in parts:
        base = next((c for c in harness_out["configs"] if c.name == configs.BASE), None)
        if base is not None:
            log(f"profiling {base.name} / counter (cProfile)")
            profiles.append(profiling.profile(base, "counter", 5_000 if args.quick else 20_000))
        log("bytecodes per request (sys.settrace)")
        work = bytecodes.measure(harness_out["configs"])

    e2e_results: dict[str, list[e2e.LoadResult]] = {}
    if "e2e" in parts:
        with_orjson = ["floor-orjson"] if floor.orjson_codec() is not None else []
        modes = ["bare", "koasession", "starlette", "starsessions", "floor", *with_orjson, "parts"]
        e2e_results, e2e_notes = e2e.run_all(seconds, runs, modes)
        notes.extend(e2e_notes)

    counts: list[instructions.Count] = []
    if "instructions" in parts:
        reason = instructions.available()
        if reason is None:
            try:
                # --no-e2e: no server runs here either, only the in-process counts.
                counts = instructions.measure(log, end_to_end=not args.no_e2e)
            except Exception as exc:  # one failed run must not lose the rest of the report
                notes.append(f"instruction counts failed: {exc!r}"[:2000])
        else:
            notes.append(f"instruction counts skipped: {reason}")

    env["elapsed"] = f"{time.monotonic() - started:.0f} s"
    data = report.Data(
        results=harness_out["results"],
        e2e=e2e_results,
        redis=redis_rows,
        memory=mem,
        profiles=profiles,
        work=work,
        garbage=harness_out["garbage"],
        notes=notes,
        env=env,
        stack=e2e.server_stack(),
        capacity=capacity,
        instructions=counts,
    )
    print_summary(data, partial=bool(args.quick or args.only))
    if args.quick or args.only:
        log(f"done in {env['elapsed']} (nothing written: partial run)")
        return 0
    targets = report.check_targets(data)
    args.out.mkdir(parents=True, exist_ok=True)
    chart = report.chart(data, args.out / "benchmarks.png")
    (args.out / "benchmarks.md").write_text(report.markdown(data, targets, chart))
    log(f"wrote {args.out / 'benchmarks.md'} and {chart or 'no chart'} in {env['elapsed']}")
    return 0


def print_summary(data: report.Data, partial: bool) -> None:
    """The rows, the targets this run could check, the distance to the floor, the profile."""
    print()
    if data.results:
        print(f"  bare app: {data.bare.us:.2f} us; overhead over bare, median (range), us:")
        for name in data.configs():
            cells = []
            for scenario in ("untouched", "read", "counter"):
                found = data.overhead(name, scenario)
                if found is not None:
                    cells.append(
                        f"{scenario} {found.median:.2f} ({found.low:.2f}-{found.high:.2f})"
                    )
            print(f"    {name}: {'; '.join(cells)}")
        print()
    for line in report.floor_lines(data):
        print(f"  {line}")
    print()
    for g in data.garbage:
        print(f"  garbage: {g.config} / {g.scenario}: {g.per_request:g} objects/request")
    print()
    skipped = 0
    for target_row in report.check_targets(data):
        if target_row.met is None and partial:  # a part this run left out, not a failure
            skipped += 1
            continue
        print(f"  [{target_row.status:^7}] {target_row.name}: {target_row.detail}")
    if skipped:
        print(f"  ({skipped} target(s) need parts this run left out; `make bench` runs all)")
    for found in data.profiles:
        print()
        print(profiling.text(found))
    if data.work:
        print()
        print(bytecodes.text(data.work))
    if data.instructions:
        print()
        print(instructions.text(data.instructions))
    print()


if __name__ == "__main__":
    sys.exit(main())
