"""Machine instructions per request, counted by valgrind: a cost that a busy host barely moves.

The timings in the report swing with the neighbours of a shared machine (on a slow day the
same code measured 3-4 times slower, with round-to-round ranges wider than the gaps the targets
are about). Valgrind's cachegrind runs the program on a simulated CPU and counts every machine
instruction it executes, Python's interpreter and the C libraries (OpenSSL, orjson, binascii)
included, so the count changes when the code does and hardly otherwise. It is not time: it
ignores cache misses and how many instructions a core retires per cycle. It answers "did this
change remove work, and how much", and the ratio of two counts is a steady stand-in for the
ratio of their CPU times.

Each figure is the difference of two runs of the same program with 100 and 1,100 requests,
divided by 1,000: start-up, imports and the warm-up cancel out. What is left to move them is
work paced by the clock: the cookie attributes are made once per second, and an idle uvicorn
ticks ten times a second, so a slower run counts a little more. The count also depends on where
objects land in memory (``heap_pad.py``): in process each row is counted under the four heap
layouts of :data:`LAYOUTS` and the mean taken, which repeats within a few hundred
instructions where a single layout moved by up to 1,700 with unrelated changes. End to end a
count repeats within about 1,000 instructions per request, so the bare server, which every
end-to-end overhead is taken from, is counted three times (the median).

- *in process*: the timed harness's app called directly with a copy of one prepared scope and
  the collector disabled, as in the timed rows;
- *end to end*: the uvicorn server of the load runs (same app, same flags), under valgrind,
  answering one keep-alive connection of sequential requests; its count includes uvicorn's
  and httptools' work, such as checking every response header byte by byte.

Run ``python benchmarks/run.py --only instructions``; it needs ``valgrind`` on the PATH and takes
a few minutes (each run is about 30 times slower under valgrind).
"""

from __future__ import annotations

import asyncio
import gc
import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

from configs import (
    BARE,
    BASE,
    ENCRYPTED,
    FLOOR,
    FLOOR_ORJSON,
    PARTS,
    PASS_THROUGH,
    STARLETTE,
    build_configs,
)
from floor import orjson_codec
from harness import KEY, Config, Scope, batch, make_scope, prime, views_seen

HERE = Path(__file__).resolve().parent
SMALL, LARGE = 100, 1100
#: koasession's counter without the ``_created`` stamp: what ``record_created`` costs.
NO_CREATED = "koasession cookie sha256, record_created=False"
#: The in-process rows counted: (configuration, scenario); rows this machine cannot build (no
#: orjson, no cryptography) are left out.
IN_PROCESS = (
    (BARE, "untouched"),
    (PASS_THROUGH, "untouched"),
    (BASE, "untouched"),
    (FLOOR, "counter"),
    (FLOOR_ORJSON, "counter"),
    (PARTS, "counter"),
    (BASE, "counter"),
    (NO_CREATED, "counter"),
    (ENCRYPTED, "counter"),
    (STARLETTE, "counter"),
)
#: The end-to-end servers counted: ``BENCH_E2E`` mode of e2e_app.py -> the in-process row it serves.
END_TO_END = {
    "bare": BARE,
    "floor": FLOOR,
    "floor-orjson": FLOOR_ORJSON,
    "parts": PARTS,
    "koasession": BASE,
    "starlette": STARLETTE,
}
_MODES = {row: mode for mode, row in END_TO_END.items()}
#: Reference rows: the same wire work, shown against the counter's limits but not held to them.
_REFERENCE_ROWS = (FLOOR, FLOOR_ORJSON, PARTS)
Kind = Literal["in process", "end to end"]
_REFS = re.compile(rb"I\s+refs:\s+([\d,]+)")


@dataclass
class Count:
    kind: Kind
    row: str
    scenario: str
    per_request: float  # instructions, the row's own (not over the bare app)


def available() -> str | None:
    """Why the counts cannot be made here, or ``None``."""
    return None if shutil.which("valgrind") else "valgrind is not installed"


def _valgrind() -> list[str]:
    return ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]


def _env(**extra: str) -> dict[str, str]:
    # A fixed hash seed: dict and set layouts, and so the work, are the same run to run.
    return {**os.environ, "PYTHONHASHSEED": "0", **extra}


def _instructions(stderr: bytes, what: str) -> int:
    found = _REFS.search(stderr)
    if found is None:
        raise RuntimeError(
            f"{what}: no instruction count in valgrind's output:\n{stderr[-2000:]!r}"
        )
    return int(found.group(1).replace(b",", b""))


def program_run(args: list[str], requests: int) -> int:
    """Instructions of ``python *args requests`` under valgrind (the program serves them)."""
    cmd = [*_valgrind(), sys.executable, *args, str(requests)]
    done = subprocess.run(cmd, capture_output=True, env=_env(), timeout=900, check=False)
    what = " ".join(args)
    if done.returncode != 0:
        raise RuntimeError(f"{what}: exit {done.returncode}: {done.stderr[-2000:]!r}")
    return _instructions(done.stderr, what)


