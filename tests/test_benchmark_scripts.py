"""The benchmark scripts still import: a helper they use that was renamed or removed fails here,
not at the next ``make bench`` (ruff does not resolve imports; mypy checks src and examples).

Imported in a subprocess run from ``benchmarks/``, where they import each other by plain name.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

IMPORT_ALL = """
import importlib, sys, traceback
failed = []
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ": " + traceback.format_exc(limit=-1).strip())
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_benchmark_script_imports() -> None:
    modules = sorted(path.stem for path in BENCHMARKS.glob("*.py"))
    assert "run" in modules and "parts_ablation" in modules  # the folder was found
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, *modules],
        cwd=BENCHMARKS,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
