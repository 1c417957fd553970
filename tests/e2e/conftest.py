"""Fixtures for the browser tests: Debian's Chromium driven by Playwright, the demo under uvicorn.

Browser downloads are impossible here, so ``playwright install`` is never used: the tests launch
the system Chromium (``apt-get install chromium``) at ``/usr/bin/chromium``. When Playwright, that
binary or uvicorn is missing the tests are skipped with the reason, except under ``CI=true``,
where they fail (``.ci/run`` installs Chromium first).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from _services import unavailable

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless system Chromium, shared by the tests of one module.

    Module scope, not session: Playwright's sync API keeps an event loop running in the main
    thread while it is open, which would break the asyncio tests that pytest runs afterwards.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable(
            "playwright is not installed (pip install playwright; never `playwright install`)"
        )
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class DemoServer:
    """An ASGI app served by uvicorn on a free loopback port, in a background thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))  # bound before uvicorn starts: no port race
        port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def start(self) -> DemoServer:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(10)
        self._sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Any], DemoServer]]:
    """``serve(app)`` starts ``app`` and returns the running server; stopped after the test."""
    try:
        import uvicorn  # noqa: F401
    except ImportError:
        unavailable("uvicorn is not installed (pip install 'koasession[demo]')")
    servers: list[DemoServer] = []

    def start(app: Any) -> DemoServer:
        server = DemoServer(app).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
