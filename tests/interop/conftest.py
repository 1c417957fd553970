"""Fixtures for the Node interop tests: the reference Koa + koa-session 7 app, and Redis.

The Koa app lives in ``tests/interop/koa_app`` (package.json + package-lock.json, installed with
``npm ci`` on first use). Without ``node``/``npm`` (or without a reachable Redis, for the store
tests) the tests are skipped with the reason, except under ``CI=true``, where a missing tool is a
failure: CI must really run them.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from _services import require_redis, unavailable

KOA_APP_DIR = Path(__file__).parent / "koa_app"
NPM_CI_TIMEOUT = 300
SERVER_START_TIMEOUT = 20.0


# --------------------------------------------------------------------------------------------
# Node and the Koa app
# --------------------------------------------------------------------------------------------


def _node_modules_ready() -> bool:
    installed = KOA_APP_DIR / "node_modules" / ".package-lock.json"
    lock = KOA_APP_DIR / "package-lock.json"
    if not installed.is_file():
        return False
    needed = ("koa", "koa-session", "koa-redis", "keygrip", "koa-flash")
    if not all((KOA_APP_DIR / "node_modules" / name / "package.json").is_file() for name in needed):
        return False
    # A lockfile newer than the install means the pinned versions changed: reinstall.
    return installed.stat().st_mtime >= lock.stat().st_mtime


@pytest.fixture(scope="session")
def koa_app_dir() -> Path:
    """The Koa app directory, with its node_modules installed (``npm ci``) if missing."""
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(n for n, p in (("node", node), ("npm", npm)) if p is None)
        unavailable(f"Node interop tests need {missing} on PATH (Node >= 18.19)")
    assert npm is not None
    if not _node_modules_ready():
        cmd = [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"]
        try:
            proc = subprocess.run(
                cmd,
                cwd=KOA_APP_DIR,
                capture_output=True,
                text=True,
                timeout=NPM_CI_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            unavailable(f"`npm ci` in {KOA_APP_DIR} timed out after {NPM_CI_TIMEOUT}s")
        else:
            if proc.returncode != 0:
                unavailable(
                    f"`npm ci` in {KOA_APP_DIR} failed (exit {proc.returncode}); "
                    f"is the npm registry reachable?\n{proc.stderr[-2000:]}"
                )
    return KOA_APP_DIR


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class KoaServer:
    """One running ``node server.js`` process."""

    env: dict[str, str]
    port: int
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def _start_koa(app_dir: Path, config: dict[str, str]) -> KoaServer:
    node = shutil.which("node")
    assert node is not None
    last_error = ""
    for _attempt in range(3):
        port = _free_port()
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            "NODE_ENV": "test",
            **config,
            "PORT": str(port),
        }
        process = subprocess.Popen(
            [node, "server.js"],
            cwd=app_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        server = KoaServer(env=config, port=port, process=process)
        lines: queue.Queue[str | None] = queue.Queue()

        def pump(
            proc: subprocess.Popen[str] = process,
            out: list[str] = server.output,
            lines: queue.Queue[str | None] = lines,
        ) -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                out.append(line.rstrip("\n"))
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                server.stop()
                raise RuntimeError(
                    f"Koa app did not print 'ready' within {SERVER_START_TIMEOUT}s; "
                    f"output:\n" + "\n".join(server.output)
                )
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:  # the process exited before it was ready
                process.wait(timeout=5)
                last_error = "\n".join(server.output)
                break
            if line.startswith("ready"):
                return server
        if "EADDRINUSE" not in last_error:
            break
    raise RuntimeError(f"Koa app failed to start with {config}:\n{last_error}")


KoaFactory = Callable[..., KoaServer]


@pytest.fixture(scope="session")
def koa_server(koa_app_dir: Path) -> Iterator[KoaFactory]:
    """Start (or reuse) a Koa server for a configuration.

    ``koa_server(keys=["a", "b"], algorithm="sha1", max_age=86400000 | "session" | None,
    store=None | "redis", redis_url=..., prefix=...)``. Servers are shared by every test that
    asks for the same configuration and stopped at the end of the session.
    """
    servers: dict[tuple[tuple[str, str], ...], KoaServer] = {}

    def factory(
        *,
        keys: list[str],
        algorithm: str = "sha1",
        max_age: int | str | None = None,
        store: str | None = None,
        redis_url: str | None = None,
        prefix: str | None = None,
        key: str | None = None,
    ) -> KoaServer:
        config = {"KEYS": ",".join(keys), "ALGORITHM": algorithm}
        if max_age is not None:
            config["MAX_AGE"] = str(max_age)
        if store is not None:
            config["STORE"] = store
        if redis_url is not None:
            config["REDIS_URL"] = redis_url
        if prefix is not None:
            config["SESSION_PREFIX"] = prefix
        if key is not None:
            config["KEY"] = key
        cache_key = tuple(sorted(config.items()))
        server = servers.get(cache_key)
        if server is None or server.process.poll() is not None:
            server = servers[cache_key] = _start_koa(koa_app_dir, config)
        return server

    try:
        yield factory
    finally:
        for server in servers.values():
            server.stop()


# --------------------------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url() -> str:
    """REDIS_URL (default redis://127.0.0.1:6379), after checking that it answers PING."""
    return require_redis()


@pytest.fixture(scope="session")
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A session-id prefix unique to this test run; its Redis keys are deleted at the end."""
    import redis

    prefix = f"koasession-interop:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"*{prefix}*"))
        if keys:
            client.delete(*keys)
    finally:
        with contextlib.suppress(Exception):
            client.close()
