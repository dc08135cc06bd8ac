"""A ``kubernetes`` ApiClient: from ``--kubeconfig``, in-cluster, or from the default kubeconfig."""

from __future__ import annotations

import logging
import os
import ssl
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import yaml
from urllib3 import Retry
from urllib3.exceptions import InsecureRequestWarning
from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from controller.logs import safe
from controller.store.kubeapi import KubeApi
from controller.store.select import IN_CLUSTER


log = logging.getLogger(__name__)


class KubeConfigError(Exception):
    """No usable cluster configuration; the message names the source and the problem."""


def api_client(source: str | None, one_shot: bool = False) -> client.ApiClient:
    """An ApiClient for ``source``: a kubeconfig path, ``in-cluster``, or None for the default kubeconfig.

    ``one_shot`` is for a command line: a request that got no answer within its timeout is not sent
    again (urllib3 would, three times), so a silent API server is reported after one timeout.
    """
    configuration = client.Configuration()
    try:
        if source == IN_CLUSTER:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            with _credential_plugin_failures() as failures:
                config.load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=source, client_configuration=configuration)
            if failures:
                raise KubeConfigError(f"{_name(source)}: its credential plugin failed ({failures[0]})")
            if not configuration.verify_ssl:
                _insecure(source)
    except ConfigException as error:
        raise KubeConfigError(f"{_name(source)}: {error}") from None
    except OSError as error:
        raise KubeConfigError(f"{_name(source)}: {error.strerror or error}") from None
    except (yaml.YAMLError, ValueError, TypeError, AttributeError, KeyError, RecursionError) as error:
        # The kubernetes client reads any YAML it is given and fails inside on what is not a kubeconfig.
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise KubeConfigError(f"{_name(source)}: not a kubeconfig ({first_line})") from None
    _check_tls_files(configuration, source)
    # urllib3 sleeps as long as a Retry-After asks (up to 6 h) before it retries a GET: at most 5 s
    # for a server (the callers retry on their own deadlines), not at all for a command line.
    configuration.retries = Retry(total=3, read=0, redirect=0, respect_retry_after_header=False) \
        if one_shot else Retry(total=3, retry_after_max=5)
    return client.ApiClient(configuration)


def kube_api(source: str | None, one_shot: bool = False) -> KubeApi:
    """A KubeApi over :func:`api_client`; ``one_shot`` applies to both (no resends, whole-exchange
    deadlines)."""
    return KubeApi(api_client(source, one_shot), one_shot)


@contextmanager
def _credential_plugin_failures() -> Iterator[list[str]]:
    """What the kubernetes client says when a kubeconfig's ``exec`` plugin fails (the plugin's stderr:
    "not logged in"), one line each. The client logs it on the root logger, at any length and over
    several lines, and goes on without credentials: the command would then fail later for a reason
    that hides this one."""
    failures: list[str] = []

    def capture(record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:   # the root logger: only the kubernetes client runs here
            return True
        failures.append(safe(" ".join(record.getMessage().split()), 300) or "")
        return False

    root = logging.getLogger()
    root.addFilter(capture)
    try:
        yield failures
    finally:
        root.removeFilter(capture)


def _check_tls_files(configuration: client.Configuration, source: str | None) -> None:
    """Load the certificate authority and the client certificate now: a bad one is the kubeconfig's
    fault, not the network's (urllib3 would report it on every request as a connection failure)."""
    steps: list[tuple[str, Callable[[], object]]] = [
        ("certificate-authority", lambda: ssl.create_default_context(cafile=configuration.ssl_ca_cert))]
    cert_file, key_file = configuration.cert_file, configuration.key_file
    if cert_file:
        steps.append(("client-certificate/client-key",
                      lambda: ssl.create_default_context().load_cert_chain(str(cert_file), key_file)))
    for what, load in steps:
        try:
            load()
        except (ssl.SSLError, OSError) as error:
            reason = getattr(error, "reason", None) or getattr(error, "strerror", None) or error
            raise KubeConfigError(f"{_name(source)}: its {what} cannot be used ({reason})") from None


def _insecure(source: str | None) -> None:
    """Say once that the API server's certificate is not checked, instead of urllib3's warning on every
    request and retry."""
    log.warning(f"{_name(source)} sets insecure-skip-tls-verify: the API server's certificate is not "
                "verified")
    warnings.filterwarnings("ignore", category=InsecureRequestWarning)


def _name(source: str | None) -> str:
    """Where the configuration came from, as the user would look for it."""
    named = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    if source is None or source == named:
        return f"$KUBECONFIG ({named})" if named else "~/.kube/config"
    if source == IN_CLUSTER:
        return "the in-cluster service account"
    if source == os.path.expanduser("~/.kube/config"):
        return "~/.kube/config"
    return f"--kubeconfig {source}"
