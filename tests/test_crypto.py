"""The encrypted cookie format (koasession.crypto, format version 1)."""

from __future__ import annotations

import base64
import json
import math
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from koasession.crypto import (
    FORMAT_VERSION,
    KID_LENGTH,
    MAX_DEPTH,
    MAX_TOKEN_LENGTH,
    NONCE_LENGTH,
    CookieCipher,
)
from koasession.errors import ConfigurationError

KEY_NEW = "XPlnaeJlbgxVs-zkT3CVKCed3dWf_tRadD4c_754kpc"
KEY_OLD = "b3OckKWPj2AWzPjQDv5h8LtmzBusiacm9Xnxw_Mdls8"
KEY_GONE = "8rkWjgUXGq7zrvVGiJ-kqbEFOsUbx6hsM8ajisGC2GI"
NAME = "koa.sess"
DATA: dict[str, Any] = {"views": 1, "_expire": 1700000000000, "_maxAge": 86400000}


def b64d(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@pytest.fixture
def cipher() -> CookieCipher:
    return CookieCipher([KEY_NEW, KEY_OLD], cookie_name=NAME)


# --------------------------------------------------------------------------- format


def test_round_trip(cipher: CookieCipher) -> None:
    token = cipher.seal(DATA)
    assert cipher.open(token) == (DATA, 0)


def test_token_layout(cipher: CookieCipher) -> None:
    token = cipher.seal(DATA)
    assert "=" not in token and "+" not in token and "/" not in token
    raw = b64d(token)
    assert raw[0] == FORMAT_VERSION == 1
    plaintext_len = len(json.dumps(DATA, separators=(",", ":")).encode())
    assert len(raw) == 1 + KID_LENGTH + NONCE_LENGTH + plaintext_len + 16
    # the plaintext does not appear in the token
    assert b"views" not in raw and "views" not in token


def test_nonce_is_fresh_each_seal(cipher: CookieCipher) -> None:
    tokens = {cipher.seal(DATA) for _ in range(50)}
    assert len(tokens) == 50
    nonces = {b64d(t)[1 + KID_LENGTH : 1 + KID_LENGTH + NONCE_LENGTH] for t in tokens}
    assert len(nonces) == 50


def test_unicode_and_metadata_round_trip(cipher: CookieCipher) -> None:
    data = {"msg": 'a;b\r\n"c" 😀 日本語', "_private": [1, 2.5, None, True], "_session": True}
    assert cipher.open(cipher.seal(data)) == (data, 0)


def test_lone_surrogate_round_trips_like_signed_mode(cipher: CookieCipher) -> None:
    data = {"s": "a\udcffb"}
    assert cipher.open(cipher.seal(data)) == (data, 0)


def test_every_changed_character_is_rejected(cipher: CookieCipher) -> None:
    token = cipher.seal(DATA)
    for i, ch in enumerate(token):
        for repl in ("A", "B", "-", "_", "z"):
            if repl == ch:
                continue
            tampered = token[:i] + repl + token[i + 1 :]
            assert cipher.open(tampered) is None, (i, ch, repl)


def test_every_flipped_bit_is_rejected(cipher: CookieCipher) -> None:
    raw = b64d(cipher.seal(DATA))
    for i in range(len(raw)):
        for bit in (0x01, 0x80):
            tampered = bytearray(raw)
            tampered[i] ^= bit
            assert cipher.open(b64e(bytes(tampered))) is None, (i, bit)


def test_truncated_and_extended_tokens_rejected(cipher: CookieCipher) -> None:
    token = cipher.seal(DATA)
    for n in range(len(token)):
        assert cipher.open(token[:n]) is None
    for extra in ("A", "AA", "AAAA", "=", "==", ".", " ", "\x00"):
        assert cipher.open(token + extra) is None
        assert cipher.open(extra + token) is None


def test_non_canonical_base64_rejected(cipher: CookieCipher) -> None:
    token = cipher.seal(DATA)
    # padding, standard alphabet, whitespace and quotes are not accepted spellings
    padded = token + "=" * (-len(token) % 4)
    if padded != token:
        assert cipher.open(padded) is None
    std = base64.b64encode(b64d(token)).decode().rstrip("=")
    if std != token:
        assert cipher.open(std) is None
    assert cipher.open(f'"{token}"') is None
    assert cipher.open(f" {token}") is None


def test_non_canonical_trailing_bits_rejected() -> None:
    c = CookieCipher([KEY_NEW], cookie_name=NAME)
    # find a token whose last character carries unused bits (length % 4 in {2, 3})
    for n in range(1, 8):
        token = c.seal({"p": "x" * n})
        if len(token) % 4 in (2, 3):
            break
    else:  # pragma: no cover
        pytest.fail("no token with unused trailing bits")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(token[-1])
    spare = 4 if len(token) % 4 == 2 else 2  # unused low bits in the last character
    variants = [alphabet[last | b] for b in range(1, 1 << spare)]
    for v in variants:
        alt = token[:-1] + v
        assert b64d(alt) == b64d(token)  # same bytes ...
        assert c.open(alt) is None  # ... but not the canonical spelling


def test_cookie_name_is_bound() -> None:
    a = CookieCipher([KEY_NEW], cookie_name="koa.sess")
    b = CookieCipher([KEY_NEW], cookie_name="other.sess")
    token = a.seal(DATA)
    assert a.open(token) == (DATA, 0)
    assert b.open(token) is None
    assert CookieCipher([KEY_NEW], cookie_name="KOA.SESS").open(token) is None
    assert CookieCipher([KEY_NEW], cookie_name="koa.sess.sig").open(token) is None


def test_key_rotation_reports_index() -> None:
    old = CookieCipher([KEY_OLD], cookie_name=NAME)
    token = old.seal(DATA)
    rotated = CookieCipher([KEY_NEW, KEY_OLD], cookie_name=NAME)
    assert rotated.open(token) == (DATA, 1)
    three = CookieCipher([KEY_NEW, KEY_GONE, KEY_OLD], cookie_name=NAME)
    assert three.open(token) == (DATA, 2)
    # the re-issued token uses the first key
    reissued = rotated.seal(DATA)
    assert rotated.open(reissued) == (DATA, 0)
    assert old.open(reissued) is None


def test_removed_key_rejected() -> None:
    token = CookieCipher([KEY_GONE], cookie_name=NAME).seal(DATA)
    assert CookieCipher([KEY_NEW, KEY_OLD], cookie_name=NAME).open(token) is None


def test_bytes_and_str_keys_equivalent() -> None:
    token = CookieCipher([KEY_NEW], cookie_name=NAME).seal(DATA)
    assert CookieCipher([KEY_NEW.encode()], cookie_name=NAME).open(token) == (DATA, 0)


def test_key_id_is_derived_not_secret() -> None:
    c = CookieCipher([KEY_NEW], cookie_name=NAME)
    kid = b64d(c.seal(DATA))[1 : 1 + KID_LENGTH]
    assert kid == b64d(c.seal({}))[1 : 1 + KID_LENGTH]  # stable per key
    assert KEY_NEW.encode()[:KID_LENGTH] != kid
    other = CookieCipher([KEY_OLD], cookie_name=NAME)
    assert b64d(other.seal(DATA))[1 : 1 + KID_LENGTH] != kid


def test_kid_collision_falls_back_to_the_other_key() -> None:
    # the same key twice gives the same kid: the first matching index wins
    c = CookieCipher([KEY_NEW, KEY_NEW], cookie_name=NAME)
    assert c.open(c.seal(DATA)) == (DATA, 0)
    # a forced kid collision: the token under KEY_OLD is tried against both keys sharing the kid
    c2 = CookieCipher([KEY_NEW, KEY_OLD], cookie_name=NAME)
    kid_old = c2._kids[1]
    c2._kids[0] = kid_old
    c2._by_kid = {kid_old: [0, 1]}
    token = CookieCipher([KEY_OLD], cookie_name=NAME).seal(DATA)
    assert c2.open(token) == (DATA, 1)


@pytest.mark.parametrize("version", [0, 2, 3, 0x7F, 0x80, 0xFF])
def test_other_version_byte_rejected(cipher: CookieCipher, version: int) -> None:
    raw = bytearray(b64d(cipher.seal(DATA)))
    raw[0] = version
    assert cipher.open(b64e(bytes(raw))) is None


def test_version_is_authenticated(monkeypatch: pytest.MonkeyPatch) -> None:
    """A token claiming version 1 whose AAD was built for another version does not open."""
    from koasession import crypto

    c = CookieCipher([KEY_NEW], cookie_name=NAME)
    monkeypatch.setattr(crypto, "_VERSION_BYTE", b"\x02")
    raw = bytearray(b64d(c.seal(DATA)))
    monkeypatch.undo()
    assert raw[0] == 2
    raw[0] = 1
    assert c.open(b64e(bytes(raw))) is None


def test_unknown_kid_rejected(cipher: CookieCipher) -> None:
    raw = bytearray(b64d(cipher.seal(DATA)))
    raw[1:5] = b"\x00\x00\x00\x00"
    assert cipher.open(b64e(bytes(raw))) is None


def _forge(cipher: CookieCipher, plaintext: bytes, *, name: str = NAME) -> str:
    """Encrypt arbitrary bytes with keys[0] in the right layout (payload validation tests)."""
    import os

    header = bytes([FORMAT_VERSION]) + cipher._kids[0]
    nonce = os.urandom(NONCE_LENGTH)
    sealed = cipher._ciphers[0].encrypt(nonce, plaintext, header + name.encode())
    return b64e(header + nonce + sealed)


@pytest.mark.parametrize(
    "plaintext",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b'"a string"',
        b"[1,2]",
        b"42",
        b"null",
        b"true",
        b'{"a":NaN}',
        b'{"a":Infinity}',
        b'{"a":-Infinity}',
        b'{"a":1e999}',
        b'{"a":' + b"9" * 5000 + b"}",
        b'{"a":' + b"[" * (MAX_DEPTH + 5) + b"]" * (MAX_DEPTH + 5) + b"}",
        b'{"a":' + b"[" * 100000 + b"]" * 100000 + b"}",
        b'{"a":1',
    ],
)
def test_authentic_but_invalid_payload_rejected(cipher: CookieCipher, plaintext: bytes) -> None:
    assert cipher.open(_forge(cipher, plaintext)) is None


