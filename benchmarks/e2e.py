"""End-to-end runs on loopback: uvicorn and Node servers under a load generator.

The load generator is ``wrk`` (installed from Debian when missing and we are root with apt-get,
unless BENCH_NO_APT=1), otherwise a keep-alive raw-socket client in a separate process
(``loadgen.py``). With two or more CPUs the server is pinned to CPU 0 and the load generator to
CPU 1, so they do not fight over one core.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
NODE_DIR = HERE / ".node"
CPUS = os.cpu_count() or 1


def log(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def _pin(cpu: int) -> list[str]:
    if CPUS >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", str(cpu)]
    return []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not start in {timeout:.0f} s")


def ensure_wrk() -> str | None:
    """Path to wrk, installing the Debian package when allowed; ``None`` otherwise."""
    found = shutil.which("wrk")
    if found or os.environ.get("BENCH_NO_APT") == "1":
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "wrk"]
    log("wrk is missing: installing the Debian package")
    for attempt in (install, ["apt-get", "update", "-qq"], install):
        try:
            subprocess.run(attempt, env=env, capture_output=True, timeout=180, check=False)
        except subprocess.TimeoutExpired:
            return None
        if shutil.which("wrk"):
            return shutil.which("wrk")
    return None


@dataclass
class LoadResult:
    rps: float
    tool: str
    errors: str = ""
    requests: int = 0  # completed requests, from the load generator
    cpu_s: float | None = None  # the server process's CPU time (user + system) during the run
    steal: float | None = None  # share of the machine's CPU time taken by the hypervisor

    @property
    def cpu_us(self) -> float | None:
        """Server CPU per request in microseconds: what the server spent, whatever the load
        generator on the shared machine managed to send."""
        if self.cpu_s is None or not self.requests:
            return None
        return self.cpu_s / self.requests * 1e6


def machine_ticks() -> tuple[int, int] | None:
    """(stolen, total) CPU ticks of the whole machine since boot, from /proc/stat."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(f) for f in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal (guest time is counted in user already)
    return (fields[7], sum(fields[:8])) if len(fields) >= 8 else None


