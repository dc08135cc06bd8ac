"""Command-line mistakes end with one line naming the problem and exit status 2 (1 at run time);
``certs inject`` against a real kube-apiserver."""

from __future__ import annotations

import base64
import os
import pathlib
import socket
import subprocess
from collections.abc import Callable

import pytest

from cluster.faults import FaultProxy
from cluster.isolation import Cluster
from support.kubeconfig import write_kubeconfig
from support.kube import WEBHOOK_KINDS, Objects, rendered_webhook_configurations
from support.paths import EXAMPLE_GITREPOS, PROVIDER_FIXTURES
from support import service
from support.service import command


def _run(*arguments: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*arguments),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent-home"},
    )


def _assert_one_line_error(result: subprocess.CompletedProcess[str], status: int, *expected: str) -> None:
    assert result.returncode == status, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gitjob-webhook: error: ")
    for text in expected:
        assert text in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        pytest.param(("frobnicate",), "invalid choice: 'frobnicate'", id="unknown subcommand"),
        pytest.param(("serve",), "the following arguments are required", id="serve without listener"),
        pytest.param(
            ("serve", "receiver", "--colour", "blue"), "unrecognized arguments: --colour", id="unknown option"
        ),
        pytest.param(
            ("serve", "receiver", "--webhook-mode", "sometimes"),
            "--webhook-mode: 'sometimes'",
            id="bad option value",
        ),
        pytest.param(
            ("serve", "admission", "--listen", "127.0.0.1:1"),
            "needs --tls-cert and --tls-key",
            id="admission without certificate",
        ),
        pytest.param(("explain", "--provider", "github"), "--payload", id="explain without payload"),
        pytest.param(("serve", "all", "--receiver-listen", "127.0.0.1:9",
                      "--admission-listen", "127.0.0.1:9"),
                     "--receiver-listen and --admission-listen are the same address (127.0.0.1:9)",
                     id="serve all on one address"),
    ],
)
def test_a_usage_mistake_is_one_line_and_status_2(arguments: tuple[str, ...], expected: str) -> None:
    _assert_one_line_error(_run(*arguments), 2, expected)


@pytest.mark.parametrize("arguments", [("--secret", "whsec_SEKRET"), ("--secret=whsec_SEKRET",)])
def test_a_secret_on_the_command_line_is_refused_without_being_repeated(arguments: tuple[str, ...]) -> None:
    """argparse read `--secret` as an abbreviation of `--secret-file`, and its error repeated the secret
    into the terminal and CI logs; options are never abbreviated now, and unknown ones lose their value."""
    result = _run("trigger", "--url", "http://127.0.0.1:1/", *arguments)
    _assert_one_line_error(result, 2, "unrecognized arguments: --secret (a secret never goes on the command "
                                      "line: GITJOB_WEBHOOK_TRIGGER_SECRET or --secret-file)")
    assert "SEKRET" not in result.stderr


def test_an_abbreviated_option_is_not_guessed() -> None:
    _assert_one_line_error(_run("status", "--namespac", "x"), 2, "unrecognized arguments: --namespac")


def test_an_unreadable_certificate_is_named(tmp_path: pathlib.Path) -> None:
    result = _run(
        "serve",
        "admission",
        "--tls-cert",
        str(tmp_path / "none.crt"),
        "--tls-key",
        str(tmp_path / "none.key"),
    )
    _assert_one_line_error(result, 2, "--tls-cert/--tls-key", "none.crt", "No such file")


def test_a_key_that_does_not_match_the_certificate_is_named(dev_certs: pathlib.Path) -> None:
    result = _run(
        "serve", "admission", "--tls-cert", str(dev_certs / "tls.crt"), "--tls-key", str(dev_certs / "ca.key")
    )
    _assert_one_line_error(result, 2, "key does not match the certificate")


def test_a_file_that_is_not_a_certificate_is_named(tmp_path: pathlib.Path) -> None:
    (tmp_path / "x.crt").write_text("hello")
    result = _run(
        "serve", "admission", "--tls-cert", str(tmp_path / "x.crt"), "--tls-key", str(tmp_path / "x.crt")
    )
    _assert_one_line_error(result, 2, "x.crt", "not a PEM certificate and key")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param("a: [b", "not valid YAML", id="not YAML"),
        pytest.param(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n", "is not a GitRepo", id="wrong kind"
        ),
        pytest.param(None, "cannot read: No such file", id="missing"),
    ],
)
def test_a_bad_gitrepos_file_is_named(tmp_path: pathlib.Path, content: str | None, expected: str) -> None:
    path = tmp_path / "gitrepos.yaml"
    if content is not None:
        path.write_text(content)
    result = _run(
        "serve", "receiver", "--store", "offline", "--gitrepos", str(path), "--listen", "127.0.0.1:1"
    )
    _assert_one_line_error(result, 2, f"--gitrepos {path}", expected)


