"""One key check: Signer, CookieCipher and the middleware options refuse bad keys alike."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from koasession.config import SessionConfig
from koasession.crypto import CookieCipher
from koasession.errors import ConfigurationError
from koasession.signing import Signer

GOOD = "vQ3x9Lr2Tz7KpW4mNs8Yc1Hd6Jf0Bg5E"


def _signer(keys: object) -> object:
    return Signer(keys)  # type: ignore[arg-type]


def _cipher(keys: object) -> object:
    return CookieCipher(keys, cookie_name="koa.sess")  # type: ignore[arg-type]


BUILDERS: list[Callable[[object], object]] = [_signer, _cipher]

BAD_KEYS = [
    ([], r"^at least one key is required: pass keys=\[\.\.\.\]"),
    ("a-single-string-key", r"^keys must be a list of keys"),
    (b"single-bytes", r"^keys must be a list of keys"),
    (42, r"^keys must be a list of str or bytes; got int$"),
    ([GOOD, 7], r"^keys\[1\] must be str or bytes; got int$"),
    ([bytearray(b"x" * 40)], r"^keys\[0\] must be str or bytes; got bytearray$"),
    ([GOOD, ""], r"^keys\[1\] is empty$"),
    ([b""], r"^keys\[0\] is empty$"),
    (["\ud800abc"], r"^keys\[0\] is not encodable as UTF-8$"),
]


@pytest.mark.parametrize("build", BUILDERS, ids=["Signer", "CookieCipher"])
@pytest.mark.parametrize(("keys", "message"), BAD_KEYS)
def test_bad_keys_fail_the_same_way(
    build: Callable[[object], object], keys: object, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build(keys)


@pytest.mark.parametrize(("keys", "message"), BAD_KEYS[1:])
def test_middleware_options_use_the_same_wording(keys: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        SessionConfig.build(keys)


@pytest.mark.parametrize("build", BUILDERS, ids=["Signer", "CookieCipher"])
def test_weak_keys_are_accepted_by_the_primitives(build: Callable[[object], object]) -> None:
    # Strength is judged by the options (allow_weak_keys), not by the building blocks: a key
    # shared with a Koa app may be short.
    build(["short"])


def test_weak_keys_refused_by_options_unless_allowed() -> None:
    with pytest.raises(ConfigurationError, match="bytes; use at least 32"):
        SessionConfig.build(["short"])
    cfg = SessionConfig.build(["short"], allow_weak_keys=True)
    assert cfg.signer is not None
    assert cfg.signer.verify("a=b", cfg.signer.sign("a=b")) == 0


def test_signer_refuses_unknown_algorithm() -> None:
    with pytest.raises(ConfigurationError, match="algorithms must be a non-empty list"):
        Signer([GOOD], ("md5",))
