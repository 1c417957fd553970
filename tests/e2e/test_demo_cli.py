"""``koasession demo`` as a user runs it: a subprocess on a free loopback port, real HTTP."""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from _services import REDIS_URL, require_module, require_redis

pytestmark = pytest.mark.timeout(120)

# A random key as secrets.token_urlsafe makes them, forced to start with "-" (one in 64 does):
# `--keys KEY` must still read it as the key, through `koasession demo` into the demo's parser.
KEY = "-" + secrets.token_urlsafe(32)[1:]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class Demo:
    """One ``koasession demo`` process."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "koasession", "demo", "--port", str(port), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=cwd,
        )

    def wait_ready(self) -> Demo:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"demo exited: {self.proc.communicate()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("demo did not start listening")

    def stop(self) -> tuple[str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        out, err = self.proc.communicate()
        return out, err


@pytest.fixture
def run_demo(tmp_path: Path) -> Iterator[Any]:
    """``run_demo(*args, env={...}, port=None)``: a started demo; every one stopped afterwards."""
    demos: list[Demo] = []
    cache = tmp_path / "cache"

    def start(*args: str, env: dict[str, str] | None = None, port: int | None = None) -> Demo:
        base = {k: v for k, v in os.environ.items() if not k.startswith("KOASESSION_KEY")}
        base["XDG_CACHE_HOME"] = str(cache)
        demo = Demo(list(args), {**base, **(env or {})}, tmp_path, port or _free_port())
        demos.append(demo)
        return demo.wait_ready()

    yield start
    for demo in demos:
        demo.stop()


def views(response: httpx.Response) -> int:
    match = re.search(r'<b id="views">(\d+)</b>', response.text)
    assert match, response.text[:500]
    return int(match.group(1))


def shown(response: httpx.Response, element: str) -> str:
    match = re.search(rf'id="{element}">([^<]*)<', response.text)
    assert match, response.text[:500]
    return match.group(1)


def csrf_field(response: httpx.Response) -> str:
    """The CSRF token of the page's first form."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', response.text)
    assert match, response.text[:500]
    return match.group(1)


def test_keys_make_cookies_survive_a_restart(run_demo: Any) -> None:
    demo = run_demo("--keys", KEY)
    with httpx.Client(base_url=demo.url) as client:
        first = client.get("/")
        assert first.status_code == 200 and views(first) == 1
        assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in first.text
        assert views(client.get("/")) == 2
        cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
        _, err = demo.stop()
        assert "WARNING" not in err

        # Same key from the environment this time: the browser's cookies still work.
        again = run_demo(env={"KOASESSION_KEY": KEY}, port=demo.port)
        assert again.url == demo.url
        assert views(client.get("/")) == 3

    # The cookie can be inspected with the key the demo used.
    done = subprocess.run(
        [sys.executable, "-m", "koasession", "inspect", cookie, "--keys", KEY],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"views": 2' in done.stdout


def test_without_a_key_warns_and_sessions_end_at_restart(run_demo: Any) -> None:
    demo = run_demo()
    with httpx.Client(base_url=demo.url) as client:
        client.get("/")
        assert views(client.get("/")) == 2
        _, err = demo.stop()
        assert "KOASESSION_KEY is not set; using a random key" in err
        run_demo(port=demo.port)
        assert views(client.get("/")) == 1  # a new key: the old cookie no longer verifies


def test_store_mode_shows_short_id_and_expiry(run_demo: Any) -> None:
    demo = run_demo("--store", "memory://", "--keys", KEY)
    with httpx.Client(base_url=demo.url) as client:
        page = client.get("/")
        sid = client.cookies["koa.sess"]
        assert shown(page, "sid") == sid[:8] + "\u2026" and sid[8:] not in page.text
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC \(in 1 day\)", shown(page, "expires"))
        client.post("/login", data={"user": "ann", "remember": "1", "csrf_token": csrf_field(page)})
        page = client.get("/")
        new_sid = client.cookies["koa.sess"]
        assert new_sid != sid and shown(page, "sid") == new_sid[:8] + "\u2026"
        assert shown(page, "expires").endswith("(in 30 days)")


def test_redis_entries_carry_the_demo_prefix(run_demo: Any) -> None:
    import redis

    require_redis()
    client_ = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    demo = run_demo("--store", REDIS_URL, "--keys", KEY)
    try:
        with httpx.Client(base_url=demo.url) as client:
            assert client.get("/").status_code == 200
            sid = client.cookies["koa.sess"]
        try:
            assert client_.exists(f"koasession-demo:{sid}") == 1
            assert client_.exists(sid) == 0
        finally:
            client_.delete(f"koasession-demo:{sid}")
    finally:
        client_.close()


def test_sqlite_file_outside_the_repository(run_demo: Any, tmp_path: Path) -> None:
    require_module("aiosqlite")
    demo = run_demo("--store", "sqlite://", "--keys", KEY)
    with httpx.Client(base_url=demo.url) as client:
        assert views(client.get("/")) == 1
        assert views(client.get("/")) == 2
    assert (tmp_path / "cache" / "koasession" / "demo.db").is_file()
    assert not list(tmp_path.glob("*.db"))  # nothing in the working directory


def test_port_taken_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "koasession", "demo", "--port", str(port), "--keys", KEY],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0] == (
        f"koasession demo: error: cannot listen on 127.0.0.1:{port}: the port is already in use "
        "(choose another with --port)"
    )


