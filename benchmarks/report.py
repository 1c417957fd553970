"""Issue 12's targets, the markdown report and the PNG chart."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bytecodes import Work
from bytecodes import markdown as work_table
from configs import (
    BARE,
    BASE,
    COUNTERPARTS,
    ENCRYPTED,
    FLOOR,
    FLOOR_ORJSON,
    MEMORY,
    PARTS,
    PASS_THROUGH,
    REDIS,
    STAR_REDIS,
    STARLETTE,
)
from garbage import Garbage
from harness import Measurement, Spread, overheads, ratio, spread
from instructions import Count
from instructions import markdown as instructions_markdown
from memory_capacity import CAPTION as CAPACITY_CAPTION
from memory_capacity import markdown as capacity_table
from profiling import Profile
from profiling import markdown as profile_table

from e2e import LoadResult

# Row names of the end-to-end servers (``python <BENCH_E2E mode>``).
E2E_BARE, E2E_OURS, E2E_STARLETTE = "python bare", "python koasession", "python starlette"
E2E_FLOOR = "python floor"
E2E_FLOOR_ORJSON = "python floor-orjson"
E2E_PARTS = "python parts"


@dataclass
class Data:
    results: dict[tuple[str, str], Measurement]
    e2e: dict[str, list[LoadResult]] = field(default_factory=dict)
    redis: list[dict[str, Any]] | None = None
    memory: dict[str, Any] | None = None
    profiles: list[Profile] = field(default_factory=list)
    work: list[Work] = field(default_factory=list)
    garbage: list[Garbage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    stack: str = ""
    capacity: list[dict[str, Any]] | None = None
    instructions: list[Count] = field(default_factory=list)

    @property
    def bare(self) -> Measurement:
        return self.results[(BARE, "untouched")]

    def row(self, config: str, scenario: str) -> Measurement | None:
        return self.results.get((config, scenario))

    def overhead(self, config: str, scenario: str) -> Spread | None:
        """Median and range of the per-round overhead over the bare app, in us."""
        found = self.row(config, scenario)
        return None if found is None else spread(overheads(found, self.bare))

    def ratio(self, num: tuple[str, str], den: tuple[str, str]) -> Spread | None:
        a, b = self.row(*num), self.row(*den)
        return None if a is None or b is None else ratio(a, b, self.bare)

    def configs(self) -> list[str]:
        seen: list[str] = []
        for name, _ in self.results:
            if name not in seen and name != BARE:
                seen.append(name)
        return seen


@dataclass
class Target:
    name: str
    met: bool | None  # None: could not be measured in this run
    detail: str

    @property
    def status(self) -> str:
        return {True: "met", False: "not met", None: "n/a"}[self.met]


def _us(value: Spread | None) -> str:
    return "-" if value is None else f"{value.median:.1f}"


def _in_process_ratio(
    data: Data, name: str, num: tuple[str, str], den: tuple[str, str], limit: float
) -> Target:
    found = data.ratio(num, den)
    a, b = data.overhead(*num), data.overhead(*den)
    if found is None or a is None or b is None:
        return Target(name, None, "not measured in this run")
    return Target(
        name,
        found.median <= limit,
        f"ratio {found.text()}, limit {limit:g}; overhead {a.median:.2f} us vs {b.median:.2f} us",
    )


def _e2e_rounds(data: Data) -> tuple[list[LoadResult], list[LoadResult], list[LoadResult]]:
    return (
        data.e2e.get(E2E_BARE, []),
        data.e2e.get(E2E_OURS, []),
        data.e2e.get(E2E_STARLETTE, []),
    )


def e2e_targets(data: Data) -> list[Target]:
    cpu_name = "e2e: server CPU per request over bare <= 0.6x Starlette SessionMiddleware's"
    rps_name = "e2e: requests/s >= 1.2x Starlette SessionMiddleware's"
    bare, ours, theirs = _e2e_rounds(data)
    if not (bare and ours and theirs):
        return [Target(cpu_name, None, "not run"), Target(rps_name, None, "not run")]
    out = []
    cpu_ratios = []
    for b, o, t in zip(bare, ours, theirs, strict=False):
        if b.cpu_us is not None and o.cpu_us is not None and t.cpu_us is not None:
            cpu_ratios.append((o.cpu_us - b.cpu_us) / (t.cpu_us - b.cpu_us))
    if cpu_ratios:
        cpu = spread(cpu_ratios)
        ours_cpu = spread([o.cpu_us - b.cpu_us for b, o in zip(bare, ours, strict=False)])  # type: ignore[operator]
        their_cpu = spread([t.cpu_us - b.cpu_us for b, t in zip(bare, theirs, strict=False)])  # type: ignore[operator]
        out.append(
            Target(
                cpu_name,
                cpu.median <= 0.6,
                f"ratio {cpu.text()}, limit 0.6; +{ours_cpu.median:.1f} us vs "
                f"+{their_cpu.median:.1f} us of server CPU per request",
            )
        )
    else:
        out.append(Target(cpu_name, None, "server CPU time unreadable"))
    rps = spread([o.rps / t.rps for o, t in zip(ours, theirs, strict=False)])
    out.append(
        Target(
            rps_name,
            rps.median >= 1.2,
            f"ratio {rps.text()}, limit 1.2; "
            f"{spread([o.rps for o in ours]).median:.0f} vs "
            f"{spread([t.rps for t in theirs]).median:.0f} req/s",
        )
    )
    return out


def garbage_target(data: Data) -> Target:
    name = "no garbage per request: cookie and MemoryStore counter leave 0 objects for gc"
    rows = [
        g for g in data.garbage if g.config in (BASE, MEMORY, REDIS) and g.scenario == "counter"
    ]
    if not rows:
        return Target(name, None, "not measured")
    detail = ", ".join(f"{g.config}: {g.per_request:g}/request" for g in rows)
    return Target(name, all(g.collected == 0 for g in rows), detail)


def memory_target(data: Data) -> Target:
    name = "MemoryStore bytes per session <= starsessions InMemoryStore's"
    mem = data.memory
    if not mem or mem.get("starsessions") is None:
        return Target(name, None, "not measured")
    ours, theirs = mem["koasession"], mem["starsessions"]
    return Target(
        name,
        ours <= theirs,
        f"{ours:.0f} vs {theirs:.0f} bytes (ratio {ours / theirs:.2f}, limit 1)",
    )


def check_targets(data: Data) -> list[Target]:
    """Issue 12's targets, each a ratio of two rows measured side by side in this run."""
    out = [
        _in_process_ratio(
            data,
            "counter write (cookie, sha256): overhead <= 0.5x Starlette SessionMiddleware's",
            (BASE, "counter"),
            (STARLETTE, "counter"),
            0.5,
        ),
        _in_process_ratio(
            data,
            "untouched session: overhead <= 1.5x the pass-through middleware's",
            (BASE, "untouched"),
            (PASS_THROUGH, "untouched"),
            1.5,
        ),
        *e2e_targets(data),
        garbage_target(data),
        _in_process_ratio(
            data,
            "store mode: Redis counter overhead <= starsessions RedisStore's",
            (REDIS, "counter"),
            (STAR_REDIS, "counter"),
            1.0,
        ),
        memory_target(data),
        _in_process_ratio(
            data,
            "encrypted cookie: counter overhead <= 1.3x the signed cookie's",
            (ENCRYPTED, "counter"),
            (BASE, "counter"),
            1.3,
        ),
    ]
    return out