def test_authentic_valid_forged_payload_opens(cipher: CookieCipher) -> None:
    assert cipher.open(_forge(cipher, b'{"a":[1,{"b":null}]}')) == ({"a": [1, {"b": None}]}, 0)


def test_depth_limit_is_inclusive(cipher: CookieCipher) -> None:
    deep: Any = 1
    for _ in range(MAX_DEPTH - 1):
        deep = [deep]
    data = {"d": deep}  # exactly MAX_DEPTH levels
    assert cipher.open(cipher.seal(data)) == (data, 0)
    with pytest.raises(ValueError, match="deeper"):
        cipher.seal({"d": [deep]})


def test_seal_refuses_what_open_would_refuse(cipher: CookieCipher) -> None:
    with pytest.raises(ValueError):
        cipher.seal({"a": math.nan})
    with pytest.raises(ValueError):
        cipher.seal({"a": math.inf})
    with pytest.raises(TypeError):
        cipher.seal({"a": object()})
    with pytest.raises(TypeError):
        cipher.seal([1, 2])  # type: ignore[arg-type]


def test_overlong_token_rejected_cheaply(cipher: CookieCipher) -> None:
    assert cipher.open("A" * (MAX_TOKEN_LENGTH + 1)) is None
    assert cipher.open("\\" * 65536) is None


