"""Deliveries are verified on the raw bytes, in constant time; no header value makes verification raise."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from controller.providers.azure_devops import AZURE_DEVOPS
from controller.providers.base import Provider, Verification
from controller.providers.bitbucket import BITBUCKET
from controller.providers.bitbucket_server import BITBUCKET_SERVER
from controller.providers.forgejo import FORGEJO
from controller.providers.gitea import GITEA
from controller.providers.github import GITHUB
from controller.providers.gitlab import GITLAB
from controller.providers.gogs import GOGS
from unit.providers.provider_fixtures import DELIVERIES, Delivery, fixture

GITHUB_SECRET = b"IsWishesWereHorsesWedAllBeEatingSteak!"
GOGS_SECRET = b"sampleToken!"
BITBUCKET_SERVER_SECRET = b"secret"
AZURE_SECRET = {"azure-username": b"user", "azure-password": b"pass123"}

# The "ready-made signature vectors" table of SOURCES.md: (fixture, provider, secret, header, value).
VECTORS = [
    pytest.param(
        "github/push.json",
        GITHUB,
        {"github": GITHUB_SECRET},
        "x-hub-signature-256",
        "sha256=abcee8ae5f5c28fc2e4d2a0ffe46115bf9dc9d7c2e34592846d9361fffb864d5",
        id="github push",
    ),
    pytest.param(
        "gogs/push-event.json",
        GOGS,
        {"gogs": GOGS_SECRET},
        "x-gogs-signature",
        "83d4163fb936904aeb9ffd6ce22cf86e4b36273b2e1c63a57f5a6ddc371ce3ba",
        id="gogs push",
    ),
    pytest.param(
        "gitea/push-event.json",
        GITEA,
        {"gogs": GITHUB_SECRET},
        "x-gitea-signature",
        "60fe446c74fa0cb9474f98cc557db79e10c7aaf22cf324ad65239600b9e4d915",
        id="gitea push, gitea header",
    ),
    pytest.param(
        "gitea/push-event.json",
        GITEA,
        {"gogs": GITHUB_SECRET},
        "x-gogs-signature",
        "60fe446c74fa0cb9474f98cc557db79e10c7aaf22cf324ad65239600b9e4d915",
        id="gitea push, gogs header",
    ),
    pytest.param(
        "gitea/push-event.json",
        FORGEJO,
        {"gogs": GITHUB_SECRET},
        "x-forgejo-signature",
        "60fe446c74fa0cb9474f98cc557db79e10c7aaf22cf324ad65239600b9e4d915",
        id="forgejo header",
    ),
    pytest.param(
        "bitbucket-server/repo-refs-changed.json",
        BITBUCKET_SERVER,
        {"bitbucket-server": BITBUCKET_SERVER_SECRET},
        "x-hub-signature",
        "sha256=8a60f7487d167f55886df87d4077192035d76f76a8e0b3a48fd8ae8cad25f391",
        id="bitbucket server refs_changed",
    ),
    pytest.param(
        "gitlab/push-event.json",
        GITLAB,
        {"gitlab": GOGS_SECRET},
        "x-gitlab-token",
        "sampleToken!",
        id="gitlab token",
    ),
    pytest.param(
        "bitbucket/repo-push.json",
        BITBUCKET,
        {"bitbucket": b"MY_UUID"},
        "x-hook-uuid",
        "MY_UUID",
        id="bitbucket cloud hook uuid",
    ),
    pytest.param(
        "azuredevops/git.push.json",
        AZURE_DEVOPS,
        AZURE_SECRET,
        "authorization",
        "Basic dXNlcjpwYXNzMTIz",
        id="azure basic auth",
    ),
]

# Per-fixture signatures in the "headers in upstream test" column, with the upstream test secret.
SIGNED_BY_UPSTREAM: dict[str, tuple[Provider, dict[str, bytes]]] = {
    "gogs": (GOGS, {"gogs": GOGS_SECRET}),
    "gitea": (GITEA, {"gogs": GITHUB_SECRET}),
    "bitbucket-server": (BITBUCKET_SERVER, {"bitbucket-server": BITBUCKET_SERVER_SECRET}),
    "gitlab": (GITLAB, {"gitlab": GOGS_SECRET}),
    "bitbucket": (BITBUCKET, {"bitbucket": b"MY_UUID"}),
}
SIGNATURE_HEADERS = {
    "x-gogs-signature",
    "x-gitea-signature",
    "x-hub-signature",
    "x-gitlab-token",
    "x-hook-uuid",
}


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1:]


def _flip_char(text: str, index: int) -> str:
    replacement = "0" if text[index] != "0" else "1"
    return text[:index] + replacement + text[index + 1:]


@pytest.mark.parametrize(("name", "provider", "secret", "header", "value"), VECTORS)
def test_every_signature_vector_of_sources_verifies(
    name: str, provider: Provider, secret: dict[str, bytes], header: str, value: str
) -> None:
    body = fixture(name).body
    assert provider.verify({header: value}, body, secret) is Verification.VERIFIED


# Tokens and basic auth do not cover the body (the providers' design); HMAC signatures must.
BODY_INDEPENDENT_HEADERS = {"x-gitlab-token", "x-hook-uuid", "authorization"}


@pytest.mark.parametrize(("name", "provider", "secret", "header", "value"), VECTORS)
def test_any_one_byte_change_of_the_body_fails_an_hmac(
    name: str, provider: Provider, secret: dict[str, bytes], header: str, value: str
) -> None:
    body = fixture(name).body
    expected = Verification.VERIFIED if header in BODY_INDEPENDENT_HEADERS else Verification.FAILED
    for index in (0, len(body) // 2, len(body) - 1):
        assert provider.verify({header: value}, _flip(body, index), secret) is expected


@pytest.mark.parametrize(("name", "provider", "secret", "header", "value"), VECTORS)
def test_any_one_character_change_of_the_signature_fails(
    name: str, provider: Provider, secret: dict[str, bytes], header: str, value: str
) -> None:
    body = fixture(name).body
    for index in range(len(value)):
        changed = _flip_char(value, index)
        assert provider.verify({header: changed}, body, secret) is Verification.FAILED, changed


@pytest.mark.parametrize(("name", "provider", "secret", "header", "value"), VECTORS)
def test_a_missing_signature_header_is_reported_as_missing(
    name: str, provider: Provider, secret: dict[str, bytes], header: str, value: str
) -> None:
    """Deliberate difference: Fleet answers 500 for a missing GitHub/Gogs/Bitbucket Server signature.

    We report it, so the receiver answers 401.
    """
    assert provider.verify({}, fixture(name).body, secret) is Verification.MISSING_SIGNATURE
    assert provider.verify({header: ""}, fixture(name).body, secret) is Verification.MISSING_SIGNATURE


@pytest.mark.parametrize(("name", "provider", "secret", "header", "value"), VECTORS)
@pytest.mark.parametrize("blank", [pytest.param(None, id="key missing"), pytest.param(b"", id="key empty")])
def test_a_missing_or_empty_key_is_no_key_never_a_pass(
    name: str, provider: Provider, secret: dict[str, bytes], header: str, value: str, blank: bytes | None
) -> None:
    # Without any of the provider's keys; and for keys that only work together, without one of them.
    removals = [set(provider.secret_keys)] + [{key} for pair in provider.key_pairs for key in pair]
    for removed in removals:
        partial = {k: v for k, v in secret.items() if k not in removed}
        if blank is not None:
            partial.update({key: blank for key in removed})
        assert provider.verify({header: value}, fixture(name).body, partial) is Verification.NO_KEY


@pytest.mark.parametrize(
    "delivery",
    [
        pytest.param(d, id=d.name)
        for d in DELIVERIES
        if d.folder in SIGNED_BY_UPSTREAM and SIGNATURE_HEADERS & d.headers.keys()
    ],
)
def test_every_fixture_signed_in_sources_verifies_with_the_upstream_secret(delivery: Delivery) -> None:
    provider, secret = SIGNED_BY_UPSTREAM[delivery.folder]
    assert provider.verify(delivery.headers, delivery.body, secret) is Verification.VERIFIED


GITHUB_BODY = fixture("github/push.json").body
GITHUB_HEX = hmac.new(GITHUB_SECRET, GITHUB_BODY, hashlib.sha256).hexdigest()
GITHUB_SHA1_HEX = hmac.new(GITHUB_SECRET, GITHUB_BODY, hashlib.sha1).hexdigest()


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("sha256=" + GITHUB_HEX.upper(), id="upper-case hex fails as in Fleet"),
        pytest.param("SHA256=" + GITHUB_HEX, id="upper-case prefix"),
        pytest.param(GITHUB_HEX, id="bare hex without prefix"),
        pytest.param("sha256=" + GITHUB_HEX[:-1], id="truncated"),
        pytest.param("sha256=" + GITHUB_HEX + "0", id="one digit too many"),
        pytest.param("sha1=" + GITHUB_SHA1_HEX, id="a valid sha1 value in the sha256 header"),
        pytest.param("sha256=", id="prefix only"),
        pytest.param("sha", id="shorter than the prefix"),
        pytest.param("sha256=" + "g" * 64, id="non-hex digits"),
        pytest.param("sha256=" + "é" * 64, id="non-ascii"),
        pytest.param(" sha256=" + GITHUB_HEX, id="leading space"),
        pytest.param("sha256=" + GITHUB_HEX + ", sha256=" + GITHUB_HEX, id="header sent twice"),
        pytest.param("\x00\udcff", id="control and surrogate characters"),
    ],
)
def test_a_malformed_github_signature_fails_without_raising(value: str) -> None:
    headers = {"x-hub-signature-256": value}
    assert GITHUB.verify(headers, GITHUB_BODY, {"github": GITHUB_SECRET}) is Verification.FAILED


def test_github_legacy_sha1_signature_verifies_when_no_sha256_header_is_sent() -> None:
    headers = {"x-hub-signature": "sha1=" + GITHUB_SHA1_HEX}
    assert GITHUB.verify(headers, GITHUB_BODY, {"github": GITHUB_SECRET}) is Verification.VERIFIED


@pytest.mark.parametrize("sha256", ["sha256=" + "0" * 64, ""], ids=["wrong", "empty"])
def test_github_ignores_a_valid_sha1_signature_when_a_sha256_header_is_sent(sha256: str) -> None:
    """The SHA-256 header is authoritative, even empty: no downgrade to SHA-1 by adding a second header."""
    headers = {"x-hub-signature": "sha1=" + GITHUB_SHA1_HEX, "x-hub-signature-256": sha256}
    assert GITHUB.verify(headers, GITHUB_BODY, {"github": GITHUB_SECRET}) is not Verification.VERIFIED


def test_github_signatures_cover_a_form_encoded_body_as_sent() -> None:
    from urllib.parse import urlencode

    form = urlencode({"payload": GITHUB_BODY.decode()}).encode()
    signature = "sha256=" + hmac.new(GITHUB_SECRET, form, hashlib.sha256).hexdigest()
    headers = {"x-hub-signature-256": signature, "content-type": "application/x-www-form-urlencoded"}
    assert GITHUB.verify(headers, form, {"github": GITHUB_SECRET}) is Verification.VERIFIED
    assert GITHUB.verify(
        {"x-hub-signature-256": "sha256=" + GITHUB_HEX}, form, {"github": GITHUB_SECRET}
    ) is (Verification.FAILED)


@pytest.mark.parametrize(
    ("provider", "secret", "header"),
    [
        pytest.param(BITBUCKET_SERVER, {"bitbucket-server": b"k"}, "x-hub-signature", id="bitbucket server"),
        pytest.param(GOGS, {"gogs": b"k"}, "x-gogs-signature", id="gogs"),
        pytest.param(GITLAB, {"gitlab": b"k"}, "x-gitlab-token", id="gitlab"),
        pytest.param(BITBUCKET, {"bitbucket": b"k"}, "x-hook-uuid", id="bitbucket cloud uuid"),
        pytest.param(BITBUCKET, {"bitbucket": b"k"}, "x-hub-signature", id="bitbucket cloud hmac"),
        pytest.param(
            AZURE_DEVOPS, {"azure-username": b"u", "azure-password": b"p"}, "authorization", id="azure"
        ),
    ],
)
@pytest.mark.parametrize(
    "value",
    [
        pytest.param("s", id="one character (Fleet's Bitbucket Server panics on 1-6)"),
        pytest.param("sha256", id="six characters"),
        pytest.param("sha256=", id="prefix only"),
        pytest.param("Basic", id="basic without credentials"),
        pytest.param("Basic !!!not-base64!!!", id="malformed base64"),
        pytest.param("Basic " + base64.b64encode(b"no-colon").decode(), id="credentials without a colon"),
        pytest.param("Bearer abc", id="another auth scheme"),
        pytest.param("Basic é", id="non-ascii base64"),
        pytest.param("\udcff\x00", id="surrogate and nul"),
    ],
)
def test_garbage_header_values_fail_and_never_raise(
    provider: Provider, secret: dict[str, bytes], header: str, value: str
) -> None:
    assert provider.verify({header: value}, b"{}", secret) is Verification.FAILED


def test_bitbucket_cloud_prefers_its_hmac_signature_over_the_hook_uuid() -> None:
    body = fixture("bitbucket/repo-push.json").body
    signature = "sha256=" + hmac.new(b"MY_UUID", body, hashlib.sha256).hexdigest()
    secret = {"bitbucket": b"MY_UUID"}
    assert (
        BITBUCKET.verify({"x-hub-signature": signature, "x-hook-uuid": "x"}, body, secret)
        is Verification.VERIFIED
    )
    wrong = {"x-hub-signature": "sha256=" + "0" * 64, "x-hook-uuid": "MY_UUID"}
    assert BITBUCKET.verify(wrong, body, secret) is Verification.FAILED


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        pytest.param("Basic dXNlcjpwYXNzMTIz", Verification.VERIFIED, id="upstream vector"),
        pytest.param("basic dXNlcjpwYXNzMTIz", Verification.VERIFIED, id="scheme is case-insensitive"),
        pytest.param(
            "Basic " + base64.b64encode(b"user:wrong").decode(), Verification.FAILED, id="wrong password"
        ),
        pytest.param(
            "Basic " + base64.b64encode(b"other:pass123").decode(), Verification.FAILED, id="wrong user"
        ),
        pytest.param(
            "Basic " + base64.b64encode(b"user:pass123:x").decode(), Verification.FAILED, id="extra colon"
        ),
    ],
)
def test_azure_basic_auth_compares_both_username_and_password(
    authorization: str, expected: Verification
) -> None:
    body = fixture("azuredevops/git.push.json").body
    assert AZURE_DEVOPS.verify({"authorization": authorization}, body, AZURE_SECRET) is expected


def test_azure_credentials_of_fleets_parser_test_verify() -> None:
    """Fleet parser_test: Aladdin / open sesame."""
    secret = {"azure-username": b"Aladdin", "azure-password": b"open sesame"}
    headers = {"authorization": "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="}
    assert AZURE_DEVOPS.verify(headers, b"{}", secret) is Verification.VERIFIED


def test_a_secret_with_a_trailing_newline_does_not_verify() -> None:
    """The classic `--from-file` mistake fails verification (the admission webhook rejects such secrets)."""
    assert GITLAB.verify({"x-gitlab-token": "sampleToken!"}, b"{}", {"gitlab": b"sampleToken!\n"}) is (
        Verification.FAILED
    )


def test_forgejo_checks_its_own_signature_header_first() -> None:
    body = fixture("gitea/push-event.json").body
    good = "60fe446c74fa0cb9474f98cc557db79e10c7aaf22cf324ad65239600b9e4d915"
    headers = {"x-forgejo-signature": "0" * 64, "x-gitea-signature": good, "x-gogs-signature": good}
    assert FORGEJO.verify(headers, body, {"gogs": GITHUB_SECRET}) is Verification.FAILED