def floor_lines(data: Data) -> list[str]:
    """How far koasession is from the reference rows (not targets: the limits)."""
    out = []
    for num, den, label in (
        ((BASE, "counter"), (FLOOR, "counter"), "counter, koasession / floor"),
        ((BASE, "untouched"), (FLOOR, "untouched"), "untouched, koasession / floor"),
        ((FLOOR, "counter"), (STARLETTE, "counter"), "counter, floor / Starlette SM"),
        ((FLOOR_ORJSON, "counter"), (FLOOR, "counter"), "counter, floor with orjson / floor"),
        ((PARTS, "counter"), (STARLETTE, "counter"), "counter, koasession's parts / Starlette SM"),
        (
            (PARTS, "counter"),
            (FLOOR_ORJSON, "counter"),
            "counter, koasession's parts / floor with orjson",
        ),
        ((BASE, "counter"), (PARTS, "counter"), "counter, koasession / its parts"),
    ):
        found = data.ratio(num, den)
        if found is not None:
            out.append(f"{label}: {found.text()}")
    for key, label in (
        (E2E_FLOOR, "floor"),
        (E2E_FLOOR_ORJSON, "floor with orjson"),
        (E2E_PARTS, "koasession's parts"),
    ):
        cpu = _e2e_floor_cpu(data, key)
        if cpu:
            out.append(f"e2e server CPU over bare, {label} / Starlette SM: {spread(cpu).text()}")
    return out


