"""cookiesize: opt-in compression and chunking of cookie-mode payloads."""

from __future__ import annotations

import base64
import random
import string
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from koasession import codec, cookies
from koasession.cookiesize import (
    COMPRESSED_PREFIX,
    COOKIE_LINE_LIMIT,
    MAX_CHUNKS,
    check_compression,
    chunk_cookies,
    compress_value,
    expand_value,
    is_compressed,
    join_chunks,
    split_value,
    stale_chunk_names,
)
from koasession.errors import ConfigurationError
from koasession.signing import Signer

KEY = "xZqTBffAl431XeYZcNG6xjzkB2O-ln8mGRKOPBZEH9I"
OLD_KEY = "Jft5LuFcN5Fh6pSwk9QHmhfoW8dNDyMBQ12iqtAC75s"
REPETITIVE = {"notes": ["the same words again"] * 80, "user": "ada"}


def _noise(length: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(length))


# -- compression -------------------------------------------------------------------------------


def test_compression_shrinks_repetitive_payloads_and_round_trips() -> None:
    plain = codec.encode(REPETITIVE)
    packed = compress_value(plain)
    assert is_compressed(packed) and packed.startswith(COMPRESSED_PREFIX)
    assert len(packed) < len(plain) / 4
    assert cookies.is_safe_value(packed)
    assert expand_value(packed) == plain
    assert codec.decode(expand_value(packed) or "") == REPETITIVE


def test_compression_only_when_shorter() -> None:
    for data in [{}, {"a": 1}, {"token": _noise(60)}]:
        plain = codec.encode(data)
        assert compress_value(plain) == plain
        assert expand_value(plain) == plain  # unmarked values pass through


def test_compressed_value_fails_closed_in_readers_that_do_not_know_the_marker() -> None:
    packed = compress_value(codec.encode(REPETITIVE))
    # koasession's own decoder is as lenient as Node's Buffer.from(v, 'base64'): it skips the
    # marker, and the compressed bytes are not JSON.
    assert codec.decode(packed) is None
    with pytest.raises(ValueError):
        codec.decode_value(packed)


def test_values_that_are_not_base64_are_not_compressed() -> None:
    assert compress_value("not base64!") == "not base64!"


@pytest.mark.parametrize(
    "value",
    [
        "~",
        "~!!!!",
        "~a",
        "~aGVsbG8",  # base64 of "hello", not a zlib stream
        "~" + base64.urlsafe_b64encode(zlib.compress(b"{}")[:-3]).decode().rstrip("="),
        "~" + base64.urlsafe_b64encode(zlib.compress(b"{}") + b"junk").decode().rstrip("="),
        "~" + base64.urlsafe_b64encode(zlib.compress(b"{}")).decode(),  # padded
        "~é",
    ],
)
def test_bad_compressed_values_are_refused(value: str) -> None:
    assert expand_value(value) is None


def test_decompression_is_bounded() -> None:
    bomb = zlib.compress(b'{"x":"' + b"a" * (8 << 20) + b'"}', 9)
    value = COMPRESSED_PREFIX + base64.urlsafe_b64encode(bomb).decode().rstrip("=")
    assert len(value) < 12_000
    assert expand_value(value) is None
    small = compress_value(codec.encode(REPETITIVE))
    assert expand_value(small, max_size=100) is None
    assert expand_value(small, max_size=len(codec.to_bytes(REPETITIVE))) is not None


@given(st.dictionaries(st.text(max_size=8), st.text(max_size=40) | st.integers(), max_size=8))
def test_compression_round_trips(data: dict[str, object]) -> None:
    plain = codec.encode(data)
    assert expand_value(compress_value(plain)) == plain


def test_compression_is_refused_with_encryption() -> None:
    check_compression(compress=True, encrypt=False)
    check_compression(compress=False, encrypt=True)
    with pytest.raises(ConfigurationError, match="CRIME"):
        check_compression(compress=True, encrypt=True)


# -- chunking ----------------------------------------------------------------------------------

ATTRS = cookies.attributes(
    path="/",
    expires=2_000_000_000.0,
    max_age=86400,
    domain="example.com",
    priority=None,
    same_site="lax",
    secure=True,
    http_only=True,
    partitioned=False,
)


def _lines(pairs: list[tuple[str, str]]) -> list[str]:
    return [f"{name}={value}; {ATTRS}" for name, value in pairs]


@pytest.mark.parametrize("length", [1, 100, 4000, 4096, 9000, 20_000])
def test_split_keeps_every_line_within_the_limit_and_loses_nothing(length: int) -> None:
    value = _noise(length)
    pairs = split_value("koa.sess", value, attributes_length=len(ATTRS))
    assert [name for name, _ in pairs] == [f"koa.sess.{i}" for i in range(1, len(pairs) + 1)]
    assert "".join(part for _, part in pairs) == value
    assert all(len(line) <= COOKIE_LINE_LIMIT for line in _lines(pairs))
    # Chunks are as full as they can be: only the last line is short.
    assert all(len(line) == COOKIE_LINE_LIMIT for line in _lines(pairs)[:-1])


def test_split_with_no_attributes_and_a_small_limit() -> None:
    pairs = split_value("s", "abcdefghij", attributes_length=0, limit=8)
    assert pairs == [("s.1", "abcd"), ("s.2", "efgh"), ("s.3", "ij")]


def test_split_refuses_impossible_lines_and_too_many_chunks() -> None:
    with pytest.raises(ValueError, match="cannot fit"):
        split_value("koa.sess", "abc", attributes_length=4090)
    with pytest.raises(ValueError, match="chunks"):
        split_value("koa.sess", "x" * (COOKIE_LINE_LIMIT * (MAX_CHUNKS + 1)), attributes_length=0)


