"""cookies: Cookie header parsing and Set-Cookie writing."""

from __future__ import annotations

from koasession.cookies import is_token, parse_cookie_header, serialize


def test_parses_several_header_fields() -> None:
    jar = parse_cookie_header(["a=1; b=2", "c=3"])
    assert jar == {"a": "1", "b": "2", "c": "3"}


def test_first_occurrence_wins_and_names_are_exact() -> None:
    jar = parse_cookie_header(["koa.sess=first; koa.sess=second; KOA.SESS=upper; xkoa.sess=x"])
    assert jar["koa.sess"] == "first"
    assert jar["KOA.SESS"] == "upper"
    assert jar["xkoa.sess"] == "x"


def test_only_ascii_space_and_tab_are_stripped_from_names() -> None:
    jar = parse_cookie_header([" \tkoa.sess\t =ok; \xa0koa.sess=nbsp; \x85koa.sess=nel"])
    assert jar["koa.sess"] == "ok"
    assert jar["\xa0koa.sess"] == "nbsp"
    assert jar["\x85koa.sess"] == "nel"
    for lead in ("\xa0", "\x85", "\x1f", "\x0b", "\x0c", "\u3000"):
        jar = parse_cookie_header([f"{lead}koa.sess=planted; koa.sess=real"])
        assert jar["koa.sess"] == "real", repr(lead)


def test_malformed_pairs_are_skipped() -> None:
    assert parse_cookie_header([";;; =nameless; novalue; ok=1; =; a==b"]) == {"ok": "1", "a": "=b"}


def test_values_are_kept_as_sent_but_one_pair_of_quotes() -> None:
    # RFC 6265 cookie-value: DQUOTE *cookie-octet DQUOTE; Node's cookies module unquotes too.
    header = 'q="quoted"; b=a%20b; half="x; two=""y""; lone="; empty=""'
    assert parse_cookie_header([header]) == {
        "q": "quoted",
        "b": "a%20b",
        "half": '"x',
        "two": '"y"',
        "lone": '"',
        "empty": "",
    }


def test_serialize_writes_koa_attribute_order() -> None:
    line = serialize(
        "koa.sess",
        "v",
        path="/",
        expires="Thu, 01 Jan 1970 00:00:00 GMT",
        max_age=0,
        domain="example.com",
        priority="high",
        same_site="lax",
        secure=True,
        http_only=True,
        partitioned=True,
    )
    assert line == (
        "koa.sess=v; path=/; expires=Thu, 01 Jan 1970 00:00:00 GMT; max-age=0; "
        "domain=example.com; priority=high; samesite=lax; secure; httponly; partitioned"
    )


def test_serialize_formats_timestamps_as_http_dates() -> None:
    assert "expires=Tue, 14 Nov 2023 22:13:20 GMT" in serialize("a", "b", expires=1700000000)


def test_token_rule() -> None:
    assert is_token("koa.sess")
    assert is_token("__Host-id")
    for bad in ("", "a b", "a;b", "a=b", "koa:sess", "é"):
        assert not is_token(bad)
