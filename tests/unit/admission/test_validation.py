"""Validation of the global webhook Secret gitjob-webhook."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.admission.decisions import MAX_WARNING_CHARS, Decision, build_response
from controller.admission.reviews import Review, parse_review
from controller.admission.key_names import suggest_key
from controller.admission.validation import validate_secret
from controller.fleet.secrets import GLOBAL_SECRET as SECRET_NAME
from controller.providers import SECRET_KEYS as ALLOWED_KEYS
from controller.providers import WHSEC_KEYS
from unit.admission.conftest import MakeObject, ToBody

WHSEC = "whsec_" + base64.b64encode(b"k" * 32).decode()

NAMESPACE = "cattle-fleet-system"
ALLOWED_LIST = (
    "Allowed keys: azure-password, azure-username, bitbucket, bitbucket-server, generic, github, gitlab, "
    "gitlab-signing, gogs."
)

SecretReview = Callable[..., Review]


@pytest.fixture
def secret_review(make_review: MakeObject, make_secret: MakeObject, to_body: ToBody) -> SecretReview:
    """Review of a write to a Secret: `secret_review(data, string_data=..., operation=..., old=...)`."""

    def build(
        data: dict[str, Any] | None = None,
        *,
        operation: str = "CREATE",
        old: dict[str, Any] | None = None,
        name: str = SECRET_NAME,
        namespace: str = NAMESPACE,
        **secret: Any,
    ) -> Review:
        obj = None if operation == "DELETE" else make_secret(data, name=name, namespace=namespace, **secret)
        if operation == "DELETE" and old is None:
            old = make_secret(data, name=name, namespace=namespace, **secret)
        body = make_review(
            operation=operation,
            group="",
            resource="secrets",
            name=name,
            namespace=namespace,
            obj=obj,
            old=old,
        )
        return parse_review(to_body(body))

    return build


def validate(review: Review, **options: Any) -> Decision:
    return validate_secret(review, controller_namespace=NAMESPACE, **options)


@pytest.mark.parametrize(
    ("data", "string_data"),
    [
        pytest.param({"github": "s3cret"}, None, id="github"),
        pytest.param({key: WHSEC if key in WHSEC_KEYS else "s3cret" for key in ALLOWED_KEYS}, None,
                     id="every-key"),
        pytest.param({"azure-username": "user", "azure-password": "pass123"}, None, id="azure-pair"),
        pytest.param(None, {"gitlab": "s3cret"}, id="string-data"),
        pytest.param({"github": "s3cret"}, {"gogs": "s3cret"}, id="data-and-string-data"),
        pytest.param({"github": "inner space is fine"}, None, id="inner-space"),
        pytest.param({"github": b"\x00\xffbinary"}, None, id="binary"),
    ],
)
def test_a_valid_webhook_secret_is_allowed(
    secret_review: SecretReview, data: dict[str, str | bytes] | None, string_data: dict[str, str] | None
) -> None:
    review = secret_review(data, string_data=string_data)

    decision = validate(review)

    assert decision.allowed and decision.warnings == () and decision.reasons == ("valid",)
    assert decision.audit["decision"] == "allowed"


SUGGESTIONS = [
    pytest.param("GitHub", 'did you mean "github"?', id="case"),
    pytest.param("GITLAB", 'did you mean "gitlab"?', id="upper"),
    pytest.param("bitbucketserver", 'did you mean "bitbucket-server"?', id="squashed"),
    pytest.param("bitbucket_server", 'did you mean "bitbucket-server"?', id="underscore"),
    pytest.param("BitbucketServer", 'did you mean "bitbucket-server"?', id="camel"),
    pytest.param("bitbucket.server", 'did you mean "bitbucket-server"?', id="dot"),
    pytest.param("stash", 'did you mean "bitbucket-server"?', id="stash"),
    pytest.param("bitbucket-cloud", 'did you mean "bitbucket"?', id="bitbucket-cloud"),
    pytest.param("azure_username", 'did you mean "azure-username"?', id="azure-underscore"),
    pytest.param("azure-user", 'did you mean "azure-username"?', id="azure-user"),
    pytest.param("gitea", 'Gitea and Forgejo use the "gogs" key', id="gitea"),
    pytest.param("forgejo", 'Gitea and Forgejo use the "gogs" key', id="forgejo"),
    pytest.param("gitea-token", 'Gitea and Forgejo use the "gogs" key', id="gitea-token"),
    pytest.param("azure", 'Azure DevOps uses two keys, "azure-username" and "azure-password"', id="azure"),
    pytest.param(
        "azuredevops", 'Azure DevOps uses two keys, "azure-username" and "azure-password"', id="azuredevops"
    ),
    pytest.param(
        "azure-devops", 'Azure DevOps uses two keys, "azure-username" and "azure-password"', id="azure-dash"
    ),
    pytest.param(
        "github-token", 'did you mean "github"? (the key is the provider name alone)', id="github-token"
    ),
    pytest.param(
        "gitlab-secret", 'did you mean "gitlab"? (the key is the provider name alone)', id="gitlab-secret"
    ),
    pytest.param(
        "GitHub_Webhook_Secret",
        'did you mean "github"? (the key is the provider name alone)',
        id="github-webhook-secret",
    ),
    pytest.param(
        "bitbucket-server-token",
        'did you mean "bitbucket-server"? (the key is the provider name alone)',
        id="longest-provider-first",
    ),
    pytest.param("gogz", 'did you mean "gogs"?', id="close-match"),
    pytest.param("githbu", 'did you mean "github"?', id="typo"),
    pytest.param("token", None, id="no-idea"),
]


@pytest.mark.parametrize(("key", "hint"), SUGGESTIONS)
def test_near_misses_get_a_suggestion(key: str, hint: str | None) -> None:
    assert suggest_key(key) == hint


@pytest.mark.parametrize(("key", "hint"), SUGGESTIONS)
def test_an_unknown_key_is_denied_with_its_suggestion(
    secret_review: SecretReview, key: str, hint: str | None
) -> None:
    decision = validate(secret_review({key: "s3cret"}))

    expected = f'key "{key}" is not a provider key' + (f" ({hint})" if hint else "")
    assert not decision.allowed and decision.code == 403
    assert (
        decision.message
        == f"Secret {NAMESPACE}/{SECRET_NAME} is not a valid webhook secret: {expected}. {ALLOWED_LIST}"
    )
    assert decision.reasons == ("unknown-key",)


NEWLINE = (
    "ends with a newline (it was probably created with --from-file; "
    "recreate it with --from-literal or strip the newline)"
)


@pytest.mark.parametrize(
    ("data", "problem", "reasons"),
    [
        pytest.param(
            {"gitlab": "s3cret\n"}, f'key "gitlab" {NEWLINE}', ("whitespace",), id="trailing-newline"
        ),
        pytest.param({"gitlab": "s3cret\r\n"}, f'key "gitlab" {NEWLINE}', ("whitespace",), id="crlf"),
        pytest.param(
            {"github": "s3cret "},
            'key "github" ends with whitespace (providers sign with the exact secret; ' "strip it)",
            ("whitespace",),
            id="trailing-space",
        ),
        pytest.param(
            {"github": "\ts3cret"},
            'key "github" starts with whitespace (providers sign with the exact ' "secret; strip it)",
            ("whitespace",),
            id="leading-tab",
        ),
        pytest.param(
            {"gogs": ""},
            'key "gogs" is empty (a webhook secret must be set in the provider and here)',
            ("empty-value",),
            id="empty",
        ),
        pytest.param(
            {"azure-username": "user"},
            'key "azure-username" has no "azure-password" beside it (Azure '
            "DevOps basic authentication needs both keys)",
            ("incomplete-pair",),
            id="azure-username-alone",
        ),
        pytest.param(
            {"azure-password": "pass"},
            'key "azure-password" has no "azure-username" beside it (Azure '
            "DevOps basic authentication needs both keys)",
            ("incomplete-pair",),
            id="azure-password-alone",
        ),
        pytest.param(
            {},
            "it has no keys (add at least one provider key, e.g. --from-literal=github=<secret>)",
            ("no-keys",),
            id="empty-data",
        ),
        pytest.param(
            None,
            "it has no keys (add at least one provider key, e.g. --from-literal=github=<secret>)",
            ("no-keys",),
            id="no-data",
        ),
    ],
)
def test_a_bad_value_or_key_set_is_denied_with_the_fix(
    secret_review: SecretReview, data: dict[str, str] | None, problem: str, reasons: tuple[str, ...]
) -> None:
    decision = validate(secret_review(data))

    assert not decision.allowed and decision.code == 403
    assert (
        decision.message
        == f"Secret {NAMESPACE}/{SECRET_NAME} is not a valid webhook secret: {problem}. {ALLOWED_LIST}"
    )
    assert decision.reasons == reasons


def test_one_message_names_every_offending_key(secret_review: SecretReview) -> None:
    decision = validate(secret_review({"GitHub": "a\n", "gitlab": "b\n", "github": "fine", "gitea": ""}))

    assert decision.message == (
        f"Secret {NAMESPACE}/{SECRET_NAME} is not a valid webhook secret: "
        f'key "GitHub" is not a provider key (did you mean "github"?) and {NEWLINE}; '
        'key "gitea" is not a provider key (Gitea and Forgejo use the "gogs" key) '
        "and is empty (a webhook secret must be set in the provider and here); "
        f'key "gitlab" {NEWLINE}. {ALLOWED_LIST}'
    )
    assert decision.reasons == ("unknown-key", "whitespace", "empty-value")
    assert decision.audit == {
        "decision": "denied",
        "reasons": "unknown-key,whitespace,empty-value",
        "keys": "GitHub,gitea,github,gitlab",
    }


def test_a_key_of_megabytes_gets_no_guess_and_is_cut_short_everywhere(secret_review: SecretReview) -> None:
    """The API server refuses keys over 253 characters, but not before the listener gets the review:
    guessing what 2.7 MB of key meant once cost 180 MB and a second; the audit copied it whole."""
    key = "gi-th_ub." * 300_000
    decision = validate(secret_review({key: "x", "github": "fine"}))
    assert not decision.allowed and "did you mean" not in decision.message
    assert len(decision.message) < 2000 and len(decision.audit["keys"]) < 200
    assert suggest_key(key) is None


def test_a_data_value_that_is_not_base64_is_its_own_error(secret_review: SecretReview) -> None:
    decision = validate(secret_review(raw_data={"github": "not base64!"}))

    assert not decision.allowed and decision.reasons == ("undecodable-value",)
    assert 'key "github" is not valid base64' in decision.message


def test_a_string_data_value_that_is_not_a_string_is_an_error(secret_review: SecretReview) -> None:
    decision = validate(secret_review(string_data={"github": 42}))

    assert not decision.allowed and 'key "github" is not a string' in decision.message


@pytest.mark.parametrize(
    ("data", "string_data", "allowed"),
    [
        pytest.param({"github": "old\n"}, {"github": "new"}, True, id="string-data-fixes-data"),
        pytest.param({"github": "old"}, {"github": "new\n"}, False, id="string-data-breaks-data"),
        pytest.param(None, {"gitlab": "x\n"}, False, id="string-data-judged-like-data"),
        pytest.param({"azure-username": "u"}, {"azure-password": "p"}, True, id="pair-across-both"),
    ],
)
def test_string_data_wins_over_data_as_the_api_server_merges_them(
    secret_review: SecretReview, data: dict[str, str] | None, string_data: dict[str, str], allowed: bool
) -> None:
    assert validate(secret_review(data, string_data=string_data)).allowed is allowed


@pytest.mark.parametrize(
    ("section", "reason"),
    [
        pytest.param("data", "data is not a map", id="data"),
        pytest.param("stringData", "stringData is not a map", id="string-data"),
    ],
)
def test_a_section_that_is_not_a_map_is_an_error(
    make_review: MakeObject, make_secret: MakeObject, to_body: ToBody, section: str, reason: str
) -> None:
    obj = make_secret({"github": "s"})
    obj[section] = ["github"]
    review = parse_review(
        to_body(make_review(group="", resource="secrets", name=SECRET_NAME, namespace=NAMESPACE, obj=obj))
    )

    decision = validate(review)

    assert not decision.allowed and reason in decision.message and "malformed-data" in decision.reasons


@pytest.mark.parametrize(
    ("require_signature", "consequence"),
    [
        pytest.param(False, "will be accepted unauthenticated", id="open"),
        pytest.param(True, "will be refused (--require-signature)", id="require-signature"),
    ],
)
def test_deleting_the_secret_is_allowed_with_a_warning(
    secret_review: SecretReview, require_signature: bool, consequence: str
) -> None:
    decision = validate(
        secret_review({"github": "s3cret"}, operation="DELETE"), require_signature=require_signature
    )

    assert decision.allowed
    assert decision.warnings == (
        f"Deleting gitjob-webhook: deliveries for GitRepos without spec.webhookSecret " f"{consequence}",
    )
    assert decision.audit == {"decision": "allowed", "reasons": "secret-deleted", "keys": "github"}


def test_deleting_with_no_old_object_is_still_a_warning(make_review: MakeObject, to_body: ToBody) -> None:
    review = parse_review(
        to_body(
            make_review(
                operation="DELETE", group="", resource="secrets", name=SECRET_NAME, namespace=NAMESPACE
            )
        )
    )

    decision = validate(review)

    assert decision.allowed and decision.warnings and decision.audit["keys"] == ""


@pytest.mark.parametrize(
    ("require_signature", "consequence"),
    [
        pytest.param(False, "will be accepted unauthenticated", id="open"),
        pytest.param(True, "will be refused", id="require-signature"),
    ],
)
def test_removing_a_provider_key_is_allowed_with_a_warning(
    secret_review: SecretReview, make_secret: MakeObject, require_signature: bool, consequence: str
) -> None:
    old = make_secret({"github": "a", "gitlab": "b"})
    review = secret_review({"github": "a"}, operation="UPDATE", old=old)

    decision = validate(review, require_signature=require_signature)

    assert decision.allowed
    assert decision.warnings == (
        f'Key "gitlab" removed from gitjob-webhook: GitLab deliveries {consequence}',
    )
    assert decision.reasons == ("key-removed",)


def test_an_update_that_breaks_a_valid_secret_is_denied(
    secret_review: SecretReview, make_secret: MakeObject
) -> None:
    review = secret_review({"github": "a\n"}, operation="UPDATE", old=make_secret({"github": "a"}))

    assert not validate(review).allowed


def test_an_update_leaving_invalid_data_unchanged_is_allowed_with_a_warning(
    secret_review: SecretReview, make_secret: MakeObject
) -> None:
    # e.g. a finalizer removed while deleting a Secret created before this webhook existed
    old = make_secret({"GitHub": "a\n"})
    review = secret_review({"GitHub": "a\n"}, operation="UPDATE", old=old)

    decision = validate(review)

    assert decision.allowed and decision.reasons[0] == "unchanged-invalid-data"
    assert decision.warnings == (
        "gitjob-webhook is still not a valid webhook secret; fix its keys " "(unknown-key, whitespace)",
    )


@pytest.mark.parametrize(
    ("operation", "group", "resource", "name", "namespace", "sub_resource"),
    [
        pytest.param("CREATE", "", "secrets", "other", NAMESPACE, None, id="other-name"),
        pytest.param(
            "CREATE", "", "secrets", "gitjob-webhook-admission-tls", NAMESPACE, None, id="serving-cert"
        ),
        pytest.param("CREATE", "", "secrets", SECRET_NAME, "fleet-default", None, id="other-namespace"),
        pytest.param("CREATE", "", "configmaps", SECRET_NAME, NAMESPACE, None, id="configmap"),
        pytest.param("CREATE", "example.com", "secrets", SECRET_NAME, NAMESPACE, None, id="other-group"),
        pytest.param("DELETE", "", "secrets", "other", NAMESPACE, None, id="delete-other"),
        pytest.param("CONNECT", "", "secrets", SECRET_NAME, NAMESPACE, None, id="connect"),
        pytest.param("UPDATE", "", "secrets", SECRET_NAME, NAMESPACE, "status", id="subresource"),
    ],
)
def test_every_other_secret_is_allowed_at_once(
    make_review: MakeObject, make_secret: MakeObject, to_body: ToBody,
    operation: str, group: str, resource: str, name: str, namespace: str, sub_resource: str | None,
) -> None:
    bad = make_secret({"GitHub": "x\n"}, name=name, namespace=namespace)
    body = make_review(
        operation=operation,
        group=group,
        resource=resource,
        name=name,
        namespace=namespace,
        obj=None if operation == "DELETE" else bad,
        old=bad,
        sub_resource=sub_resource,
    )

    decision = validate(parse_review(to_body(body)))

    assert decision.allowed and decision.warnings == ()
    assert decision.audit == {"decision": "skipped"}


def test_a_create_without_a_request_name_is_judged_by_metadata_name(
    make_review: MakeObject, make_secret: MakeObject, to_body: ToBody
) -> None:
    body = make_review(
        group="", resource="secrets", name="", namespace=NAMESPACE, obj=make_secret({"GitHub": "x"})
    )

    assert not validate(parse_review(to_body(body))).allowed


@pytest.mark.parametrize(
    "data",
    [pytest.param({"GitHub": "x"}, id="denied"), pytest.param({"github": "x"}, id="allowed")],
)
def test_the_validating_response_has_no_patch_and_keeps_audit_annotations(
    secret_review: SecretReview, data: dict[str, str]
) -> None:
    review = secret_review(data)

    response = build_response(review, validate(review), mutating=False)["response"]

    assert "patch" not in response and "patchType" not in response
    assert response["auditAnnotations"]["keys"] == ",".join(sorted(data))
    if not response["allowed"]:
        assert response["status"]["code"] == 403 and response["status"]["reason"] == "Forbidden"


def test_every_warning_is_written_to_fit_120_characters(
    secret_review: SecretReview, make_secret: MakeObject
) -> None:
    everything = {key: WHSEC if key in WHSEC_KEYS else "v" for key in ALLOWED_KEYS}
    reviews = [
        secret_review(everything, operation="DELETE"),
        secret_review({"github": "v"}, operation="UPDATE", old=make_secret(everything)),
        secret_review({"GitHub": "v\n"}, operation="UPDATE", old=make_secret({"GitHub": "v\n"})),
    ]
    for review in reviews:
        for require_signature in (False, True):
            decision = validate(review, require_signature=require_signature)
            assert decision.warnings
            assert all(len(warning) <= MAX_WARNING_CHARS for warning in decision.warnings)


# --- secret values never leave ----------------------------------------------------------


def _strings(value: Any) -> list[str]:
    """Every string in a JSON document, keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for key, item in value.items() for text in (key, *_strings(item))]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return []


