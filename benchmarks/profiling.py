"""Profile the hot path with pyinstrument: the in-process harness, one scenario at a time."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from harness import Config, batch, make_scope


def ensure_pyinstrument() -> str | None:
    """``None`` when pyinstrument can be imported (pip-installing it if needed)."""
    try:
        import pyinstrument  # noqa: F401
    except ImportError:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "pyinstrument>=4.6"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            return f"pyinstrument unavailable: {done.stderr.strip()[-200:]}"
    return None


def profile(config: Config, scenario: str, seconds: float, lines: int = 45) -> str:
    """The top of pyinstrument's call tree for ``seconds`` of ``scenario`` requests."""
    from pyinstrument import Profiler

    app = config.apps[scenario]
    scope = make_scope(config.cookie)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while loop.time() < deadline:
            await batch(app, scope, 500)

    profiler = Profiler(interval=0.0002, async_mode="disabled")
    profiler.start()
    asyncio.run(run())
    profiler.stop()
    text = profiler.output_text(unicode=False, color=False, show_all=False, short_mode=False)
    kept = [line.rstrip() for line in text.splitlines() if line.strip()]
    return "\n".join(kept[:lines])