#: The heap shifts each in-process count is made under (see heap_pad.py): their mean is the
#: count, so that the layout's luck is not taken for a change's effect.
LAYOUTS = (0, 10, 100, 1000)
_HEAP_PAD = str(HERE / "heap_pad.py")


def per_request(args: list[str]) -> float:
    """Instructions per request of the program ``python *args N`` that serves N requests: the
    mean over the heap layouts of :data:`LAYOUTS`."""
    counts = [_difference(program_run, [_HEAP_PAD, str(pad), *args]) for pad in LAYOUTS]
    return sum(counts) / len(counts)


def _server_run(mode: str, requests: int) -> int:
    from e2e import free_port, get_cookie, uvicorn_cmd, wait_port

    port = free_port()
    server = subprocess.Popen(
        [*_valgrind(), *uvicorn_cmd(port)],
        env=_env(BENCH_E2E=mode),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=HERE.parent,
    )
    try:
        try:
            wait_port(port, server, timeout=180)
        except Exception as exc:  # it exited: say why (a port taken meanwhile, a bad mode)
            stderr = server.communicate(timeout=60)[1] if server.poll() is not None else b""
            raise RuntimeError(f"server {mode}: {exc}: {stderr[-2000:]!r}") from exc
        headers = {} if mode == "bare" else {"Cookie": get_cookie(port)}
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            conn.connect()
            sock = conn.sock
            for _ in range(requests):
                conn.request("GET", "/", headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"server {mode}: answered {response.status}")
            if conn.sock is not sock:  # http.client reconnects silently
                raise RuntimeError(f"server {mode}: the keep-alive connection was closed")
        finally:
            conn.close()
        server.send_signal(signal.SIGINT)  # uvicorn's graceful exit; valgrind then reports
        _, stderr = server.communicate(timeout=300)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    return _instructions(stderr, f"server {mode}")


def _difference(run: Callable[..., int], *args: object) -> float:
    return (run(*args, LARGE) - run(*args, SMALL)) / (LARGE - SMALL)


def workers() -> int:
    """Valgrind runs at a time: one per CPU, at most two (the machines this runs on)."""
    return max(1, min(2, os.cpu_count() or 1))


