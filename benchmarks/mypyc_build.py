"""Compile koasession's core with mypyc in a throw-away copy and measure it (issue 12).

    python benchmarks/mypyc_build.py [--build-dir DIR] [--runs 3] [--tests]
    make bench-mypyc

Copies ``src/koasession`` to ``DIR/src`` (``DIR``: ``mypyc-build`` in the temporary directory,
emptied first), compiles :data:`MODULES` there with mypyc (the dev extra's mypy brings it; a C
compiler and the Python headers are needed), then runs ``benchmarks/run.py --quick`` in turn
against the pure-Python package and the compiled copy (``PYTHONPATH``), each with the json
module and with orjson, and prints the counter rows and their medians. ``--tests`` also runs
a slice of the test suite against the compiled copy. Nothing is written inside the repository;
not part of ``make test``. The results and the decision are in docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: What mypyc compiles as the code stands: the per-request leaves and the adapter. The engine
#: itself (enginestate, loading, committing, responding, lifecycle and the mixins they combine)
#: is not among them: mypyc refuses a class made of several non-trait bases
#: (``RequestSession``), a ``TYPE_CHECKING`` block in a class body (``EngineState``), and an
#: interpreted class may not subclass a compiled one, so those modules stay Python together.
MODULES = [
    "asgi",
    "codec",
    "config",
    "context",
    "cookieformat",
    "cookies",
    "cookiesize",
    "decisions",
    "events",
    "ids",
    "merging",
    "options",
    "session",
    "signing",
    "storeio",
]

#: Tests run against the compiled copy with --tests: the engine, security and koa's own suite.
TEST_SLICE = [
    "tests/core",
    "tests/security",
    "tests/koa",
    "tests/test_serializers.py",
    "tests/test_koa_options.py",
    "tests/test_docs.py",
]

_ROW = re.compile(r"koasession cookie sha256: untouched ([0-9.]+) .*; counter ([0-9.]+)")
_RATIO = re.compile(r"counter, koasession / floor: ([0-9.]+)")


def build(build_dir: Path) -> Path:
    """Copy the package to ``build_dir/src`` and compile :data:`MODULES`; the ``src`` path."""
    src = build_dir / "src"
    shutil.rmtree(build_dir, ignore_errors=True)
    shutil.copytree(
        ROOT / "src" / "koasession",
        src / "koasession",
        ignore=shutil.ignore_patterns("__pycache__", "*.so"),
    )
    files = [f"koasession/{name}.py" for name in MODULES]
    print(f"[mypyc] compiling {len(files)} modules in {src} (about a minute)", flush=True)
    subprocess.run(
        [sys.executable, "-m", "mypyc", *files], cwd=src, check=True, stdout=subprocess.DEVNULL
    )
    return src


def quick_bench(pythonpath: Path | None, json: str) -> tuple[float, float, float]:
    """One ``run.py --quick``: (untouched us, counter us, counter koasession/floor ratio)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["KOASESSION_JSON"] = json
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    row, ratio = _ROW.search(out), _RATIO.search(out)
    if row is None or ratio is None:
        raise RuntimeError(f"unexpected run.py output:\n{out}")
    return float(row.group(1)), float(row.group(2)), float(ratio.group(1))


def measure(src: Path, runs: int) -> None:
    builds: list[tuple[str, Path | None]] = [("pure Python", None), ("mypyc", src)]
    results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    for run in range(runs):
        # Alternate the set-ups so that a slow stretch of a shared machine hits them all.
        for name, path in builds:
            for json in ("std", "orjson"):
                got = quick_bench(path, json)
                results.setdefault((name, json), []).append(got)
                print(f"[mypyc] run {run + 1}: {name:11s} {json:6s} {got}", flush=True)
    print("\nmedians over runs (us of overhead over the bare app; the ratio to the floor row")
    print("of the same run cancels most of the machine's drift):")
    for (name, json), got in results.items():
        untouched, counter, ratio = (statistics.median(column) for column in zip(*got, strict=True))
        print(
            f"  {name:11s} json={json:6s} untouched {untouched:6.2f}  counter {counter:6.2f}"
            f"  counter/floor {ratio:.2f}"
        )


def run_tests(src: Path) -> int:
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TEST_SLICE]
    print(f"[mypyc] {' '.join(command[2:])} against the compiled copy", flush=True)
    return subprocess.run(command, cwd=ROOT, env=env).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(tempfile.gettempdir()) / "mypyc-build"
    parser.add_argument("--build-dir", type=Path, default=default)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tests", action="store_true", help="also run a slice of the tests")
    args = parser.parse_args()
    src = build(args.build_dir.resolve())
    measure(src, args.runs)
    return run_tests(src) if args.tests else 0


if __name__ == "__main__":
    sys.exit(main())