def _e2e_floor_cpu(data: Data, key: str) -> list[float]:
    """Run by run, the server CPU over bare of the reference row ``key`` (a floor, the parts)
    divided by Starlette SM's."""
    bare, floor, theirs = (data.e2e.get(k, []) for k in (E2E_BARE, key, E2E_STARLETTE))
    return [
        (f.cpu_us - b.cpu_us) / (t.cpu_us - b.cpu_us)
        for b, f, t in zip(bare, floor, theirs, strict=False)
        if b.cpu_us is not None and f.cpu_us is not None and t.cpu_us is not None
    ]


def floor_verdict(data: Data) -> str:
    """For each target with reference rows, what they say of it in this run: whether the floor
    (json module, then orjson) meets it, and then whether koasession's parts do, which tells
    the checks' share of the gap from the engine's."""
    counter = [
        _median(data.ratio((row, "counter"), (STARLETTE, "counter")))
        for row in (FLOOR, FLOOR_ORJSON, PARTS)
    ]
    e2e = [_e2e_median(data, key) for key in (E2E_FLOOR, E2E_FLOOR_ORJSON, E2E_PARTS)]
    out = [
        _verdict("the counter's 0.5x of Starlette's overhead", 0.5, *counter),
        _verdict("0.6x of Starlette's server CPU end to end", 0.6, *e2e),
    ]
    untouched = _median(data.ratio((FLOOR, "untouched"), (PASS_THROUGH, "untouched")))
    if untouched is not None:
        out.append(
            f"For the untouched request's 1.5x of the pass-through's overhead, the floor "
            f"({untouched:.2f}) is no limit: it makes a closure and a coroutine per message, "
            "which koasession's untouched request does not."
        )
    return " ".join(line for line in out if line)


def _verdict(
    target: str, limit: float, floor: float | None, fast: float | None, parts: float | None
) -> str:
    """One target's sentence: the floors, then koasession's parts without its engine."""
    rows = (("the floor", floor), ("the floor with orjson", fast))
    named = [(f"{label} ({v:.2f})", v) for label, v in rows if v is not None]
    if not named:
        return ""
    met = [name for name, v in named if v <= limit]
    missed = [name for name, v in named if v > limit]
    text = f"For {target}, " + " and ".join(met or missed)
    if not met:
        return text + " miss it: no code doing this work in pure Python that way meets it."
    text += " meet" + ("s" if len(met) == 1 else "") + " it"
    if missed:
        text += " (" + " and ".join(missed) + " does not)"
    if parts is None:
        return text + ": the rest of the gap is koasession's own code."
    if parts > limit:
        return (
            text + f"; koasession's parts without its engine ({parts:.2f}) miss it: the checks "
            "and wire rules they keep cost more than the limit leaves, before any engine runs."
        )
    return (
        text + f"; koasession's parts without its engine ({parts:.2f}) meet it: the rest of "
        "the gap is the engine's."
    )


def _e2e_median(data: Data, key: str) -> float | None:
    cpu = _e2e_floor_cpu(data, key)
    return spread(cpu).median if cpu else None


def _median(found: Spread | None) -> float | None:
    return None if found is None else found.median