def test_max_token_length_bounds_what_open_decodes() -> None:
    data = {"v": "x" * 20_000}
    token = CookieCipher([KEY_NEW], cookie_name=NAME).seal(data)
    assert len(token) > MAX_TOKEN_LENGTH
    # A cookie cipher keeps the cookie bound; the store's (no bound) and exact bounds open it.
    assert CookieCipher([KEY_NEW], cookie_name=NAME).open(token) is None
    unbounded = CookieCipher([KEY_NEW], cookie_name=NAME, max_token_length=None)
    assert unbounded.open(token) == (data, 0)
    assert unbounded.open("A" * (MAX_TOKEN_LENGTH + 1)) is None  # garbage is still refused
    exact = CookieCipher([KEY_NEW], cookie_name=NAME, max_token_length=len(token))
    assert exact.open(token) == (data, 0)
    short = CookieCipher([KEY_NEW], cookie_name=NAME, max_token_length=len(token) - 1)
    assert short.open(token) is None


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "16384"])
def test_max_token_length_must_be_a_positive_int_or_none(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="max_token_length"):
        CookieCipher([KEY_NEW], cookie_name=NAME, max_token_length=bad)


@pytest.mark.parametrize(
    "token",
    ["", "A", "AA", "AAAA", "=", "....", "\x00", "\udcff", "é", "eyJhIjoxfQ==", " " * 100],
)
def test_garbage_rejected(cipher: CookieCipher, token: str) -> None:
    assert cipher.open(token) is None


