"""Issue 10: the places where koasession differed from koa-session 7.0.2 by mistake.

Every scenario runs on both sides with pinned clocks and compares what a browser or a store
sees: the Set-Cookie lines (but for our extra Max-Age, deviation 12), the store writes and
the events. The Node side is ``koa_app/parity.js``, a one-shot runner around real koa-session
(``node parity.js '<scenario>'`` prints every response); ours is :func:`parity_app` under
:class:`~koasession.SessionMiddleware` with the same routes.
"""

from __future__ import annotations

import base64
import json
import random
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest

from koasession import ConfigurationError, SessionMiddleware, codec

from .test_koa_interop import frozen_clock, keygrip_sign, py_store_side, without_max_age

KEY = "YV10DrBOu60KXeVuxFYvqaH5N9DIKxhwYcl9rWyFTwE"
NOW = 1_700_000_000_997  # ms; + 1024003 lands exactly on a second boundary
DAY_MS = 86_400_000


# --------------------------------------------------------------------------------------------
# The two sides
# --------------------------------------------------------------------------------------------


def run_koa(app_dir: Path, requests: list[dict[str, Any]], **scenario: Any) -> list[dict[str, Any]]:
    """Run ``requests`` through real koa-session (``parity.js``); one result per request."""
    scenario = {"keys": [KEY], "algorithm": "sha1", **scenario, "requests": requests}
    proc = subprocess.run(
        ["node", "parity.js", json.dumps(scenario)],
        cwd=app_dir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    results: list[dict[str, Any]] = json.loads(proc.stdout)
    return results


class RecordingStore:
    """A store that keeps koa-redis's format and reports every ``set`` like parity.js does."""

    def __init__(self) -> None:
        self.entries: dict[str, str] = {}
        self.sets: list[dict[str, Any]] = []

    def get(self, key: str, max_age: Any, *, rolling: bool, ctx: Any) -> Any:
        raw = self.entries.get(key)
        return None if raw is None else json.loads(raw)

    def set(
        self, key: str, data: Any, max_age: Any, *, rolling: bool, changed: bool, ctx: Any
    ) -> None:
        raw = codec.dumps(data)
        self.sets.append({"key": key, "json": raw, "changed": changed, "rolling": rolling})
        self.entries[key] = raw

    def destroy(self, key: str, *, ctx: Any) -> None:
        self.entries.pop(key, None)


def _hex_encode(payload: dict[str, Any]) -> str:
    return codec.dumps(payload).encode().hex()


async def parity_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The routes of parity.js."""
    pairs = parse_qsl(scope["query_string"].decode(), keep_blank_values=True)
    query = dict(pairs)
    session = scope["session"]
    path = scope["path"]
    if path in ("/set", "/save"):
        for name, value in pairs:
            session[name] = value
        if path == "/save":
            await session.save()
    elif path == "/setjson":
        for name, value in json.loads(query["data"]).items():
            session[name] = value
    elif path == "/options":
        for name, value in json.loads(query.get("opts", "{}")).items():
            setattr(session.options, name, _hex_encode if value == "hex" else value)
        for name, value in json.loads(query.get("data", "{}")).items():
            session[name] = value
    elif path == "/clear":
        scope["session"] = None
    body = json.dumps({"session": None if scope["session"] is None else dict(session)})
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body.encode()})


async def run_py(
    monkeypatch: pytest.MonkeyPatch,
    requests: list[dict[str, Any]],
    store: RecordingStore | None = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """Run ``requests`` through our middleware; results shaped like parity.js's."""
    events: list[dict[str, Any]] = []
    app = SessionMiddleware(
        parity_app,
        keys=[KEY],
        algorithm="sha1",
        same_site=None,
        record_created=False,  # compared byte for byte with koa-session, which has no _created
        store=store,
        on_event=lambda name, p: events.append(
            {"name": name, "key": p["key"], "value": p["value"]}
        ),
        **options,
    )
    jar: dict[str, str] = {}
    results = []
    for spec in requests:
        events.clear()
        if store is not None:
            store.sets.clear()
        cookie = spec.get("cookie")
        if cookie == "$jar":
            cookie = "; ".join(f"{k}={v}" for k, v in jar.items())
        with frozen_clock(monkeypatch, spec.get("now") or NOW):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                response = await client.get(spec["path"], headers={"cookie": cookie or ""})
        lines = response.headers.get_list("set-cookie")
        for line in lines:
            name, _, value = line.split(";", 1)[0].partition("=")
            if value:
                jar[name] = value
            else:
                jar.pop(name, None)
        results.append(
            {
                "status": response.status_code,
                "setCookie": [without_max_age(line) for line in lines],
                "body": response.json(),
                "events": [e for e in events if e["name"] in ("missed", "expired", "invalid")],
                "storeSets": [dict(s) for s in store.sets] if store is not None else [],
            }
        )
    return results


def value_of(lines: list[str], name: str = "koa.sess") -> str:
    (value,) = [
        line.split(";", 1)[0][len(name) + 1 :] for line in lines if line.startswith(name + "=")
    ]
    return value


def signed(value: str) -> str:
    return f"koa.sess={value}; koa.sess.sig={keygrip_sign(KEY, f'koa.sess={value}')}"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# --------------------------------------------------------------------------------------------
# 2. millisecond precision
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_age_ms", [1_024_003, 86_400_001, 2_500, 604_799_999])
async def test_lifetime_milliseconds_and_expires_match_koa(
    koa_app_dir: Path, monkeypatch: pytest.MonkeyPatch, max_age_ms: int
) -> None:
    requests = [{"path": "/set?x=1", "now": NOW}]
    (koa,) = run_koa(koa_app_dir, requests, options={"maxAge": max_age_ms})
    (ours,) = await run_py(monkeypatch, requests, max_age=max_age_ms / 1000)
    assert ours["setCookie"] == koa["setCookie"]
    payload = json.loads(base64.b64decode(value_of(ours["setCookie"])))
    assert payload["_maxAge"] == max_age_ms
    assert payload["_expire"] == NOW + max_age_ms


@pytest.mark.parametrize("max_age_ms", [1_024_003, 2_500])
async def test_rolling_resave_keeps_a_koa_lifetime_exact(
    koa_app_dir: Path, monkeypatch: pytest.MonkeyPatch, max_age_ms: int
) -> None:
    (minted,) = run_koa(
        koa_app_dir, [{"path": "/set?x=1", "now": NOW}], options={"maxAge": max_age_ms}
    )
    cookie = signed(value_of(minted["setCookie"]))
    # Read a second later by apps configured with another lifetime, rolling: the cookie's wins.
    requests = [{"path": "/get", "cookie": cookie, "now": NOW + 1000}]
    (koa,) = run_koa(koa_app_dir, requests, options={"maxAge": DAY_MS, "rolling": True})
    (ours,) = await run_py(monkeypatch, requests, max_age=DAY_MS / 1000, rolling=True)
    assert koa["setCookie"], "koa re-saves a rolling session"
    assert ours["setCookie"] == koa["setCookie"]
    assert json.loads(base64.b64decode(value_of(ours["setCookie"])))["_maxAge"] == max_age_ms


# --------------------------------------------------------------------------------------------
# 3. quoted cookie values
# --------------------------------------------------------------------------------------------


async def test_quoted_cookie_values_are_read_like_koa(
    koa_app_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = b64('{"q":1}')
    sig = keygrip_sign(KEY, f"koa.sess={value}")
    quoted_sig = keygrip_sign(KEY, f'koa.sess="{value}"')
    requests = [
        # the signature covers the unquoted value; either cookie may be quoted
        {"path": "/get", "cookie": f'koa.sess="{value}"; koa.sess.sig={sig}'},
        {"path": "/get", "cookie": f'koa.sess="{value}"; koa.sess.sig="{sig}"'},
        # a signature over the quoted text is a bad signature on both sides
        {"path": "/get", "cookie": f'koa.sess="{value}"; koa.sess.sig={quoted_sig}'},
    ]
    koa = run_koa(koa_app_dir, requests)
    ours = await run_py(monkeypatch, requests)
    for theirs, mine in zip(koa, ours, strict=True):
        assert mine["body"]["session"] == theirs["body"]["session"]
        assert mine["setCookie"] == theirs["setCookie"]
    assert [r["body"]["session"] for r in ours] == [{"q": 1}, {"q": 1}, {}]
    assert ours[0]["setCookie"] == ours[1]["setCookie"] == []  # nothing cleared
    assert [line.split("=", 1)[0] for line in ours[2]["setCookie"]] == ["koa.sess.sig"]


# --------------------------------------------------------------------------------------------
# 4. JSON bytes identical to JSON.stringify
# --------------------------------------------------------------------------------------------

JSON_CASES = {
    "index keys first": '{"b":1,"10":2,"2":3,"a":{"1":1,"x":2,"0":3},"4294967295":5,'
    '"4294967294":6,"01":7,"-1":8}',
    "numbers": '{"one":1.0,"small":1e-7,"tiny":1.5e-7,"micro":0.000001,"negzero":-0.0,'
    '"big":1e21,"bigger":1.5e21,"e20":1e20,"max":1.7976931348623157e308,"sum":0.30000000000000004,'
    '"min":5e-324,"half":-2.5,"list":[1.0,2.50,1E+2]}',
    "text": '{"emoji":"😀","lone":"a\\ud800b","pair":"\\ud83d\\ude00","rev":"\\udc00\\ud800",'
    '"seps":"\\u2028\\u2029","ctl":"\\u0000\\u001f\\u007f"}',
    "nested": '{"cart":{"items":[{"sku":"A-1","qty":3.0},{"9":"nine","8":"eight"}]},"tags":[]}',
}


@pytest.mark.parametrize("text", JSON_CASES.values(), ids=JSON_CASES.keys())
async def test_cookie_bytes_equal_json_stringify(
    koa_app_dir: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    requests = [{"path": "/setjson?" + urlencode({"data": text}), "now": NOW}]
    (koa,) = run_koa(koa_app_dir, requests, options={"maxAge": DAY_MS})
    (ours,) = await run_py(monkeypatch, requests, max_age=DAY_MS / 1000)
    assert base64.b64decode(value_of(ours["setCookie"])) == base64.b64decode(
        value_of(koa["setCookie"])
    )
    assert ours["setCookie"] == koa["setCookie"]


@pytest.mark.parametrize("text", JSON_CASES.values(), ids=JSON_CASES.keys())
async def test_redis_store_bytes_equal_koa_redis(
    koa_app_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    redis_url: str,
    redis_prefix: str,
    text: str,
) -> None:
    """Our RedisStore writes what koa-redis writes: ``JSON.stringify`` of the same data."""
    import redis

    requests = [{"path": "/setjson?" + urlencode({"data": text}), "now": NOW}]
    (koa,) = run_koa(koa_app_dir, requests, store="memory", options={"maxAge": 60_000})
    (koa_set,) = koa["storeSets"]
    async with py_store_side(redis_url, redis_prefix, max_age=60, same_site=None) as py:
        with frozen_clock(monkeypatch, NOW):
            response = await py.get(requests[0]["path"])
    sid = response.json()["externalKey"]
    client = redis.Redis.from_url(redis_url)
    try:
        raw = client.get(sid)
    finally:
        client.close()
    assert raw == koa_set["json"].encode()


async def test_big_integers_are_written_exactly_a_documented_deviation(
    koa_app_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Integers beyond 2**53: we write the exact digits, JavaScript the double's shortest digits
    padded with zeros. Koa reads both as the same number."""
    text = '{"id":1152921504606846976}'
    requests = [{"path": "/setjson?" + urlencode({"data": text}), "now": NOW}]
    (koa,) = run_koa(koa_app_dir, requests, options={"maxAge": DAY_MS})
    (ours,) = await run_py(monkeypatch, requests, max_age=DAY_MS / 1000)
    assert b'"id":1152921504606847000,' in base64.b64decode(value_of(koa["setCookie"]))
    assert b'"id":1152921504606846976,' in base64.b64decode(value_of(ours["setCookie"]))
    cookie = signed(value_of(ours["setCookie"]))
    (read,) = run_koa(koa_app_dir, [{"path": "/get", "cookie": cookie, "now": NOW + 1000}])
    assert read["body"]["session"] == {"id": 1152921504606847000}


# --------------------------------------------------------------------------------------------
# 5. the changed flag of a forced save
# --------------------------------------------------------------------------------------------


async def test_store_sees_changed_on_the_write_that_carries_the_change(
    koa_app_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests = [
        {"path": "/set?a=1", "now": NOW},
        {"path": "/save?b=1", "cookie": "$jar", "now": NOW + 1000},  # changed, then save()
        {"path": "/save", "cookie": "$jar", "now": NOW + 2000},  # save() without a change
    ]
    koa = run_koa(koa_app_dir, requests, store="memory", options={"maxAge": 60_000})
    ours = await run_py(monkeypatch, requests, store=RecordingStore(), max_age=60)

    def writes(result: dict[str, Any]) -> list[tuple[str, bool]]:
        return [(s["json"], s["changed"]) for s in result["storeSets"]]

    assert writes(ours[0]) == writes(koa[0])
    # koa writes twice (save() with changed=false, then auto-commit with changed=true); we write
    # once (deviation 7), and that write is the one koa's store sees last: changed=true.
    assert [changed for _, changed in writes(koa[1])] == [False, True]
    assert writes(ours[1]) == writes(koa[1])[-1:]
    assert writes(ours[2]) == writes(koa[2]) == [(writes(koa[2])[0][0], False)]


# --------------------------------------------------------------------------------------------
# 6. falsy payloads
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("json_text", ["null", "0", "false", '""', "0.0", "-0"])
async def test_falsy_payload_is_missed_like_koa(
    koa_app_dir: Path, monkeypatch: pytest.MonkeyPatch, json_text: str
) -> None:
    requests = [{"path": "/get", "cookie": signed(b64(json_text))}]
    (koa,) = run_koa(koa_app_dir, requests)
    (ours,) = await run_py(monkeypatch, requests)
    assert koa["events"] == [{"name": "missed", "key": None, "value": json.loads(json_text)}]
    assert ours["events"] == koa["events"]
    assert ours["body"]["session"] == koa["body"]["session"] == {}


async def test_truthy_non_object_payload_stays_invalid_a_documented_deviation(
    koa_app_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests = [{"path": "/get", "cookie": signed(b64("42"))}]
    (koa,) = run_koa(koa_app_dir, requests)
    (ours,) = await run_py(monkeypatch, requests)
    assert koa["events"] == []  # koa makes a session out of the number
    assert [e["name"] for e in ours["events"]] == ["invalid"]
    assert ours["body"]["session"] == {}


# --------------------------------------------------------------------------------------------
# 7. per-request options
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "opts", [{"signed": False}, {"encode": "hex"}, {"signed": False, "encode": "hex"}]
)
async def test_per_request_signed_and_encode_are_honoured_like_koa(
    koa_app_dir: Path, monkeypatch: pytest.MonkeyPatch, opts: dict[str, Any]
) -> None:
    path = "/options?" + urlencode({"opts": json.dumps(opts), "data": '{"x":1}'})
    requests = [{"path": path, "now": NOW}]
    (koa,) = run_koa(koa_app_dir, requests, options={"maxAge": DAY_MS})
    (ours,) = await run_py(monkeypatch, requests, max_age=DAY_MS / 1000)
    assert ours["setCookie"] == koa["setCookie"]
    names = [line.split("=", 1)[0] for line in ours["setCookie"]]
    assert names == (["koa.sess"] if opts.get("signed") is False else ["koa.sess", "koa.sess.sig"])


async def test_options_that_cannot_change_per_request_raise() -> None:
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        options = scope["session"].options
        for name, value in (("auto_commit", False), ("key", "other"), ("store", None)):
            with pytest.raises(ConfigurationError, match=f"^{name} cannot change per request"):
                setattr(options, name, value)
            seen.append(name)
        with pytest.raises(AttributeError, match="maxAge"):
            options.maxAge = 5  # type: ignore[attr-defined]
        with pytest.raises(ConfigurationError, match="same_site"):
            options.same_site = "sometimes"
        with pytest.raises(ConfigurationError, match="inject"):
            options.path = "/; domain=evil.example"
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = SessionMiddleware(app, keys=[KEY])
    transport = httpx.ASGITransport(app=middleware)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/")
    assert response.status_code == 204
    assert seen == ["auto_commit", "key", "store"]


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.randint(-(2**53), 2**53)
    if kind == 2:  # floats; no integral ones from 2**53 to 1e21 (deviation: exact digits)
        value = rng.choice([rng.uniform(-1, 1), rng.random() * 10 ** rng.randint(-12, 15)])
        return float(round(value)) if rng.random() < 0.2 else value
    if kind == 3:
        big = rng.random() * 10 ** rng.randint(22, 300)
        return rng.choice([0.0, -0.0, 1e21, 1e-7, 5e-324, 1.7976931348623157e308, big, -big])
    if kind in (4, 5):
        alphabet = 'ab1.0e+"\\/\x00\x1f\u2028é日😀\ud800\udc00'
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(6)))
    if kind in (6, 7):
        keys = [rng.choice(["0", "1", "2", "10", "01", "-1", "4294967295", "a", "b1", "x"])]
        keys += [str(rng.randrange(20)) for _ in range(rng.randrange(4))]
        return {key: _random_value(rng, depth + 1) for key in keys}
    return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]


def test_dumps_equals_json_stringify_on_random_data(koa_app_dir: Path) -> None:
    """Differential: 300 random objects, serialised by codec.dumps and by Node's JSON.stringify
    after each side parses the same JSON text."""
    rng = random.Random(10)
    texts = [json.dumps({"k": _random_value(rng), "10": 1, "2": 2.5}) for _ in range(300)]
    script = (
        "const lines = require('fs').readFileSync(0, 'utf8').trim().split('\\n');"
        "process.stdout.write(JSON.stringify(lines.map((l) => JSON.stringify(JSON.parse(l)))));"
    )
    proc = subprocess.run(
        ["node", "-e", script],
        cwd=koa_app_dir,
        input="\n".join(texts),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    theirs = json.loads(proc.stdout)
    ours = [codec.dumps(json.loads(text)) for text in texts]
    mismatches = [(t, o, j) for t, o, j in zip(texts, ours, theirs, strict=True) if o != j]
    assert mismatches == []


async def test_per_request_signed_true_signs_and_needs_keys() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        session = scope["session"]
        session.options.signed = True
        session["x"] = 1
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    for keys, status in (([KEY], 204), ([], None)):
        middleware = SessionMiddleware(app, keys=keys, signed=False)
        transport = httpx.ASGITransport(app=middleware)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            if status is None:
                with pytest.raises(ConfigurationError, match="signed=True needs keys"):
                    await client.get("/")
                continue
            response = await client.get("/")
        lines = response.headers.get_list("set-cookie")
        value = value_of(lines)
        sig = keygrip_sign(KEY, f"koa.sess={value}", "sha256")
        assert value_of(lines, "koa.sess.sig") == sig


@pytest.mark.parametrize(
    ("stored", "events"), [(0, ["missed"]), ("", ["missed"]), (42, ["invalid"])]
)
async def test_store_values_that_are_not_objects(stored: Any, events: list[str]) -> None:
    """koa reports a falsy store value as missed; a truthy non-object is our invalid."""
    seen: list[tuple[str, Any]] = []

    class Odd(RecordingStore):
        def get(self, key: str, max_age: Any, *, rolling: bool, ctx: Any) -> Any:
            return stored

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = SessionMiddleware(
        app, keys=[KEY], store=Odd(), on_event=lambda n, p: seen.append((n, p["value"]))
    )
    transport = httpx.ASGITransport(app=middleware)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        cookie = f"koa.sess=abc; koa.sess.sig={keygrip_sign(KEY, 'koa.sess=abc', 'sha256')}"
        await client.get("/", headers={"cookie": cookie})
    assert seen == [(name, stored) for name in events]
