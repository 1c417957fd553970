"""What the real-server tests share: a server subprocess with its output file, and what a clean
shutdown never prints (tests/e2e/test_other_servers.py, tests/e2e/test_gunicorn.py)."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from _services import require_redis

#: What a clean shutdown never prints (compared in lower case).
SHUTDOWN_NOISE = (
    "traceback",
    "event loop is closed",
    "task was destroyed",
    "unclosed",
    "resourcewarning",
    "was deleted before being closed",  # aiosqlite
    "never awaited",
    "exception ignored",
)


def listening_socket() -> tuple[socket.socket, int]:
    """A socket listening on a free loopback port, and the port: bound here, so no other
    process can take the port before the server (given the socket's fd) starts."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock, sock.getsockname()[1]


def spawn(
    argv: list[str],
    *,
    cwd: Path,
    log: Path,
    env: dict[str, str],
    pass_fds: tuple[int, ...] = (),
) -> subprocess.Popen[bytes]:
    """``python argv...`` as a server in its own process group, its output in ``log``: warnings
    shown, output unbuffered, ``cwd`` (where the tests write the apps' modules) importable."""
    path = os.pathsep.join(filter(None, [str(cwd), os.environ.get("PYTHONPATH")]))
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, *argv],
            pass_fds=pass_fds,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env={
                **os.environ,
                "PYTHONPATH": path,
                "PYTHONWARNINGS": "default",
                "PYTHONUNBUFFERED": "1",
                **env,
            },
            start_new_session=True,
        )


def assert_quiet(output: str, ignore: Callable[[str], bool] | None = None) -> None:
    """No :data:`SHUTDOWN_NOISE` in ``output``, leaving out the lines ``ignore`` accepts (a
    server's own warnings)."""
    kept = (
        output
        if ignore is None
        else "\n".join(filter(lambda line: not ignore(line), output.splitlines()))
    )
    lowered = kept.lower()
    for noise in SHUTDOWN_NOISE:
        assert noise not in lowered, f"{noise!r} in the server output:\n{output}"


@dataclass
class ServerProcess:
    """A server subprocess (the leader of its own process group) and its output file."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    _stopped: bool = field(default=False, init=False)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 15) -> str:
        """The output once ``pattern`` occurs ``count`` times in it (an error after timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            out = self.text()
            if out.count(pattern) >= count:
                return out
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} x{count} not in the output:\n{out}")
            time.sleep(0.05)

    def stop(
        self, sig: signal.Signals = signal.SIGTERM, *, group: bool = False, timeout: float = 20
    ) -> int | None:
        """Send ``sig`` to the server (to its whole group with ``group``, as Ctrl-C does) and
        wait for it to exit; its return code (``None`` when it did not exit in time)."""
        if self.proc.poll() is None:
            if group:
                os.killpg(self.proc.pid, sig)
            else:
                self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        finally:
            self._stopped = True

    def kill_group(self) -> None:
        """Kill whatever is left of the server's process group (after a test, pass or fail)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)

    def stop_and_kill(self) -> None:
        """A fixture's teardown: stop the server if the test did not, then kill its group."""
        if not self._stopped:
            self.stop()
        self.kill_group()


@contextlib.contextmanager
def redis_env(tag: str) -> Iterator[dict[str, str]]:
    """An app's environment for a RedisStore (``STORE_URL``) under a key prefix of this test's
    own (``KEY_PREFIX``); the keys under it are deleted afterwards."""
    import redis

    url = require_redis()
    prefix = f"kstest-{tag}:{secrets.token_hex(4)}:"
    try:
        yield {"STORE_URL": url, "KEY_PREFIX": prefix}
    finally:
        with redis.Redis.from_url(url) as client:
            for key in client.scan_iter(match=prefix + "*"):
                client.delete(key)


def redis_keys(env: dict[str, str]) -> list[bytes]:
    """The keys under the prefix of a :func:`redis_env`."""
    import redis

    with redis.Redis.from_url(env["STORE_URL"]) as client:
        return list(client.scan_iter(match=env["KEY_PREFIX"] + "*"))