def test_non_str_input_rejected(cipher: CookieCipher) -> None:
    for value in (None, b"AAAA", 1, ["x"]):
        assert cipher.open(value) is None  # type: ignore[arg-type]


def test_signed_mode_cookie_is_not_an_encrypted_cookie(cipher: CookieCipher) -> None:
    signed_value = (
        "eyJtZXNzYWdlIjoiaGVsbG8iLCJfZXhwaXJlIjoxNzAwMDAwMDAwMDAwLCJfbWF4QWdlIjo4NjQwMDAwMH0="
    )
    assert cipher.open(signed_value) is None
    assert cipher.open(signed_value.rstrip("=")) is None


# --------------------------------------------------------------------------- configuration


def test_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        CookieCipher([], cookie_name=NAME)
    with pytest.raises(ConfigurationError):
        CookieCipher([""], cookie_name=NAME)
    with pytest.raises(ConfigurationError):
        CookieCipher([KEY_NEW, b""], cookie_name=NAME)
    with pytest.raises(ConfigurationError):
        CookieCipher(KEY_NEW, cookie_name=NAME)
    with pytest.raises(ConfigurationError):
        CookieCipher([KEY_NEW], cookie_name="")
    with pytest.raises(ConfigurationError):
        CookieCipher([123], cookie_name=NAME)  # type: ignore[list-item]


def test_missing_cryptography_gives_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.ciphers.aead", None)
    with pytest.raises(ImportError, match=r"koasession\[crypto\]"):
        CookieCipher([KEY_NEW], cookie_name=NAME)


def test_module_import_does_not_need_cryptography() -> None:
    import subprocess

    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'cryptography' or name.startswith('cryptography.'):\n"
        "            raise ImportError('blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import koasession.crypto as c\n"
        "try:\n"
        "    c.CookieCipher(['k' * 40], cookie_name='koa.sess')\n"
        "except ImportError as e:\n"
        "    print('ERR', e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "ERR" in out.stdout and "pip install" in out.stdout, out.stderr


# --------------------------------------------------------------------------- properties

_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_json_values = st.recursive(
    _json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=25,
)
_json_objects = st.dictionaries(st.text(), _json_values, max_size=8)

_shared_cipher = CookieCipher([KEY_NEW, KEY_OLD], cookie_name=NAME)
_old_cipher = CookieCipher([KEY_OLD], cookie_name=NAME)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_open_never_raises_on_text(token: str) -> None:
    assert _shared_cipher.open(token) is None


@settings(max_examples=300)
@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_="))
def test_open_never_raises_on_base64ish_text(token: str) -> None:
    assert _shared_cipher.open(token) is None


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_open_never_raises_on_random_binary_tokens(raw: bytes) -> None:
    # also with a valid version byte and a known kid in front, so the AEAD path is exercised
    assert _shared_cipher.open(b64e(raw)) is None
    assert _shared_cipher.open(b64e(b"\x01" + _shared_cipher._kids[0] + raw)) is None


@settings(max_examples=300)
@given(_json_objects)
def test_seal_open_identity(data: dict[str, Any]) -> None:
    assert _shared_cipher.open(_shared_cipher.seal(data)) == (data, 0)
    assert _shared_cipher.open(_old_cipher.seal(data)) == (data, 1)


@settings(max_examples=200)
@given(_json_objects, st.integers(min_value=0), st.integers(min_value=1, max_value=255))
def test_any_single_byte_change_rejected(data: dict[str, Any], pos: int, xor: int) -> None:
    raw = bytearray(b64d(_shared_cipher.seal(data)))
    raw[pos % len(raw)] ^= xor
    assert _shared_cipher.open(b64e(bytes(raw))) is None