def test_chunked_cookies_carry_one_signature_and_reassemble() -> None:
    signer = Signer([KEY])
    value = codec.encode({"big": _noise(6000)})
    pairs = chunk_cookies("koa.sess", value, signer, attributes_length=len(ATTRS))
    names = [name for name, _ in pairs]
    assert names == ["koa.sess.1", "koa.sess.2", "koa.sess.3", "koa.sess.sig"]
    assert sum(name.endswith(".sig") for name in names) == 1
    assert all(len(line) <= COOKIE_LINE_LIMIT for line in _lines(pairs))
    jar = dict(pairs)
    assert jar["koa.sess.sig"].startswith("3.")
    assert join_chunks("koa.sess", jar, signer) == (value, 0)
    assert join_chunks("koa.sess", dict(jar, other="x", **{"koa.sess": "y"}), signer) == (value, 0)


def test_reassembly_refuses_missing_extra_reordered_and_forged_chunks() -> None:
    signer = Signer([KEY])
    jar = dict(chunk_cookies("k", _noise(300), signer, attributes_length=0, limit=110))
    count = int(jar["k.sig"].split(".")[0])
    assert count >= 3 and join_chunks("k", jar, signer) is not None

    missing = {name: value for name, value in jar.items() if name != "k.2"}
    assert join_chunks("k", missing, signer) is None
    last = {name: value for name, value in jar.items() if name != f"k.{count}"}
    assert join_chunks("k", last, signer) is None
    assert join_chunks("k", dict(jar, **{f"k.{count + 1}": "more"}), signer) is None
    assert join_chunks("k", dict(jar, **{"k.15": "stale"}), signer) is None
    swapped = dict(jar, **{"k.1": jar["k.2"], "k.2": jar["k.1"]})
    assert join_chunks("k", swapped, signer) is None
    assert join_chunks("k", dict(jar, **{"k.1": jar["k.1"][:-1] + "!"}), signer) is None
    # Dropping the last chunk and claiming one fewer fails too: the count is signed.
    shorter = dict(last, **{"k.sig": f"{count - 1}." + jar["k.sig"].partition(".")[2]})
    assert join_chunks("k", shorter, signer) is None
    assert join_chunks("k", jar, Signer([OLD_KEY])) is None


@pytest.mark.parametrize("manifest", [None, "", "3", ".sig", "0.sig", "03.sig", "x.sig", "99.s"])
def test_reassembly_refuses_bad_manifests(manifest: str | None) -> None:
    signer = Signer([KEY])
    jar = dict(chunk_cookies("k", "abcdef", signer, attributes_length=0, limit=6))
    if manifest is None:
        del jar["k.sig"]
    else:
        jar["k.sig"] = manifest
    assert join_chunks("k", jar, signer) is None


def test_chunk_signature_is_not_an_ordinary_cookie_signature() -> None:
    signer = Signer([KEY])
    jar = dict(chunk_cookies("k", "abc", signer, attributes_length=0))
    assert jar["k.sig"] != "1." + signer.sign("k=abc")
    assert signer.verify("k=abc", jar["k.sig"].partition(".")[2]) < 0


def test_reassembly_reports_an_older_key() -> None:
    jar = dict(chunk_cookies("k", "abcdef", Signer([OLD_KEY]), attributes_length=0))
    assert join_chunks("k", jar, Signer([KEY, OLD_KEY])) == ("abcdef", 1)


def test_stale_chunk_names() -> None:
    jar = {"k.1": "a", "k.2": "b", "k.3": "c", "k.10": "d", "k.sig": "x", "k": "y", "k.x": "z"}
    assert stale_chunk_names("k", jar, 2) == ["k.3", "k.10"]
    assert stale_chunk_names("k", jar, 0) == ["k.1", "k.2", "k.3", "k.10"]
    assert stale_chunk_names("k", jar, 10) == []
    assert stale_chunk_names("other", jar, 0) == []
    # Past MAX_CHUNKS no response wrote the cookie: not ours to expire, however many are sent.
    junk = dict(jar, **{f"k.{i}": "j" for i in range(MAX_CHUNKS + 1, 5000)})
    assert stale_chunk_names("k", junk, 2) == ["k.3", "k.10"]


def test_reassembly_ignores_chunk_names_past_the_limit() -> None:
    signer = Signer([KEY])
    jar = dict(chunk_cookies("k", "abcdef", signer, attributes_length=0, limit=6))
    assert join_chunks("k", dict(jar, **{f"k.{MAX_CHUNKS + 1}": "x"}), signer) == ("abcdef", 0)


def test_compressed_then_chunked_round_trip() -> None:
    signer = Signer([KEY])
    data = {"rows": [{"id": i, "name": f"row {i}"} for i in range(600)]}
    plain = codec.encode(data)
    packed = compress_value(plain)
    assert len(packed) < len(plain)
    jar = dict(chunk_cookies("koa.sess", packed, signer, attributes_length=len(ATTRS)))
    joined = join_chunks("koa.sess", jar, signer)
    assert joined is not None
    assert codec.decode(expand_value(joined[0]) or "") == data


@given(
    st.text(max_size=80),
    st.dictionaries(st.sampled_from(["k.sig", "k.1", "k.2", "k.3"]), st.text(max_size=20)),
)
def test_readers_never_raise(value: str, jar: dict[str, str]) -> None:
    expanded = expand_value(COMPRESSED_PREFIX + value)
    assert expanded is None or codec.lenient_b64decode(expanded) is not None
    assert join_chunks("k", jar, Signer([KEY])) is None