def chart(data: Data, path: Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    names = data.configs()
    scenarios = ("untouched", "read", "counter")
    with_e2e = bool(data.e2e)
    fig, axes = plt.subplots(
        1, 2 if with_e2e else 1, figsize=(14 if with_e2e else 9, 6), squeeze=False
    )
    ax = axes[0][0]
    height = 0.26
    for offset, scenario in enumerate(scenarios):
        values = []
        for n in names:
            found = data.overhead(n, scenario)
            values.append(max(0.01, found.median if found else 0.0))
        ys = [i + (offset - 1) * height for i in range(len(names))]
        ax.barh(ys, values, height=height, label=scenario)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("overhead vs bare app, us/request, median (log scale)")
    ax.set_title("In-process ASGI cost of sessions")
    ax.legend()
    if with_e2e:
        ax2 = axes[0][1]
        labels = list(data.e2e)
        values = [spread([r.rps for r in data.e2e[k]]).median for k in labels]
        colors = ["#4c72b0" if k.startswith("python") else "#55a868" for k in labels]
        ax2.bar(range(len(labels)), values, color=colors)
        ax2.set_xticks(range(len(labels)))
        ax2.set_xticklabels([k.replace(" ", "\n", 1) for k in labels], fontsize=8)
        ax2.set_ylabel("requests/s (counter), median")
        ax2.set_title(f"End to end on loopback ({data.e2e[labels[0]][0].tool})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _ratio(ours: Spread | None, theirs: Spread | None) -> str:
    if ours is None or theirs is None or ours.median <= 0:
        return "-"
    return f"{theirs.median / ours.median:.2f}x"


_E2E_LABELS = {
    "python bare": "Starlette app, no session",
    "python koasession": "Starlette app + koasession (sha256 cookie)",
    "python starlette": "Starlette app + Starlette SessionMiddleware",
    "python starsessions": "Starlette app + starsessions CookieStore",
    E2E_FLOOR: "Starlette app + floor (benchmarks/floor.py)",
    E2E_FLOOR_ORJSON: "Starlette app + floor with orjson",
    E2E_PARTS: "Starlette app + koasession's parts, no engine (benchmarks/parts.py)",
    "node bare": "Koa, no session",
    "node session": "Koa + koa-session 7 (cookie, sha1)",
}


def targets_table(targets: list[Target]) -> list[str]:
    lines = ["| target | status | measured (median, range over rounds) |", "|---|---|---|"]
    lines += [f"| {t.name} | **{t.status}** | {t.detail} |" for t in targets]
    return lines


def markdown(data: Data, targets: list[Target], chart_name: str | None) -> str:
    env = data.env
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`benchmarks/run.py`); do not edit by hand, re-run it. "
        "`make bench-quick` (`benchmarks/run.py --quick`, add `--profile` for the cProfile "
        "and bytecode tables) prints the in-process rows and targets in well under a minute "
        "without writing this page; `benchmarks/run.py --only e2e` (or `inprocess`, `garbage`, "
        "`memory`, `redis`, `profile`, `instructions`, comma-separated) runs and prints one part.",
        "",
        f"Machine: {env['cpu']}, {env['cpus']} CPUs, load average at start {env['load']}; "
        f"Python {env['python']}, koasession {env['koasession']} (JSON: {env.get('json', '?')}), "
        f"Starlette {env['starlette']}, "
        f"starsessions {env['starsessions']}, uvicorn {env['uvicorn']}, redis-py {env['redis']}, "
        f"Node {env['node']}. Whole run: {env['elapsed']}.",
        "",
        "## Targets (issue 12)",
        "",
        "Each target is a ratio of two set-ups measured side by side in this run: in-process, "
        "the ratio is taken round by round (both overheads from the same round of batches) and "
        "reported as the median with its range; end to end, run by run. A target is met when "
        "the median is within the limit.",
        "",
        *targets_table(targets),
        "",
    ]
    floor = floor_lines(data)
    if floor:
        lines += [
            "Distance to the limits (reference rows, not targets; median and range of per-round "
            "ratios):",
            "",
            *[f"- {line}" for line in floor],
            "",
            "The floor row is the counter's wire work in as little Python as possible, with no "
            "options, events, hooks or change detection. The parts row calls the pieces "
            "koasession's plain path is built from (cookie jar, fast lane, codec, header merge) "
            "in a row with no engine around them: from the floor with orjson (koasession uses "
            "orjson when installed) to the parts is what koasession's checks and wire rules "
            "cost, from the parts to koasession what its engine costs. " + floor_verdict(data) + " "
            "[performance](performance.md) has what the plain engine, orjson and a compiled "
            "build change.",
            "",
        ]
    bare = data.bare
    lines += [
        "## In-process cost per request",
        "",
        "The ASGI app is called directly with a prepared scope, receive and send (no server, no "
        "HTTP client). Batches of sequential requests are timed in process CPU time, all rows "
        "round-robin so they share the machine's slow and fast stretches; each figure is the "
        "median over rounds of (batch - the same round's bare batch), in microseconds per "
        f"request. The bare app (no middleware) costs **{bare.us:.2f} us** (best "
        f"{bare.best:.2f}). *untouched*: the handler never looks at the session; *read*: "
        "`session.get('views')`; *counter*: read-modify-write of `views`. Every request "
        "carries the cookie of an existing session. The last columns divide the other "
        "middleware's counter overhead by this row's (above 1: this row is cheaper). The "
        "*pass-through* and *floor* rows are references written in `benchmarks/floor.py`: a "
        "middleware that only wraps `send`, and the counter's wire work (two cookies, "
        "HMAC-SHA256 verify and sign, base64, JSON both ways, two Set-Cookie lines, Vary, "
        "Cache-Control) in as little Python as possible. The *parts* row "
        "(`benchmarks/parts.py`) calls koasession's own pieces for that work in a row, "
        "without its engine.",
        "",
        "| set-up | untouched | read | counter | counter range | Starlette SM / this "
        "| starsessions / this |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in data.configs():
        cells = [_us(data.overhead(name, s)) for s in ("untouched", "read", "counter")]
        counter = data.overhead(name, "counter")
        span = "-" if counter is None else f"{counter.low:.1f}-{counter.high:.1f}"
        ratios = ["", ""]
        if name in COUNTERPARTS:
            ratios = [
                _ratio(counter, data.overhead(other, "counter")) for other in COUNTERPARTS[name]
            ]
        lines.append(f"| {name} | {' | '.join(cells)} | {span} | {' | '.join(ratios)} |")
    lines += [
        "",
        "Starlette SessionMiddleware keeps the data in an itsdangerous-signed cookie; "
        "starsessions rows load the session in the handler (`await load_session(...)`, its "
        "documented way) and write a cookie with its CookieStore, or the id with "
        "InMemoryStore / RedisStore. Redis rows include two loopback round trips per counter "
        "request.",
        "",
    ]
    if chart_name:
        lines += [f"![benchmarks]({chart_name})", ""]
    lines += garbage_section(data)
    lines += e2e_section(data)
    lines += ["## Redis round trips (store mode)", ""]
    if data.redis:
        lines += [
            "Commands sent by koasession's RedisStore, counted per write on redis-py's "
            "connections (after a warm-up request that opened them): before the handler ran "
            "(load) and after (save).",
            "",
            "| request | load | save |",
            "|---|---|---|",
        ]
        for row in data.redis:
            load = ", ".join(row["load"]) or "none"
            save = ", ".join(row["save"]) or "none"
            lines.append(
                f"| {row['case']} | {len(row['load'])} ({load}) | {len(row['save'])} ({save}) |"
            )
        lines.append("")
    else:
        lines += ["Not measured (Redis or RedisStore unavailable, see notes).", ""]
    mem = data.memory
    if mem:
        lines += [
            "## Memory per stored session",
            "",
            f"tracemalloc over {mem['sessions']} sessions written with `MemoryStore.set` "
            f"(data `{{views, user}}` plus `_expire`/`_maxAge`, {mem['json']} bytes of JSON; "
            "default 43-character ids).",
            "",
            "| store | bytes per session |",
            "|---|---:|",
            f"| koasession MemoryStore | {mem['koasession']:.0f} |",
        ]
        if mem.get("starsessions") is not None:
            lines.append(
                f"| starsessions InMemoryStore (bytes values) | {mem['starsessions']:.0f} |"
            )
        lines.append("")
    if data.capacity:
        lines += [
            "## MemoryStore inserts at capacity",
            "",
            CAPACITY_CAPTION,
            "",
            capacity_table(data.capacity),
            "",
        ]
    if data.profiles:
        lines += ["## Profile of the counter path", ""]
        for found in data.profiles:
            lines += [f"### {found.config} / {found.scenario}", "", *profile_table(found), ""]
    if data.work:
        lines += ["## Work per request", "", *work_table(data.work), ""]
    if data.instructions:
        lines += instructions_markdown(data.instructions)
    unmet = [t for t in targets if t.met is False]
    lines += ["## Gaps", ""]
    if unmet:
        lines += [f"- **{t.name}**: {t.detail}." for t in unmet]
    else:
        lines.append("Every measured target is met.")
    lines.append("")
    if data.notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in data.notes] + [""]
    return "\n".join(lines)


