"""The ``koasession`` command line: what it prints and its exit status."""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from _services import DATABASE_URL, REDIS_URL, require_module, require_redis, unavailable
from koasession import SessionMiddleware, __version__
from koasession.cli import main
from koasession.codec import encode
from koasession.diagnose import keygen
from koasession.signing import Signer

KEY = keygen()  # never starts with "-", which argparse would read as an option
OLD = keygen()


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``koasession ARGV`` in process: exit status, stdout, stderr."""
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse: --version, --help, usage errors
        status = int(exc.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


def signed_header(data: dict[str, Any], key: str = KEY, alg: str = "sha256") -> str:
    value = encode(data)
    return f"koa.sess={value}; koa.sess.sig={Signer([key], (alg,)).sign(f'koa.sess={value}')}"


def live(seconds: float, **data: Any) -> dict[str, Any]:
    expire = int((time.time() + seconds) * 1000)
    return {**data, "_expire": expire, "_maxAge": int(seconds * 1000)}


@pytest.fixture(autouse=True)
def _no_env_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("KOASESSION_KEY")]:
        monkeypatch.delenv(name)


# -- --version -----------------------------------------------------------------------------------


def test_version_as_a_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "koasession", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"koasession {__version__}"


# -- inspect: arguments --------------------------------------------------------------------------


def test_options_in_any_order(capsys: pytest.CaptureFixture[str]) -> None:
    cookie = signed_header(live(3600, views=2), key=OLD)
    parts = [[cookie], ["--keys", KEY], ["--keys", OLD], ["--key", "koa.sess"]]
    outputs = set()
    for order in itertools.permutations(parts):
        # --keys order matters (the first signs): keep KEY before OLD in every permutation.
        flat = [arg for part in order for arg in part]
        if flat.index(KEY) > flat.index(OLD):
            continue
        status, out, _ = run(["inspect", *flat], capsys)
        assert status == 0, out
        outputs.add(out)
    assert len(outputs) == 1
    assert "signed by keys[1] (rotated)" in outputs.pop()


def test_keys_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cookie = signed_header(live(3600, views=1), key=OLD)
    status, out, _ = run(["inspect", cookie], capsys)
    assert status == 1 and "no keys given" in out
    monkeypatch.setenv("KOASESSION_KEY", f"{KEY}\n {OLD}")
    status, out, _ = run(["inspect", cookie], capsys)
    assert status == 0 and "keys[1]" in out
    monkeypatch.setenv("KOASESSION_KEYS", OLD)  # the old plural name is not read
    monkeypatch.delenv("KOASESSION_KEY")
    status, out, _ = run(["inspect", cookie], capsys)
    assert status == 1 and "no keys given" in out


def test_a_key_and_a_signature_may_start_with_a_dash(capsys: pytest.CaptureFixture[str]) -> None:
    # One random key or signature in 64 starts with "-", which argparse reads as an option.
    dashed = next(k for k in (secrets.token_urlsafe(32) for _ in range(10_000)) if k[0] == "-")
    cookie = signed_header(live(3600, views=1), key=dashed)
    status, out, err = run(["inspect", cookie, "--keys", dashed], capsys)
    assert status == 0, out + err
    value = cookie.split("; ")[0].split("=", 1)[1]
    keys = (secrets.token_urlsafe(32) for _ in range(10_000))
    key = next(k for k in keys if Signer([k]).sign(f"koa.sess={value}")[0] == "-")
    signature = Signer([key]).sign(f"koa.sess={value}")
    status, out, err = run(["inspect", value, "--signature", signature, "--keys", key], capsys)
    assert status == 0, out + err
    assert "signed by keys[0]" in out
    # An abbreviation argparse reads as one of them (--sig) takes a dashed value the same way;
    # --key is another option (the cookie name), not an abbreviation of --keys.
    status, out, err = run(["inspect", value, "--sig", signature, "--keys", key], capsys)
    assert status == 0, out + err
    assert "signed by keys[0]" in out
    status, out, err = run(["inspect", value, "--key", "-" + "x" * 30, "--keys", key], capsys)
    assert status != 0


def test_several_keys_in_one_option_value(capsys: pytest.CaptureFixture[str]) -> None:
    cookie = signed_header(live(3600, views=1), key=OLD)
    status, out, _ = run(["inspect", cookie, "--keys", f"{KEY} {OLD}"], capsys)
    assert status == 0 and "keys[1]" in out


def test_algorithms_repeated_or_comma_separated(capsys: pytest.CaptureFixture[str]) -> None:
    cookie = signed_header(live(3600), alg="sha1")
    for flags in (["--algorithm", "sha256", "--algorithm", "sha1"], ["--algorithm", "sha256,sha1"]):
        status, out, _ = run(["inspect", *flags, cookie, "--keys", KEY], capsys)
        assert status == 0 and "second-choice algorithm" in out


def test_bare_value_with_signature_flag(capsys: pytest.CaptureFixture[str]) -> None:
    header = signed_header(live(3600, views=4))
    value, sig = header.split("; ")[0].split("=", 1)[1], header.split("koa.sess.sig=")[1]
    status, out, _ = run(["inspect", value, "--keys", KEY], capsys)
    assert status == 1 and "the signature with --signature SIG" in out
    status, out, _ = run(["inspect", "--signature", sig, value, "--keys", KEY], capsys)
    assert status == 0 and '"views": 4' in out


# -- inspect: what it says -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "lifetime", "left"),
    [
        (86400, "1 day (86400 s; koa maxAge 86400000 ms)", "in 23 h 59 min"),
        (9030, "2 h 30 min (9030 s;", "in 2 h 30 min"),
        (30 * 86400, "30 days (2592000 s;", "in 29 days 23 h"),
        (1800, "30 min (1800 s;", "in 29 min"),
    ],
)
def test_lifetimes_in_days_and_hours(
    seconds: int, lifetime: str, left: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = live(seconds - 20)
    data["_maxAge"] = seconds * 1000
    status, out, _ = run(["inspect", signed_header(data), "--keys", KEY], capsys)
    assert status == 0
    assert f"lifetime:  {lifetime}" in out
    assert f"({left})" in out


def test_hints_name_real_flags(capsys: pytest.CaptureFixture[str]) -> None:
    sid = secrets.token_urlsafe(32)
    status, out, _ = run(["inspect", signed_header_id(sid), "--keys", KEY], capsys)
    assert status == 1 and "pass --store-id (store mode)" in out
    status, out, _ = run(["inspect", signed_header_id(sid), "--keys", KEY, "--store-id"], capsys)
    assert status == 0 and "valid store session id" in out and "pass --store URL" in out

    sha1 = signed_header(live(3600), alg="sha1")
    status, out, _ = run(["inspect", sha1, "--keys", KEY], capsys)
    assert status == 1
    assert "set --algorithm sha1, or --algorithm sha256 --algorithm sha1 while migrating" in out

    old_name = signed_header(live(3600)).replace("koa.sess", "koa:sess")
    status, out, _ = run(["inspect", old_name, "--keys", KEY], capsys)
    assert status == 1 and "pass --key koa:sess" in out

    assert "key=" not in out


def signed_header_id(sid: str) -> str:
    return f"koa.sess={sid}; koa.sess.sig={Signer([KEY], ('sha256',)).sign(f'koa.sess={sid}')}"


def test_encrypted_cookie_without_encrypt(capsys: pytest.CaptureFixture[str]) -> None:
    crypto = require_module("koasession.crypto")
    token = crypto.CookieCipher([KEY], cookie_name="koa.sess").seal(live(3600, user="ann"))
    status, out, _ = run(["inspect", f"koa.sess={token}", "--keys", KEY], capsys)
    assert status == 1
    assert "this is an encrypted cookie (it opens with keys[0]): pass --encrypt" in out
    assert "missing signature" not in out
    status, out, _ = run(["inspect", f"koa.sess={token}", "--keys", OLD], capsys)
    assert status == 1 and "the value looks encrypted" in out and "pass --encrypt" in out
    status, out, _ = run(["inspect", f"koa.sess={token}"], capsys)
    assert status == 1 and "looks encrypted" in out
    status, out, _ = run(["inspect", "--encrypt", f"koa.sess={token}", "--keys", KEY], capsys)
    assert status == 0 and '"user": "ann"' in out


def test_signed_cookie_inspected_with_encrypt(capsys: pytest.CaptureFixture[str]) -> None:
    require_module("cryptography")
    status, out, _ = run(["inspect", signed_header(live(60)), "--keys", KEY, "--encrypt"], capsys)
    assert status == 1 and "inspect it without --encrypt" in out


def test_usage_error_is_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(["inspect", "x", "--algorithm", "md5", "--keys", KEY], capsys)
    assert status == 1
    assert err.startswith("koasession inspect: error: algorithm must be one of")
    assert "Traceback" not in err


# -- inspect --store -------------------------------------------------------------------------------


async def _login(store: Any, user: str) -> str:
    """A Cookie header for a session saved in ``store`` by the middleware itself."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["session"]["user"] = user
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = SessionMiddleware(app, keys=[KEY], store=store)
    transport = httpx.ASGITransport(app=middleware)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/")
    return "; ".join(f"{k}={v}" for k, v in response.cookies.items())