@pytest.mark.parametrize(("arguments", "expected"), [
    pytest.param(("--ca", "{tmp}/none.crt"), "--ca {tmp}/none.crt: cannot read", id="--ca"),
    pytest.param(("--out", "{tmp}"), "--out {tmp}/ca.crt: cannot read", id="--out"),
])
def test_certs_inject_names_the_option_of_a_missing_ca(
        tmp_path: pathlib.Path, arguments: tuple[str, ...], expected: str) -> None:
    result = _run("certs", "inject", *[argument.format(tmp=tmp_path) for argument in arguments])
    _assert_one_line_error(result, 2, expected.format(tmp=tmp_path))


@pytest.mark.parametrize(("environment", "text"), [
    ({}, True), ({"GITJOB_WEBHOOK_LOG_FORMAT": "json"}, False)])
def test_a_command_writes_its_warnings_as_text_unless_asked_for_json(
        tmp_path: pathlib.Path, environment: dict[str, str], text: bool) -> None:
    kubeconfig = _unreachable_kubeconfig(tmp_path)
    result = subprocess.run(command("status", "--gitrepos", str(EXAMPLE_GITREPOS)), capture_output=True,
                            text=True, timeout=30, env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent-home",
                                                        "KUBECONFIG": str(kubeconfig), **environment})
    assert result.returncode == 0, result.stderr
    (warning,) = result.stderr.splitlines()
    assert "--gitrepos given: serving the offline store" in warning
    assert warning.startswith("{") is not text