def measure(log: Callable[[str], None] = print, end_to_end: bool = True) -> list[Count]:
    """The rows of :data:`IN_PROCESS` this machine can build and, with ``end_to_end``, the
    servers of :data:`END_TO_END` (the bare one three times, for its median)."""
    built = {c.name for c in build_configs("not counted")[0]} | {NO_CREATED}
    jobs: list[tuple[Kind, str, str]] = [
        ("in process", row, s) for row, s in IN_PROCESS if row in built
    ]
    if end_to_end:
        for mode, row in END_TO_END.items():
            if mode == "floor-orjson" and orjson_codec() is None:
                continue
            scenario = "untouched" if mode == "bare" else "counter"
            jobs += [("end to end", row, scenario)] * (3 if mode == "bare" else 1)

    def one(job: tuple[Kind, str, str]) -> Count:
        kind, row, scenario = job
        log(f"instructions: {kind}, {row} / {scenario}")
        if kind == "in process":
            per = per_request([str(Path(__file__)), "child", row, scenario])
        else:
            per = _difference(_server_run, _MODES[row])
        return Count(kind, row, scenario, per)

    with ThreadPoolExecutor(max_workers=workers()) as pool:
        counts = list(pool.map(one, jobs))
    bare = [c for c in counts if c.kind == "end to end" and c.row == BARE]
    if bare:
        median = sorted(c.per_request for c in bare)[len(bare) // 2]
        counts = [c for c in counts if c not in bare] + [
            Count("end to end", BARE, "untouched", median)
        ]
    return counts


def _find(counts: list[Count], kind: str, row: str, scenario: str) -> float | None:
    for c in counts:
        if (c.kind, c.row, c.scenario) == (kind, row, scenario):
            return c.per_request
    return None


class Ratio(NamedTuple):
    """One of issue 12's ratios recomputed on instruction counts."""

    what: str
    value: float
    limit: float
    held: bool  # False: a reference row, shown against the limit but not held to it
    at_least: bool = False  # the limit is a floor (requests/s), not a ceiling


def ratios(counts: list[Count]) -> list[Ratio]:
    """Issue 12's ratios recomputed on instruction counts.

    Overheads are over the bare app of the same kind (in process or end to end), as in the
    timed targets; a reference row's ratio shows how close the same wire work gets. The
    requests/s target becomes Starlette's whole server count per request over koasession's:
    a server saturated on one core answers in inverse proportion to its CPU per request, and
    the count stands in for the CPU (it is not time: the timed ratio is the target).
    """
    out: list[Ratio] = []
    for kind in ("in process", "end to end"):
        bare = _find(counts, kind, BARE, "untouched")
        starlette = _find(counts, kind, STARLETTE, "counter")
        if bare is None or starlette is None:
            continue
        limit = 0.5 if kind == "in process" else 0.6
        for row in (*_REFERENCE_ROWS, BASE):
            ours = _find(counts, kind, row, "counter")
            if ours is not None:
                what = f"{kind}, counter: {row} / Starlette SessionMiddleware"
                held = row not in _REFERENCE_ROWS
                out.append(Ratio(what, (ours - bare) / (starlette - bare), limit, held))
    ours_e2e = _find(counts, "end to end", BASE, "counter")
    starlette_e2e = _find(counts, "end to end", STARLETTE, "counter")
    if ours_e2e is not None and starlette_e2e is not None:
        what = (
            "end to end, requests/s on one core: Starlette SessionMiddleware's count / koasession's"
        )
        out.append(Ratio(what, starlette_e2e / ours_e2e, 1.2, True, at_least=True))
    bare = _find(counts, "in process", BARE, "untouched")
    passing = _find(counts, "in process", PASS_THROUGH, "untouched")
    ours = _find(counts, "in process", BASE, "untouched")
    if bare is not None and passing is not None and ours is not None:
        what = "in process, untouched: koasession / pass-through middleware"
        out.append(Ratio(what, (ours - bare) / (passing - bare), 1.5, True))
    signed = _find(counts, "in process", BASE, "counter")
    sealed = _find(counts, "in process", ENCRYPTED, "counter")
    if bare is not None and signed is not None and sealed is not None:
        what = "in process, counter: koasession encrypted / signed"
        out.append(Ratio(what, (sealed - bare) / (signed - bare), 1.3, True))
    return out


def markdown(counts: list[Count]) -> list[str]:
    """The report's section: the counts, then the targets' ratios on them."""
    lines = [
        "## Instructions per request (valgrind)",
        "",
        "Machine instructions counted by valgrind's cachegrind (`benchmarks/instructions.py`): "
        "the difference between runs of 1,100 and 100 requests, divided by 1,000, with a fixed "
        "hash seed (the bare server end to end: the median of three). Unlike the timings, these "
        "counts hardly move with the machine's load; they are not time (no cache misses, no "
        "instructions per cycle), so they are a reference for the targets, not the targets. "
        "*End to end* counts the uvicorn server of the load runs answering sequential "
        "keep-alive requests, uvicorn's own work included.",
        "",
        "| set-up | scenario | in process | over bare | end to end | over bare |",
        "|---|---|---:|---:|---:|---:|",
    ]
    bare = {k: _find(counts, k, BARE, "untouched") for k in ("in process", "end to end")}
    seen: list[tuple[str, str]] = []
    for c in counts:
        if (c.row, c.scenario) not in seen:
            seen.append((c.row, c.scenario))
    for row, scenario in seen:
        cells = []
        for kind in ("in process", "end to end"):
            found = _find(counts, kind, row, scenario)
            base = bare[kind]
            cells.append("-" if found is None else f"{found:,.0f}")
            over = None if found is None or base is None or row == BARE else found - base
            cells.append("-" if over is None else f"{over:+,.0f}")
        lines.append(f"| {row} | {scenario} | {' | '.join(cells)} |")
    lines += [
        "",
        "The targets' ratios on these counts (overheads over the bare app; requests/s from "
        "the servers' whole counts):",
        "",
    ]
    for ratio in ratios(counts):
        limit = ratio.limit
        if not ratio.held:
            verdict = f"a reference row; the target's limit is {limit:g}"
        elif ratio.at_least:
            verdict = f"{'at least' if ratio.value >= limit else 'under'} the target's {limit:g}"
        else:
            verdict = f"{'within' if ratio.value <= limit else 'over'} the target's {limit:g}"
        lines.append(f"- {ratio.what}: **{ratio.value:.2f}** ({verdict})")
    lines.append("")
    return lines


def text(counts: list[Count]) -> str:
    """:func:`markdown` for the terminal."""
    return "\n".join(f"  {line}" for line in markdown(counts))


async def serve_counted(app: Any, scope: Scope, requests: int) -> None:
    """Serve ``requests`` requests as the timed harness does (:func:`harness.batch`: a copy of
    ``scope`` each), after a warm-up and with the collector disabled, as it is there."""
    await batch(app, scope, 20)
    gc.disable()
    await batch(app, scope, requests)


def _child(row: str, scenario: str, requests: int) -> None:
    """The program valgrind runs for one in-process row: build, prime and check, then
    :func:`serve_counted`."""
    from koasession import SessionMiddleware

    configs = build_configs("not counted")[0]
    configs.append(
        Config(
            NO_CREATED,
            "koasession",
            lambda a: SessionMiddleware(a, keys=[KEY], record_created=False),
        )
    )
    found = [c for c in configs if c.name == row]
    if not found:
        raise SystemExit(f"no configuration {row!r} here")
    config = found[0]
    config.build()

    async def serve() -> None:
        if "counter" in config.scenarios:
            await prime(config)
            views = await views_seen(config)
            if not isinstance(views, int) or views < 2:
                raise SystemExit(f"{row}: its own cookie reads back views={views!r}")
        await serve_counted(config.apps[scenario], make_scope(config.cookie), requests)

    asyncio.run(serve())


if __name__ == "__main__":
    if sys.argv[1:2] != ["child"] or len(sys.argv) != 5:
        sys.exit(
            "usage: instructions.py child ROW SCENARIO REQUESTS (what valgrind runs); "
            "run.py --only instructions counts every row"
        )
    _child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