def garbage_section(data: Data) -> list[str]:
    if not data.garbage:
        return []
    requests = data.garbage[0].requests
    lines = [
        "## Garbage per request",
        "",
        f"After a warm-up, {requests} requests with the collector disabled, then "
        "`gc.collect()`: the objects it frees sat in reference cycles that reference counting "
        "could not free. Under load such cycles make the collector run on the server's CPU, a "
        "cost the timings above (collector disabled during batches) do not include. The bare "
        "app is the control. `tests/core/test_garbage.py` asserts zero for cookie and "
        "MemoryStore mode.",
        "",
        "| set-up | counter: objects/request | untouched: objects/request |",
        "|---|---:|---:|",
    ]
    by_config: dict[str, dict[str, float]] = {}
    for g in data.garbage:
        by_config.setdefault(g.config, {})[g.scenario] = g.per_request
    for name, found in by_config.items():
        cells = [f"{found[s]:g}" if s in found else "-" for s in ("counter", "untouched")]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    lines.append("")
    return lines


def _steal_lines(data: Data) -> list[str]:
    """How much CPU time the hypervisor took from this machine during the load runs."""
    shares = [r.steal for results in data.e2e.values() for r in results if r.steal is not None]
    if not shares:
        return []
    return [
        "CPU steal during the runs (time the hypervisor gave this machine's CPUs to other "
        f"guests, from /proc/stat): median {100 * spread(shares).median:.1f}%, "
        f"highest {100 * max(shares):.1f}%. Neighbours that share the physical cores slow the "
        "server without showing as steal, so this is a lower bound on their effect.",
        "",
    ]