def test_weak_key_is_refused_before_listening(tmp_path: Path) -> None:
    port = _free_port()
    done = subprocess.run(
        [sys.executable, "-m", "koasession", "demo", "--port", str(port), "--keys", "short"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("koasession demo: error: keys[0]")
    assert "Traceback" not in done.stderr


def test_forms_need_their_csrf_token_and_a_login_flashes(run_demo: Any) -> None:
    demo = run_demo("--store", "memory://", "--keys", KEY)
    with httpx.Client(base_url=demo.url) as client:
        page = client.get("/")
        forged = client.post(
            "/login", data={"user": "mallory"}, headers={"origin": "https://evil.example"}
        )
        assert forged.status_code == 403 and "is not trusted" in forged.text
        tokenless = client.post("/login", data={"user": "mallory"})
        assert tokenless.status_code == 403 and "CSRF token missing" in tokenless.text
        assert 'id="who"' not in client.get("/").text

        before_login = csrf_field(page)
        login = client.post("/login", data={"user": "ann", "csrf_token": before_login})
        assert login.status_code == 303
        page = client.get("/")
        assert shown(page, "who") == "ann"
        assert shown(page, "flash-success") == "Welcome, ann!"
        assert "_csrf" not in shown(page, "session")  # the secret never appears in a page
        assert 'class="flash"' not in client.get("/").text  # shown once

        # The login rotated the token: the one from before it no longer logs out.
        stale = client.post("/logout", data={"csrf_token": before_login})
        assert stale.status_code == 403
        logout = client.post("/logout", data={"csrf_token": csrf_field(page)})
        assert logout.status_code == 303
        assert 'id="who"' not in client.get("/").text


def _login(demo: Any, user: str, agent: str) -> httpx.Client:
    client = httpx.Client(base_url=demo.url, headers={"user-agent": agent})
    token = csrf_field(client.get("/"))
    assert client.post("/login", data={"user": user, "csrf_token": token}).status_code == 303
    assert shown(client.get("/"), "who") == user
    return client


def _rows(page: httpx.Response) -> list[dict[str, str]]:
    rows = re.findall(
        r'<tr class="session" data-handle="([^"]*)"><td class="device">([^<]*)</td>\s*'
        r'<td class="ip">([^<]*)</td>.*?<td>(<b class="current">|<form)',
        page.text,
        flags=re.S,
    )
    return [
        {"handle": h, "device": d, "ip": ip, "current": str(mark.startswith("<b"))}
        for h, d, ip, mark in rows
    ]


def test_your_sessions_page_lists_and_revokes(run_demo: Any) -> None:
    demo = run_demo("--store", "memory://", "--keys", KEY)
    laptop = _login(demo, "ann", "Laptop/1.0")
    phone = _login(demo, "ann", "Phone/2.0")
    tablet = _login(demo, "ann", "Tablet/3.0")
    bob = _login(demo, "bob", "Bob/1.0")
    try:
        page = laptop.get("/sessions")
        assert page.status_code == 200 and shown(page, "count") == "3"
        rows = _rows(page)
        assert [r["device"] for r in rows if r["current"] == "True"] == ["Laptop/1.0"]
        assert sorted(r["device"] for r in rows) == ["Laptop/1.0", "Phone/2.0", "Tablet/3.0"]
        assert {r["ip"] for r in rows} == {"127.0.0.0/24"}  # a prefix, never the address
        phone_handle = next(r["handle"] for r in rows if r["device"] == "Phone/2.0")
        # The page never carries a session id: not the handles, not anywhere in the text.
        for client in (laptop, phone, tablet):
            for cookie in client.cookies.jar:
                assert cookie.value not in page.text
        assert "_device" not in shown(laptop.get("/"), "session")

        # A revoke needs the form's CSRF token.
        forged = laptop.post("/sessions/revoke", data={"handle": phone_handle})
        assert forged.status_code == 403
        assert shown(phone.get("/"), "who") == "ann"

        # Bob cannot end Ann's session with her handle; Ann cannot end Bob's with his.
        bob_page = bob.get("/sessions")
        bob_handle = _rows(bob_page)[0]["handle"]
        done = bob.post(
            "/sessions/revoke", data={"handle": phone_handle, "csrf_token": csrf_field(bob_page)}
        )
        assert done.status_code == 303
        assert shown(bob.get("/sessions"), "flash-success") == "No such session."
        assert shown(phone.get("/"), "who") == "ann"
        laptop.post("/sessions/revoke", data={"handle": bob_handle, "csrf_token": csrf_field(page)})
        assert shown(bob.get("/"), "who") == "bob"

        # Ann ends her phone's session from the laptop.
        page = laptop.get("/sessions")
        ended = laptop.post(
            "/sessions/revoke", data={"handle": phone_handle, "csrf_token": csrf_field(page)}
        )
        assert ended.status_code == 303
        page = laptop.get("/sessions")
        assert shown(page, "flash-success") == "Session ended."
        assert sorted(r["device"] for r in _rows(page)) == ["Laptop/1.0", "Tablet/3.0"]
        assert 'id="who"' not in phone.get("/").text

        # "Log out all other sessions" keeps this one only; Bob is untouched.
        others = laptop.post("/sessions/others", data={"csrf_token": csrf_field(page)})
        assert others.status_code == 303
        page = laptop.get("/sessions")
        assert shown(page, "flash-success") == "Logged out 1 other session(s)."
        assert [(r["device"], r["current"]) for r in _rows(page)] == [("Laptop/1.0", "True")]
        assert 'id="who"' not in tablet.get("/").text
        assert shown(laptop.get("/"), "who") == "ann"
        assert shown(bob.get("/"), "who") == "bob"
    finally:
        for client in (laptop, phone, tablet, bob):
            client.close()


def test_your_sessions_needs_a_login(run_demo: Any) -> None:
    demo = run_demo("--store", "memory://", "--keys", KEY)
    with httpx.Client(base_url=demo.url) as client:
        response = client.get("/sessions")
        assert response.status_code == 303 and response.headers["location"] == "/"
