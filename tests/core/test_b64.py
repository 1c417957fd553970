"""The one base64url codec: unpadded, url-safe alphabet, one spelling per value."""

from __future__ import annotations

import base64
import os

import pytest

from koasession.b64 import b64url_decode, b64url_encode


@pytest.mark.parametrize("size", range(0, 40))
def test_round_trip_every_length(size: int) -> None:
    raw = os.urandom(size)
    text = b64url_encode(raw)
    assert "=" not in text
    assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert b64url_decode(text) == raw


@pytest.mark.parametrize(
    ("raw", "text"),
    [(b"", ""), (b"\xfb\xff", "-_8"), (b"f", "Zg"), (b"fo", "Zm8"), (b"foo", "Zm9v")],
)
def test_known_values(raw: bytes, text: str) -> None:
    assert b64url_encode(raw) == text
    assert b64url_decode(text) == raw


@pytest.mark.parametrize(
    "text",
    [
        "Zg==",  # padding
        "Zm9v+w",  # standard alphabet
        "Zm9v/w",
        "Zm 9v",  # a character the standard decoder would skip
        "Zm9v\n",
        "Zm9vY",  # length 1 mod 4
        "Zh",  # non-zero unused bits: "Zg" is the one spelling of b"f"
        "Zm9",  # ditto for b"fo" ("Zm8")
        "Zm9vé",
    ],
)
def test_decode_refuses_non_canonical(text: str) -> None:
    assert b64url_decode(text) is None


def test_decode_refuses_non_str() -> None:
    assert b64url_decode(b"Zm9v") is None  # type: ignore[arg-type]


def test_every_canonical_tail_is_accepted() -> None:
    # Each 1- and 2-byte value has exactly one unpadded spelling and it decodes back.
    for value in range(256):
        raw = bytes([value])
        assert b64url_decode(b64url_encode(raw)) == raw
    for value in range(0, 65536, 7):
        raw = value.to_bytes(2, "big")
        encoded = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        assert b64url_decode(encoded) == raw