def steal_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """The share of CPU time the hypervisor gave other guests between two readings."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` (psutil when installed, else /proc/<pid>/stat)."""
    try:
        import psutil

        times = psutil.Process(pid).cpu_times()
        return float(times.user + times.system)
    except ImportError:
        pass
    except Exception:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the parenthesised command name (which may hold spaces): utime and stime
    # are the 14th and 15th fields of the line, in clock ticks.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def get_cookie(port: int) -> str:
    """Make one request and return the Cookie header its Set-Cookie lines ask for."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"priming request answered {response.status}")
        pairs = [
            value.split(";", 1)[0]
            for key, value in response.getheaders()
            if key.lower() == "set-cookie"
        ]
    finally:
        conn.close()
    return "; ".join(pairs)


def run_load(port: int, cookie: str, seconds: float, connections: int) -> LoadResult:
    wrk = shutil.which("wrk")
    url = f"http://127.0.0.1:{port}/"
    if wrk:
        cmd = [*_pin(1), wrk, "-t1", f"-c{connections}", f"-d{seconds:.0f}s", url]
        if cookie:
            cmd[-1:-1] = ["-H", f"Cookie: {cookie}"]
        out = subprocess.run(
            cmd, capture_output=True, text=True, timeout=seconds + 30, check=True
        ).stdout
        match = re.search(r"Requests/sec:\s+([\d.]+)", out)
        total = re.search(r"(\d+) requests in", out)
        if not match or not total:
            raise RuntimeError(f"cannot read wrk output:\n{out}")
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: .*", out)
        return LoadResult(
            float(match.group(1)), "wrk", errors.group(0) if errors else "", int(total.group(1))
        )
    cmd = [
        *_pin(1),
        sys.executable,
        str(HERE / "loadgen.py"),
        str(port),
        str(seconds),
        str(connections),
        cookie,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30, check=True)
    rps, errors, total = out.stdout.split()
    return LoadResult(
        float(rps), "python keep-alive client", "" if errors == "0" else errors, int(total)
    )


def start_server(cmd: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [*_pin(0), *cmd],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=HERE.parent,
    )
    try:
        wait_port(port, proc)
    except Exception:
        stop(proc)
        raise
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def measure_servers(
    servers: dict[str, tuple[list[str], dict[str, str], int]],
    *,
    seconds: float,
    runs: int,
    notes: list[str],
) -> dict[str, list[LoadResult]]:
    """Start every server (idle ones cost nothing), then load them round-robin ``runs`` times,
    so a burst of background load hits all rows alike; every run is kept, in round order, so
    ratios can be taken round by round. The server's CPU time is read before and after each
    run (the server is idle in between, so the difference is the run's work)."""
    procs: dict[str, subprocess.Popen[bytes]] = {}
    cookies: dict[str, str] = {}
    every: dict[str, list[LoadResult]] = {}
    try:
        for name, (cmd, env, port) in servers.items():
            try:
                procs[name] = start_server(cmd, env, port)
                cookies[name] = get_cookie(port)
                run_load(port, cookies[name], 1, 16)  # warm-up
            except Exception as exc:
                notes.append(f"{name} failed: {exc}")
                procs.pop(name, None)
        for _ in range(runs):
            for name, proc in procs.items():
                log(f"e2e: {name}")
                ticks = machine_ticks()
                before = process_cpu(proc.pid)
                result = run_load(servers[name][2], cookies[name], seconds, 32)
                after = process_cpu(proc.pid)
                result.steal = steal_share(ticks, machine_ticks())
                if before is not None and after is not None:
                    result.cpu_s = after - before
                every.setdefault(name, []).append(result)
    finally:
        for proc in procs.values():
            stop(proc)
    return every


def uvicorn_cmd(port: int) -> list[str]:
    cmd = [sys.executable, "-m", "uvicorn", "e2e_app:app", "--app-dir", str(HERE)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    cmd += ["--no-access-log"]
    for module, flag in (("uvloop", "--loop=uvloop"), ("httptools", "--http=httptools")):
        try:
            __import__(module)
            cmd.append(flag)
        except ImportError:
            pass
    return cmd


def server_stack() -> str:
    parts = []
    for module in ("uvloop", "httptools"):
        try:
            __import__(module)
            parts.append(module)
        except ImportError:
            parts.append(f"no {module}")
    return "uvicorn (" + ", ".join(parts) + ")"


def ensure_node() -> str | None:
    """Install koa + koa-session into benchmarks/.node with npm; ``None`` when ready."""
    if not (shutil.which("node") and shutil.which("npm")):
        return "node/npm not installed"
    NODE_DIR.mkdir(exist_ok=True)
    for name in ("package.json", "server.js"):
        shutil.copyfile(HERE / "koa" / name, NODE_DIR / name)
    if not (NODE_DIR / "node_modules" / "koa-session").is_dir():
        log("installing koa and koa-session with npm into benchmarks/.node")
        try:
            done = subprocess.run(
                ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=NODE_DIR,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return "npm install timed out"
        if done.returncode != 0:
            return f"npm install failed: {done.stderr.strip()[-300:]}"
    return None


def node_version() -> str:
    try:
        return subprocess.run(
            ["node", "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except Exception:
        return "?"


def run_all(
    seconds: float, runs: int, python_modes: list[str], node: bool = True
) -> tuple[dict[str, list[LoadResult]], list[str]]:
    notes: list[str] = []
    if ensure_wrk() is None:
        notes.append("wrk unavailable: load from the Python keep-alive client (slower, noisier)")
    servers = {}
    for mode in python_modes:
        port = free_port()
        servers[f"python {mode}"] = (uvicorn_cmd(port), {"BENCH_E2E": mode}, port)
    results = measure_servers(servers, seconds=seconds, runs=runs, notes=notes)
    if not node:
        return results, notes
    reason = ensure_node()
    if reason is not None:
        notes.append(f"Node rows skipped: {reason}")
        return results, notes
    servers = {}
    for mode in ("bare", "session"):
        port = free_port()
        servers[f"node {mode}"] = (
            ["node", str(NODE_DIR / "server.js")],
            {"MODE": mode, "PORT": str(port)},
            port,
        )
    results.update(measure_servers(servers, seconds=seconds, runs=runs, notes=notes))
    return results, notes