def test_a_port_in_use_is_a_runtime_failure(tmp_path: pathlib.Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _run(
            "serve",
            "receiver",
            "--store",
            "offline",
            "--gitrepos",
            str(EXAMPLE_GITREPOS),
            "--listen",
            f"127.0.0.1:{port}",
        )
    _assert_one_line_error(result, 1, f"cannot listen on 127.0.0.1:{port}", "in use",
                           "another process holds it: stop that one, or choose another address with --listen")


def test_certs_writes_the_three_files_and_reports_what_it_did(tmp_path: pathlib.Path) -> None:
    result = _run("certs", "--out", str(tmp_path / "c"), "--host", "webhook.example.com")
    assert result.returncode == 0, result.stderr
    assert "CA created, serving certificate created" in result.stdout
    assert {p.name for p in (tmp_path / "c").iterdir()} == {"ca.crt", "ca.key", "tls.crt", "tls.key"}
    again = _run("certs", "--out", str(tmp_path / "c"), "--host", "webhook.example.com")
    assert "CA kept, serving certificate kept" in again.stdout


def test_certs_into_an_unwritable_place_is_one_line(tmp_path: pathlib.Path) -> None:
    (tmp_path / "file").write_text("x")
    _assert_one_line_error(_run("certs", "--out", str(tmp_path / "file" / "c")), 2, "cannot create directory")


def _unreachable_kubeconfig(tmp_path: pathlib.Path) -> pathlib.Path:
    """A kubeconfig for an API server on a port nothing listens on."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    return write_kubeconfig(tmp_path / "kubeconfig", f"https://127.0.0.1:{port}")


def test_certs_inject_against_an_unreachable_api_server_is_a_runtime_failure(
        tmp_path: pathlib.Path, dev_certs: pathlib.Path) -> None:
    """An API server that cannot be reached is not the user's typing: exit 1, not 2."""
    kubeconfig = _unreachable_kubeconfig(tmp_path)
    result = _run("certs", "inject", "--ca", str(dev_certs / "ca.crt"), "--kubeconfig", str(kubeconfig))
    _assert_one_line_error(result, 1, "MutatingWebhookConfiguration gitjob-webhook-admission")


@pytest.mark.parametrize("command", [("status",), ("explain", "--provider", "github", "--payload", "{ref}")])
def test_a_command_reading_an_unreachable_cluster_gives_up_soon_and_says_why(
        tmp_path: pathlib.Path, command: tuple[str, ...]) -> None:
    """Not after 30 s with "cache not synced" only: at once, with the cause, and at the default log level
    without the caches' own failure lines before it."""
    kubeconfig = _unreachable_kubeconfig(tmp_path)
    (tmp_path / "push.json").write_text('{"ref": "refs/heads/main"}')
    arguments = [argument.format(ref=tmp_path / "push.json") for argument in command]
    result = _run(*arguments, "--kubeconfig", str(kubeconfig))
    _assert_one_line_error(result, 1, f"kubernetes ({kubeconfig}",
                           "the API server cannot be reached: Connection refused")


def test_an_api_server_certificate_the_kubeconfig_does_not_trust_is_said_as_such(
        start_admission: Callable[..., service.Service], tmp_path: pathlib.Path) -> None:
    """The admission listener (the dev CA's certificate) stands in for an API server with another CA."""
    admission = start_admission()
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", admission.admission)
    result = _run("status", "--kubeconfig", str(kubeconfig))
    _assert_one_line_error(result, 1, "the API server's certificate does not verify",
                           "check the kubeconfig's certificate-authority")


@pytest.mark.parametrize(("command", "expected"), [
    (("status", "--store", "kubernetes"), "no cluster configured (no --kubeconfig"),
    (("status",), "no GitRepos to read: no cluster configured (no --kubeconfig"),
    (("status", "--store", "offline"), "--store offline needs --gitrepos FILE"),
    (("explain", "--provider", "github", "--payload", "{payload}"),
     "no GitRepos to read: no cluster configured (no --kubeconfig"),
    (("secret", "status"), "no cluster configured (no --kubeconfig"),
    (("certs", "inject", "--ca", "{ca}"), "no cluster configured (no --kubeconfig")])
def test_a_cluster_command_without_any_cluster_configured_says_so(
        dev_certs: pathlib.Path, command: tuple[str, ...], expected: str) -> None:
    """No --kubeconfig, no $KUBECONFIG, no ~/.kube/config, not in a pod: not "invalid kube-config",
    and not an empty offline store that status would show as "No GitRepos found." and explain as a
    delivery that matches nothing (exit 0)."""
    result = _run(*[argument.format(ca=dev_certs / "ca.crt", payload=PROVIDER_FIXTURES / "github/push.json")
                    for argument in command])
    _assert_one_line_error(result, 2, expected)


@pytest.mark.parametrize(("command", "expected"), [
    pytest.param(("status", "-A"), "the API server did not answer within 5s", id="status"),
    pytest.param(("secret", "status"), "Secret cattle-fleet-system/gitjob-webhook: the API server did not "
                 "answer within 10s", id="secret-status"),
    pytest.param(("certs", "inject", "--ca", "{ca}"),
                 "MutatingWebhookConfiguration gitjob-webhook-admission: the API server did not answer "
                 "within 10s",
                 id="certs-inject"),
])
def test_a_command_against_a_silent_api_server_gives_up_after_one_timeout(
        fault_proxy: FaultProxy, dev_certs: pathlib.Path, command: tuple[str, ...], expected: str) -> None:
    """An API server that accepts the connection and never answers: one request timeout, not four
    (urllib3 sends a timed-out GET again three times), and the error says so."""
    fault_proxy.delay("*", "", seconds=600)
    arguments = [argument.format(ca=dev_certs / "ca.crt") for argument in command]
    result = _run(*arguments, "--kubeconfig", str(fault_proxy.kubeconfig))
    _assert_one_line_error(result, 1, expected)


def test_status_with_a_token_the_api_server_refuses_names_the_refusal(
        cluster: Cluster, tmp_path: pathlib.Path) -> None:
    """The server answers (its /version is public), so status waits for the caches and gives up once
    listing has failed for 5 s, naming the answer."""
    kubeconfig = cluster.control_plane.write_kubeconfig(tmp_path / "kubeconfig", token="not-a-token")
    result = _run("status", "-A", "--kubeconfig", str(kubeconfig))
    _assert_one_line_error(result, 1, "GitRepo cache not synced yet", "last failure: 401")


@pytest.mark.parametrize(("arguments", "expected"), [
    pytest.param((), "secret rotate needs --provider (azure-devops, bitbucket,", id="no-provider"),
    pytest.param(("--provider", "gerrit"), "--provider 'gerrit' is not a provider (azure-devops,",
                 id="unknown-provider"),
    pytest.param(("--provider", "github", "--overlap", "2d"), "--overlap", id="overlap-in-days"),
    pytest.param(("--provider", "github", "--overlap", "1000h"),
                 "--overlap 1000h: longer than 0s and at most 720h", id="overlap-too-long"),
    pytest.param(("--provider", "github", "--key", "gitlab"), "--key 'gitlab' is not a github key (github",
                 id="another-providers-key"),
    pytest.param(("--provider", "gitlab", "--key", "gitlab-signing"),
                 "GitLab makes signing tokens: regenerate it in the webhook's settings",
                 id="signing-without-file"),
    pytest.param(("--provider", "github", "--from-file", "/nonexistent/new"),
                 "--from-file /nonexistent/new: cannot read: No such file or directory",
                 id="unreadable-file"),
])
def test_secret_rotate_reports_its_own_mistakes_before_looking_for_a_cluster(
        arguments: tuple[str, ...], expected: str) -> None:
    # No kubeconfig at all here: the mistake in the arguments is the one to hear about.
    _assert_one_line_error(_run("secret", "rotate", *arguments), 2, expected)


def test_a_polling_interval_longer_than_go_allows_is_refused_at_start() -> None:
    """settings and the admission path share one duration parser: what starts can be served."""
    result = _run("serve", "receiver", "--webhook-polling-interval", "99999999999h")
    _assert_one_line_error(result, 2, "--webhook-polling-interval", "too long")


def test_certs_inject_sets_the_ca_bundle_of_both_webhook_configurations(
        cluster: Cluster, dev_certs: pathlib.Path) -> None:
    configurations = rendered_webhook_configurations(cluster)
    for configuration in configurations:
        cluster.track(configuration["kind"], configuration["metadata"]["name"])
    cluster.apply(configurations)
    result = _run("certs", "inject", "--ca", str(dev_certs / "ca.crt"),
                  "--kubeconfig", str(cluster.kubeconfig))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "MutatingWebhookConfiguration gitjob-webhook-admission: caBundle set on 1 webhook(s)",
        "ValidatingWebhookConfiguration gitjob-webhook-admission: caBundle set on 1 webhook(s)"]
    ca = (dev_certs / "ca.crt").read_bytes()
    objects = Objects(cluster.control_plane)
    for kind in WEBHOOK_KINDS:
        stored = objects.must_get(kind, None, "gitjob-webhook-admission")
        assert [base64.b64decode(w["clientConfig"]["caBundle"]) for w in stored["webhooks"]] == [ca]