def e2e_section(data: Data) -> list[str]:
    lines = ["## End to end under load", ""]
    if not data.e2e:
        return [*lines, "Not run (`--no-e2e`).", ""]
    first = next(iter(data.e2e.values()))
    runs = len(first)
    lines += [
        f"One server process ({data.stack} for Python, Node for Koa) pinned to CPU 0, "
        f"{first[0].tool} with 32 keep-alive connections pinned to CPU 1, loopback only; "
        f"{runs} runs per server, round-robin; medians. Every request sends the cookie of an "
        "existing session and the counter writes a new one. *Server CPU* is the server "
        "process's user + system CPU time during the run (psutil or /proc) divided by the requests "
        "completed, so it does not depend on how fast the load generator on the shared machine "
        "was; *over bare* subtracts the bare app's figure from the same round. On a shared "
        "machine requests/s swings with the neighbours' load (see the range in the targets); "
        "the server CPU figures are the steadier measure.",
        "",
        *_steal_lines(data),
        "| server | requests/s | vs bare | server CPU us/request | over bare |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, results in data.e2e.items():
        bare = data.e2e.get("python bare" if key.startswith("python") else "node bare")
        rps = spread([r.rps for r in results]).median
        share = f"{100 * rps / spread([r.rps for r in bare]).median:.0f}%" if bare else "-"
        cpu_values = [r.cpu_us for r in results if r.cpu_us is not None]
        cpu = f"{spread(cpu_values).median:.1f}" if cpu_values else "-"
        over = "-"
        if bare:
            deltas = [
                r.cpu_us - b.cpu_us
                for r, b in zip(results, bare, strict=False)
                if r.cpu_us is not None and b.cpu_us is not None
            ]
            if deltas:
                over = f"{spread(deltas).median:+.1f}"
        errors = "; ".join(sorted({r.errors for r in results if r.errors}))
        label = _E2E_LABELS.get(key, key) + (f" ({errors})" if errors else "")
        lines.append(f"| {label} | {rps:.0f} | {share} | {cpu} | {over} |")
    lines.append("")
    return lines