key_names = st.sampled_from([*ALLOWED_KEYS, "GitHub", "gitea", "azure", "github-token", "x"]) | st.from_regex(
    r"[-._a-zA-Z0-9]{1,20}", fullmatch=True
)
secret_values = st.text(min_size=8, max_size=40).filter(
    lambda text: text.strip() == text and len(text.strip()) >= 8
)
decorations = st.sampled_from(["", "\n", " ", "\r\n", "\t"])


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=150)
@given(
    entries=st.dictionaries(key_names, st.tuples(secret_values, decorations), min_size=1, max_size=5),
    in_string_data=st.booleans(),
    operation=st.sampled_from(["CREATE", "UPDATE", "DELETE"]),
    require_signature=st.booleans(),
)
def test_no_secret_value_ever_appears_in_the_response(
    make_review: MakeObject, make_secret: MakeObject, to_body: ToBody,
    entries: dict[str, tuple[str, str]], in_string_data: bool, operation: str, require_signature: bool,
) -> None:
    def respond(cores: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
        """The response and every text it carries, for the Secret with these value cores."""
        values = {key: cores[key] + decoration for key, (_, decoration) in entries.items()}
        obj = make_secret(string_data=values) if in_string_data else make_secret(values)
        first = dict(list(values.items())[:1])
        old = make_secret(first | {"gitlab": cores[" old gitlab"]})
        body = make_review(
            operation=operation,
            group="",
            resource="secrets",
            name=SECRET_NAME,
            namespace=NAMESPACE,
            obj=None if operation == "DELETE" else obj,
            old=obj if operation == "DELETE" else old,
            uid="fixed-uid",
        )
        review = parse_review(to_body(body))
        decision = validate(review, require_signature=require_signature)
        response = build_response(review, decision, mutating=False)
        json.dumps(response, allow_nan=False)
        return dict(response), _strings(response) + list(decision.reasons) + [decision.message]

    real = {key: value for key, (value, _) in entries.items()} | {" old gitlab": "0ld-v4lue-xyz"}
    # Distinct placeholders for distinct values, so equal values stay equal (UPDATE compares them).
    placeholder_of = {
        value: f"PLACEHOLDER{index:04d}" for index, value in enumerate(sorted(set(real.values())))
    }
    response, texts = respond(real)
    baseline, baseline_texts = respond({key: placeholder_of[value] for key, value in real.items()})

    # The answer depends on no value beyond its shape (empty, whitespace) ...
    assert response == baseline
    # ... so no value, raw or base64, can be in it, unless our own wording happens to contain it.
    for value in set(real.values()):
        for form in (value, base64.b64encode(value.encode()).decode()):
            if not any(form in text for text in baseline_texts):
                assert not any(form in text for text in texts), "a secret value leaked into the response"