def _store_case(url: str, options: dict[str, Any], flags: list[str], capsys: Any) -> None:
    from koasession.stores import store_from_url

    async def save() -> tuple[str, str]:
        store = store_from_url(url, **options)
        try:
            header = await _login(store, "ann")
            sid = header.split("koa.sess=")[1].split(";")[0]
        finally:
            await store.close()
        return header, sid

    async def destroy(sid: str) -> None:
        store = store_from_url(url, **options)
        try:
            await store.destroy(sid, ctx=None)
        finally:
            await store.close()

    header, sid = asyncio.run(save())
    status, out, _ = run(["inspect", "--store", url, *flags, header, "--keys", KEY], capsys)
    assert status == 0, out
    assert out.startswith("koa.sess (store): OK: valid store session, signed by keys[0]")
    assert '"user": "ann"' in out and "(in 23 h 59 min)" in out

    # Without the prefix or table the app uses: nothing there, and the reason says why.
    status, out, err = run(["inspect", "--store", url, header, "--keys", KEY], capsys)
    assert status == 1
    if url.startswith("sqlite"):
        assert "no such table: koasession_sessions" in err and "Traceback" not in err
    else:
        assert "has no entry under it" in out

    # A forged signature: the data is shown but marked unverified, and the verdict is rejection.
    forged = header.split("koa.sess.sig=")[0] + "koa.sess.sig=" + "A" * 43
    status, out, _ = run(["inspect", "--store", url, *flags, forged, "--keys", KEY], capsys)
    assert status == 1 and "UNVERIFIED" in out and "did not verify" in out

    asyncio.run(destroy(sid))
    status, out, _ = run(["inspect", "--store", url, *flags, header, "--keys", KEY], capsys)
    assert status == 1
    assert "has no entry under it: expired, destroyed (logout)" in out


