"""signing: keygrip-compatible HMAC signatures."""

from __future__ import annotations

import pytest

from koasession.signing import Signer

DATA = (
    "koa.sess=eyJtZXNzYWdlIjoiaGVsbG8iLCJfZXhwaXJlIjoxNzAwMDAwMDAwMDAwLCJfbWF4QWdlIjo4NjQwMDAwMH0="
)


def test_sha1_vectors_from_the_spec() -> None:
    assert Signer(["a", "b"], ["sha1"]).sign(DATA) == "ntlnTN4AbrwGPBBNFQbSbY7B2Oc"
    assert Signer(["b"], ["sha1"]).sign(DATA) == "BzaHh3J8y624cmlqXxeCF30us6o"
    assert Signer(["a"], ["sha1"]).sign("koa.sess=") == "OutgMohMu21khLGNzdTgaP9EjPI"


def test_sha256_signature_is_43_base64url_characters() -> None:
    signature = Signer(["a"]).sign(DATA)
    assert len(signature) == 43
    assert set(signature) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_verify_reports_which_key_matched() -> None:
    signer = Signer(["a", "b"], ["sha1"])
    assert signer.verify(DATA, "ntlnTN4AbrwGPBBNFQbSbY7B2Oc") == 0
    assert signer.verify(DATA, "BzaHh3J8y624cmlqXxeCF30us6o") == 1


def test_verify_first_accepts_only_the_first_key_and_algorithm() -> None:
    signer = Signer(["a", "b"], ["sha256", "sha1"])
    first = Signer(["a"]).sign(DATA)
    assert signer.verify_first(DATA, first)
    for other in (Signer(["a"], ["sha1"]).sign(DATA), Signer(["b"]).sign(DATA)):
        assert signer.verify(DATA, other) > 0
        assert not signer.verify_first(DATA, other)
    for altered in (first[:-1], first + "A", first[:-1] + "é", ""):
        assert not signer.verify_first(DATA, altered)


@pytest.mark.parametrize(
    "signature",
    [
        "ntlnTN4AbrwGPBBNFQbSbY7B2Oc=",
        "ntlnTN4AbrwGPBBNFQbSbY7B2O",
        "ntlnTN4AbrwGPBBNFQbSbY7B2Ocx",
        "ntlnTN4AbrwGPBBNFQbSbY7B2Od",
        "ntlnTN4AbrwGPBBNFQbSbY7B2Oé",
        "",
    ],
)
def test_verify_rejects_altered_signatures(signature: str) -> None:
    assert Signer(["a", "b"], ["sha1"]).verify(DATA, signature) == -1


def test_verification_accepts_only_configured_algorithms() -> None:
    sha1 = Signer(["a"], ["sha1"]).sign(DATA)
    assert Signer(["a"], ["sha256"]).verify(DATA, sha1) == -1
    migrating = Signer(["a"], ["sha256", "sha1"])
    assert migrating.verify(DATA, sha1) == 1
    assert migrating.sign(DATA) == Signer(["a"], ["sha256"]).sign(DATA)


def test_signature_binds_the_cookie_name() -> None:
    signer = Signer(["a"])
    signature = signer.sign("koa.sess=abc")
    assert signer.verify("other=abc", signature) == -1


def test_a_signer_needs_a_key() -> None:
    with pytest.raises(ValueError):
        Signer([])
