"""A private PostgreSQL cluster for outage tests: paused, killed and restarted at will.

Never the shared server: the cluster is created with ``initdb`` in a temporary directory, listens
on a free loopback port and a private socket directory, and every signal goes to its own
processes only. Outside CI a missing ``initdb`` skips the tests with the reason; with
``CI=true`` it fails them.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import unavailable


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivatePostgres:
    """One cluster: ``start``, ``pause`` (SIGSTOP), ``resume``, ``kill`` (SIGKILL), ``stop``."""

    def __init__(self, initdb: str, pg_ctl: str, workdir: Path) -> None:
        self.pg_ctl = pg_ctl
        self.workdir = workdir
        self.data = workdir / "data"
        self.port = _free_port()
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root: run it as the postgres user.
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                unavailable("running as root and there is no postgres user to run initdb")
            os.chown(workdir, owner.pw_uid, owner.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]
        self._run([initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"])
        self._paused: list[int] = []

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, argv: list[str]) -> None:
        result = subprocess.run(
            [*self._as_user, *argv], capture_output=True, text=True, timeout=120, cwd=self.workdir
        )
        if result.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {result.stdout[-1000:]} {result.stderr[-1000:]}")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=60"
        )
        log = self.workdir / "log"
        argv = [self.pg_ctl, "-D", str(self.data), "-l", str(log), "-o", options, "-w", "start"]
        try:
            self._run(argv)
        except RuntimeError as exc:
            tail = log.read_text()[-1500:] if log.exists() else ""
            raise RuntimeError(f"{exc}\nserver log:\n{tail}") from None

    def _pids(self) -> list[int]:
        """The postmaster and its children (backends and auxiliary processes)."""
        try:
            postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        pids = [postmaster]
        for stat in glob.glob("/proc/[0-9]*/stat"):
            try:
                fields = Path(stat).read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == postmaster:
                pids.append(int(stat.split("/")[2]))
        return pids

    def _signal(self, pids: list[int], sig: int) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def pause(self) -> None:
        """Freeze every process of the cluster: connections stay open, nothing answers."""
        self._paused = self._pids()
        assert self._paused, "private PostgreSQL is not running"
        self._signal(self._paused, signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(self._paused, signal.SIGCONT)
        self._paused = []

    def kill(self) -> None:
        """A crash: SIGKILL to the postmaster and all its children."""
        pids = self._pids()
        self._signal(pids, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in pids):
            if time.monotonic() > deadline:
                raise RuntimeError("private PostgreSQL did not die")
            time.sleep(0.05)
        # A killed postmaster may linger as a zombie until reaped, which the next postmaster
        # would take for a running server; every process is dead, so the lock files are stale.
        (self.data / "postmaster.pid").unlink(missing_ok=True)
        (self.workdir / f".s.PGSQL.{self.port}.lock").unlink(missing_ok=True)
        (self.workdir / f".s.PGSQL.{self.port}").unlink(missing_ok=True)

    def stop(self) -> None:
        self.resume()
        subprocess.run(
            [*self._as_user, self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
            cwd=self.workdir,
        )


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    """A running private cluster for this module's tests (each test leaves it running)."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        unavailable("initdb/pg_ctl not found: cannot start a private PostgreSQL to pause")
    assert initdb is not None and pg_ctl is not None
    workdir = Path(tempfile.mkdtemp(prefix="ks-pg-"))
    server = None
    try:
        server = PrivatePostgres(initdb, pg_ctl, workdir)
        server.start()
        yield server
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