def test_certs_inject_with_a_configuration_missing_sets_the_other_and_fails(
        cluster: Cluster, dev_certs: pathlib.Path) -> None:
    """Not found used to be a line on stdout and exit 0: the validating webhook then went uncalled."""
    mutating = [c for c in rendered_webhook_configurations(cluster) if c["kind"].startswith("Mutating")]
    cluster.track(mutating[0]["kind"], mutating[0]["metadata"]["name"])
    cluster.apply(mutating)
    result = _run("certs", "inject", "--ca", str(dev_certs / "ca.crt"),
                  "--kubeconfig", str(cluster.kubeconfig))
    assert result.stdout.splitlines() == [
        "MutatingWebhookConfiguration gitjob-webhook-admission: caBundle set on 1 webhook(s)"]
    _assert_one_line_error(result, 1, "ValidatingWebhookConfiguration gitjob-webhook-admission: not found "
                                      "(apply manifests/ first)")


@pytest.mark.parametrize("refusal", [
    pytest.param("failing", id="the API server fails (500)"),
    pytest.param("forbidden", id="RBAC forbids it (403)"),
])
def test_certs_inject_refused_by_the_api_server_is_a_runtime_failure(
        cluster: Cluster, fault_proxy: FaultProxy, dev_certs: pathlib.Path, refusal: str) -> None:
    if refusal == "failing":
        fault_proxy.fail_next("*", r"webhookconfigurations", 500, count=10)
        kubeconfig, status = fault_proxy.kubeconfig, "500"
    else:
        kubeconfig, status = cluster.service_account_kubeconfig(cluster.namespace("ctl"), "nobody"), "403"
    result = _run("certs", "inject", "--ca", str(dev_certs / "ca.crt"), "--kubeconfig", str(kubeconfig))
    _assert_one_line_error(result, 1, "MutatingWebhookConfiguration gitjob-webhook-admission", status)


def test_a_reader_that_went_away_ends_a_command_quietly() -> None:
    """`explain … | head`: a BrokenPipeError traceback, exit 1, after the reader had what it wanted."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        result = subprocess.run(command("explain", "--provider", "github", "--store", "offline", "--gitrepos",
                                        str(EXAMPLE_GITREPOS), "--payload",
                                        str(PROVIDER_FIXTURES / "github/push.json")),
                                stdout=writer, stderr=subprocess.PIPE, text=True, timeout=30,
                                env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent-home"})
    finally:
        os.close(writer)
    assert result.returncode == 141 and result.stderr == "", result.stderr