def test_store_lookup_sqlite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_module("aiosqlite")
    url = f"sqlite:///{tmp_path / 'sessions.db'}"
    _store_case(url, {"table": "app_sessions"}, ["--table", "app_sessions"], capsys)


def test_store_lookup_redis(capsys: pytest.CaptureFixture[str]) -> None:
    require_redis()
    prefix = f"kstest-cli:{secrets.token_hex(4)}:"
    _store_case(REDIS_URL, {"key_prefix": prefix}, ["--prefix", prefix], capsys)


def test_store_lookup_hides_the_password(capsys: pytest.CaptureFixture[str]) -> None:
    require_module("asyncpg")
    scheme, _, rest = DATABASE_URL.partition("://")
    user, _, host = rest.rpartition("@")
    if not user or ":" in user:
        pytest.skip("DATABASE_URL already carries a password")
    # Trust authentication ignores the password; it must still never be printed.
    url = f"{scheme}://{user}:hunter2-{secrets.token_hex(4)}@{host}"
    table = f"ks_cli_{secrets.token_hex(4)}"
    header = signed_header_id(secrets.token_urlsafe(32))
    status, out, err = run(
        ["inspect", "--store", url, "--table", table, header, "--keys", KEY], capsys
    )
    if "Connect" in err or "connect" in err:
        unavailable(f"PostgreSQL unreachable at {DATABASE_URL}: {err}")
    assert status == 1
    assert "hunter2" not in out + err
    # The table does not exist and inspecting does not create it.
    assert "does not exist" in out + err


def test_store_flag_checks(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    header = signed_header_id(secrets.token_urlsafe(32))
    status, _, err = run(["inspect", header, "--keys", KEY, "--store", "memory://"], capsys)
    assert status == 2 and "memory:// store lives inside the app's process" in err
    url = f"sqlite:///{tmp_path / 'x.db'}"
    status, _, err = run(
        ["inspect", header, "--keys", KEY, "--store", url, "--prefix", "p"], capsys
    )
    assert status == 1 and "--prefix is for redis:// stores" in err
    status, _, err = run(["inspect", header, "--keys", KEY, "--store", url], capsys)
    assert status == 1 and "no such database file" in err
    assert not (tmp_path / "x.db").exists()
